import { createBackoff } from "./backoff.js";

describe("createBackoff", () => {
  it("grows exponentially up to the cap when the jitter draws its maximum", () => {
    const backoff = createBackoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("spreads delays uniformly below the ceiling, never under half the initial delay", () => {
    const draws = [0, 0.5, 0.25];
    const backoff = createBackoff({ initialMs: 100, maxMs: 10_000, random: () => draws.shift() ?? 0 });
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([50, 100, 100]);
  });

  it("starts over after reset", () => {
    const backoff = createBackoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });
});
