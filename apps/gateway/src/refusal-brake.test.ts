import { describe, expect, it } from "@jest/globals";
import { addressCaller, RefusalBrake, type RefusalBrakeOptions } from "./refusal-brake.js";

/** Charges a refusal and waits it out, as the gateway's refuse stage does; resolves to the delay imposed. */
async function hold(brake: RefusalBrake, caller: string, signal?: AbortSignal): Promise<number> {
  const delayMs = brake.charge(caller);
  await brake.wait(delayMs, signal);
  return delayMs;
}

/** A brake on a clock the test moves; `hold` still waits on real timers, so delays are kept short. */
function brakeAt(options: Partial<RefusalBrakeOptions> = {}) {
  const clock = { now: 0 };
  const brake = new RefusalBrake(
    { perSecond: 10, burst: 3, maxDelayMs: 200, maxDelayed: 100, ...options },
    () => clock.now,
  );
  return { brake, clock };
}

describe("RefusalBrake", () => {
  it("answers a caller's refusals at once within its burst, then waits for its budget to earn each back", async () => {
    const { brake } = brakeAt();
    const delays = [];
    for (let i = 0; i < 3; i++) delays.push(await hold(brake, "subject:a"));
    expect(delays).toEqual([0, 0, 0]);
    // The clock stands still: the 4th refusal owes one token (100 ms at 10/s).
    const started = performance.now();
    expect(await hold(brake, "subject:a")).toBe(100);
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
  });

  it("queues concurrent refusals behind each other, each no longer than the longest delay", async () => {
    const { brake } = brakeAt({ perSecond: 10, burst: 1, maxDelayMs: 250 });
    await hold(brake, "subject:a");
    const started = performance.now();
    const finished: number[] = [];
    await Promise.all(
      Array.from({ length: 5 }, () => hold(brake, "subject:a").then(() => finished.push(performance.now() - started))),
    );
    finished.sort((a, b) => a - b);
    // Owed 1, 2, then capped: 100 ms, 200 ms, 250 ms, 250 ms, 250 ms.
    expect(finished[0]).toBeGreaterThanOrEqual(95);
    expect(finished[1]).toBeGreaterThanOrEqual(195);
    expect(finished[4]).toBeGreaterThanOrEqual(245);
    expect(brake.delayed).toBe(0);
  });

  it("keeps callers apart: one caller's refusals never slow another's", async () => {
    const { brake } = brakeAt({ burst: 1, maxDelayMs: 10_000 });
    await hold(brake, "subject:attacker");
    const held = hold(brake, "subject:attacker");
    expect(brake.delayed).toBe(1);
    expect(await hold(brake, "subject:other")).toBe(0);
    expect(await hold(brake, "address:203.0.113.9")).toBe(0);
    brake.close();
    await held;
  });

  it("forgives a caller that stopped: the debt is bounded by the longest delay's worth of refills", () => {
    const { brake, clock } = brakeAt({ perSecond: 10, burst: 2, maxDelayMs: 1_000, maxDelayed: 0 });
    // maxDelayed 0: nothing waits, so the budget's arithmetic shows alone.
    for (let i = 0; i < 1_000; i++) void hold(brake, "subject:a");
    // 1,000 refusals in no time: the debt stops at 1 s of refills (10), so
    // after 1 s the caller is even, and after 1.2 s it has its burst back.
    clock.now += 1_200;
    const internal = brake as unknown as { spend(caller: string): number };
    expect(internal.spend("subject:a")).toBe(0);
    expect(internal.spend("subject:a")).toBe(0);
    expect(internal.spend("subject:a")).toBe(100);
  });

  it("answers at once past the bound on refusals held back, and everything when closed", async () => {
    const { brake } = brakeAt({ burst: 1, maxDelayMs: 10_000, maxDelayed: 2 });
    await hold(brake, "subject:a");
    const first = hold(brake, "subject:a");
    const second = hold(brake, "subject:a");
    expect(brake.delayed).toBe(2);
    expect(await hold(brake, "subject:a")).toBe(0); // past the bound: not held
    expect(brake.delayed).toBe(2);
    brake.close();
    await Promise.all([first, second]);
    expect(brake.delayed).toBe(0);
    expect(await hold(brake, "subject:a")).toBe(0); // closed: nothing is held any more
  });

  it("stops holding a refusal whose client went away", async () => {
    const { brake } = brakeAt({ burst: 1, maxDelayMs: 10_000 });
    await hold(brake, "subject:a");
    const gone = new AbortController();
    const held = hold(brake, "subject:a", gone.signal);
    expect(brake.delayed).toBe(1);
    gone.abort();
    expect(await held).toBe(100); // the delay it was given, cut short
    expect(brake.delayed).toBe(0);
  });

  it("remembers a bounded number of callers, forgetting the least recently refused first", () => {
    const { brake } = brakeAt({ burst: 1, maxDelayed: 0, maxTracked: 100 });
    const internal = brake as unknown as { spend(caller: string): number; budgets: Map<string, unknown> };
    internal.spend("caller:first");
    for (let i = 0; i < 10_000; i++) internal.spend(`caller:${i}`);
    expect(internal.budgets.size).toBeLessThanOrEqual(100);
    // The first caller was forgotten: its burst is whole again.
    expect(internal.spend("caller:first")).toBe(0);
    // A recent one is remembered: out of burst.
    expect(internal.spend("caller:9999")).toBeGreaterThan(0);
  });
});

describe("addressCaller", () => {
  it.each([
    ["198.51.100.7", "address:198.51.100.7"],
    ["::ffff:198.51.100.7", "address:198.51.100.7"],
    ["::FFFF:198.51.100.7", "address:198.51.100.7"],
    ["2001:db8:1:2:3:4:5:6", "address:2001:db8:1:2::/64"],
    ["2001:db8:1:2:ffff:ffff:ffff:ffff", "address:2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002::1", "address:2001:db8:1:2::/64"],
    ["2001:db8::1", "address:2001:db8:0:0::/64"],
    ["2001:db8::", "address:2001:db8:0:0::/64"],
    ["::1", "address:0:0:0:0::/64"],
    ["fe80::1%eth0", "address:fe80:0:0:0::/64"],
    [undefined, "address:unknown"],
  ])("%s is charged as %s", (remote, caller) => {
    expect(addressCaller(remote)).toBe(caller);
  });
});
