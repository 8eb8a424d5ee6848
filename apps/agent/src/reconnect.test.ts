import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { ABSENT_MAX_MS, createReconnectSchedule, DEFAULT_RECONNECT, failureKind } from "./reconnect.js";

const CODES = Object.values(grpc.status).filter((value): value is grpc.status => typeof value === "number");

describe("reconnect schedule", () => {
  it("sorts every status into absent, refused or failed", () => {
    expect(failureKind(grpc.status.UNAVAILABLE)).toBe("absent");
    expect(failureKind(grpc.status.UNAUTHENTICATED)).toBe("refused");
    expect(failureKind(grpc.status.PERMISSION_DENIED)).toBe("refused");
    for (const code of [grpc.status.RESOURCE_EXHAUSTED, grpc.status.INVALID_ARGUMENT, grpc.status.OK]) {
      expect(failureKind(code)).toBe("failed");
    }
  });

  it("never waits longer than its kind allows, whatever the sequence of failures and successes", () => {
    fc.assert(
      fc.property(
        fc.record({
          maxMs: fc.integer({ min: 200, max: 600_000 }),
          refusedMaxMs: fc.integer({ min: 1_000, max: 3_600_000 }),
        }),
        fc.array(fc.option(fc.constantFrom(...CODES), { nil: undefined }), { minLength: 1, maxLength: 200 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (settings, events, random) => {
          const schedule = createReconnectSchedule(settings, () => random);
          for (const code of events) {
            // undefined: a registration succeeded.
            if (code === undefined) {
              schedule.reset();
              continue;
            }
            const { kind, delayMs } = schedule.next(code);
            const cap = { absent: ABSENT_MAX_MS, failed: settings.maxMs, refused: settings.refusedMaxMs }[kind];
            expect(delayMs).toBeGreaterThan(0);
            expect(delayMs).toBeLessThanOrEqual(cap);
          }
        },
      ),
    );
  });

  it("asks an absent gateway again within a second, however long it has been away", () => {
    const schedule = createReconnectSchedule(DEFAULT_RECONNECT, () => 1);
    const delays = Array.from({ length: 1_000 }, () => schedule.next(grpc.status.UNAVAILABLE).delayMs);
    expect(Math.max(...delays)).toBe(ABSENT_MAX_MS);
  });

  it("backs off up to 5 s from a gateway that answers and fails, and slowly, up to a minute, from one refusing the token", () => {
    const schedule = createReconnectSchedule(DEFAULT_RECONNECT, () => 1);
    const failed = Array.from({ length: 20 }, () => schedule.next(grpc.status.RESOURCE_EXHAUSTED).delayMs);
    expect(failed.slice(0, 3)).toEqual([200, 400, 800]);
    expect(failed.at(-1)).toBe(5_000);
    const refused = Array.from({ length: 20 }, () => schedule.next(grpc.status.UNAUTHENTICATED).delayMs);
    expect(refused.slice(0, 3)).toEqual([1_000, 2_000, 4_000]);
    expect(refused.at(-1)).toBe(60_000);
    // A successful registration starts every schedule over.
    schedule.reset();
    expect(schedule.next(grpc.status.RESOURCE_EXHAUSTED).delayMs).toBe(200);
    expect(schedule.next(grpc.status.UNAUTHENTICATED).delayMs).toBe(1_000);
  });
});
