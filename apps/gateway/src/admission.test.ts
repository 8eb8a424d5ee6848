import { InFlightLimiter } from "./admission.js";
import { GatewayError } from "./errors.js";

describe("InFlightLimiter", () => {
  it("admits up to the cap per subject, then refuses with 429 too_many_in_flight and a Retry-After", () => {
    const limiter = new InFlightLimiter(3);
    const held = [limiter.acquire("a"), limiter.acquire("a"), limiter.acquire("a")];
    let refusal: unknown;
    try {
      limiter.acquire("a");
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(GatewayError);
    expect((refusal as GatewayError).code).toBe("too_many_in_flight");
    expect((refusal as GatewayError).status).toBe(429);
    expect((refusal as GatewayError).headers["retry-after"]).toBe("1");
    // Another subject is not affected.
    expect(() => limiter.acquire("b")).not.toThrow();
    held[0]?.();
    expect(() => limiter.acquire("a")).not.toThrow();
  });

  it("gives a place back once however often release is called, and forgets idle subjects", () => {
    const limiter = new InFlightLimiter(2);
    const release = limiter.acquire("a");
    release();
    release();
    expect(limiter.inFlight("a")).toBe(0);
    expect(limiter.subjects).toBe(0);
    const one = limiter.acquire("a");
    const two = limiter.acquire("a");
    expect(() => limiter.acquire("a")).toThrow(GatewayError);
    one();
    two();
    expect(limiter.subjects).toBe(0);
  });

  it("refuses a cap that is not a positive integer", () => {
    expect(() => new InFlightLimiter(0)).toThrow(RangeError);
    expect(() => new InFlightLimiter(1.5)).toThrow(RangeError);
  });
});
