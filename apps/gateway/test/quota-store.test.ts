// Quota counters in Redis as gateways share them: two keepers (two gateways'
// worth of leases) on one counter admit exactly the limit, with or without
// a local reserve; a gateway that died with a lease gives it up when the
// lease runs out; Redis away fails closed unless a lease covers the
// request; Redis restarted empty is noticed, never read as a fresh budget.
import { randomUUID } from "node:crypto";
import type { QuotaGrant } from "@modelgate/policy";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { PolicyDenial } from "../src/decide.js";
import { GatewayError } from "../src/errors.js";
import { createQuotaMetrics, formatReset, QuotaKeeper, type QuotaReserveOptions, quotaWindow } from "../src/quota.js";
import { RedisQuotaStore } from "../src/quota-store.js";
import { type DedicatedRedis, startDedicatedRedis } from "./processes.js";
import { captureLogger } from "./stack.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** This file's keys on the shared Redis, deleted at the end. */
const PREFIX = `modelgate-test:quota:${randomUUID()}:`;

const keepers: QuotaKeeper[] = [];
let admin: Redis;

beforeAll(() => {
  admin = new Redis(REDIS_URL);
});

afterAll(async () => {
  for (const keeper of keepers) await keeper.close();
  const keys = await admin.keys(`${PREFIX}*`);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
});

interface KeeperOptions extends Partial<QuotaReserveOptions> {
  url?: string;
  prefix?: string;
  leaseMs?: number;
  now?: () => number;
}

async function keeper(options: KeeperOptions = {}) {
  const registry = new Registry();
  const metrics = createQuotaMetrics(registry);
  const log = captureLogger("quota");
  const store = new RedisQuotaStore({
    url: options.url ?? REDIS_URL,
    gatewayId: randomUUID(),
    keyPrefix: options.prefix ?? PREFIX,
    leaseMs: options.leaseMs ?? 15_000,
    logger: log.logger,
  });
  const created = new QuotaKeeper({
    store,
    reserveFraction: options.reserveFraction ?? 0,
    reserveMax: options.reserveMax ?? 1_000,
    syncIntervalMs: options.syncIntervalMs ?? 60_000,
    metrics,
    logger: log.logger,
    now: options.now,
  });
  keepers.push(created);
  // Commands are refused, not queued, until the connection is up.
  await store.ready();
  return { keeper: created, store, metrics, registry, lines: log.lines };
}

const grant = (quota: Partial<QuotaGrant>): QuotaGrant => ({
  policyId: randomUUID(),
  per: "day",
  scope: "subject",
  groups: [],
  ...quota,
});

/** The code of the refusal an admission throws, or "admitted". */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "admitted";
  } catch (error) {
    if (error instanceof GatewayError) return error.code;
    throw error;
  }
}

async function refusalOf(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

/**
 * The admission's outcome once the store answers again: a restarted Redis
 * is noticed by the client a moment after it is back.
 */
async function onceReachable<T>(attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof GatewayError && error.message.includes("cannot be checked right now"))) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("windows", () => {
  it("are the calendar hour, day and month in UTC, the month's end in the next year for December", () => {
    const at = Date.parse("2024-12-31T23:59:30.000Z");
    expect(quotaWindow("hour", at)).toEqual({
      id: "h2024-12-31T23",
      start: Date.parse("2024-12-31T23:00:00Z"),
      end: Date.parse("2025-01-01T00:00:00Z"),
    });
    expect(quotaWindow("day", at).id).toBe("d2024-12-31");
    expect(quotaWindow("month", at)).toEqual({
      id: "m2024-12",
      start: Date.parse("2024-12-01T00:00:00Z"),
      end: Date.parse("2025-01-01T00:00:00Z"),
    });
    expect(quotaWindow("month", Date.parse("2024-02-10T00:00:00Z")).end).toBe(Date.parse("2024-03-01T00:00:00Z"));
    expect([formatReset(30_000), formatReset(61_000), formatReset(3_723_000), formatReset(1)]).toEqual([
      "30s",
      "1m1s",
      "1h2m3s",
      "1s",
    ]);
  });
});

describe("two gateways sharing one counter", () => {
  it.each([
    { reserveFraction: 0, label: "without a reserve" },
    { reserveFraction: 0.2, label: "with leases of a fifth of what is left" },
  ])("admit exactly the limit of requests, $label", async ({ reserveFraction }) => {
    const limit = 60;
    const a = await keeper({ reserveFraction, reserveMax: 100 });
    const b = await keeper({ reserveFraction, reserveMax: 100 });
    const quota = grant({ requests: limit });
    const attempts = Array.from({ length: 3 * limit }, (_, index) =>
      outcome((index % 2 === 0 ? a : b).keeper.admit(quota, "alice")),
    );
    const outcomes = await Promise.all(attempts);
    expect(outcomes.filter((code) => code === "admitted")).toHaveLength(limit);
    expect(new Set(outcomes)).toEqual(new Set(["admitted", "quota_exceeded"]));
    // With a reserve, most checks were answered from a lease, without a round trip.
    const local = (await a.registry.getSingleMetricAsString("modelgate_quota_local_admissions_total")).match(
      /total (\d+)/,
    );
    if (reserveFraction > 0) expect(Number(local?.[1])).toBeGreaterThan(0);
    else expect(Number(local?.[1])).toBe(0);
  });

  it("charge tokens after the fact: admitted while anything is left, refused once the settled use reaches the limit", async () => {
    const a = await keeper({ reserveFraction: 0.5, reserveMax: 400 });
    const b = await keeper({ reserveFraction: 0.5, reserveMax: 400 });
    const quota = grant({ tokens: 1_000 });
    let charged = 0;
    for (let round = 0; round < 40; round++) {
      const gateway = round % 2 === 0 ? a : b;
      const result = await outcome(
        gateway.keeper.admit(quota, "bob").then((charge) => {
          charge.settle(150);
          charged += 150;
        }),
      );
      if (result !== "admitted") break;
    }
    // Each admitted request had something left before it; the last one
    // crossed the limit and counts in full. Leases add nothing to that.
    expect(charged).toBeGreaterThanOrEqual(1_000);
    expect(charged).toBeLessThan(1_000 + 150);
    await a.keeper.close();
    await b.keeper.close();
    const stored = await admin.hget(
      `${PREFIX}c:${quota.policyId}:s:bob:tokens:${quotaWindow("day", Date.now()).id}`,
      "used",
    );
    expect(Number(stored)).toBe(charged);
  });

  it("refuse with Retry-After to the window's end and the budgets in x-ratelimit headers", async () => {
    const now = Date.parse("2030-05-17T21:30:00Z");
    const a = await keeper({ now: () => now });
    const quota = grant({ tokens: 100, requests: 10 });
    const charge = await a.keeper.admit(quota, "carol");
    expect(charge.headers()).toEqual({
      "x-ratelimit-limit-requests": "10",
      "x-ratelimit-remaining-requests": "9",
      "x-ratelimit-reset-requests": "2h30m0s",
      "x-ratelimit-limit-tokens": "100",
      "x-ratelimit-remaining-tokens": "100",
      "x-ratelimit-reset-tokens": "2h30m0s",
    });
    charge.settle(120);
    const refusal = await refusalOf(a.keeper.admit(quota, "carol"));
    expect(refusal).toBeInstanceOf(PolicyDenial);
    expect(refusal.code).toBe("quota_exceeded");
    expect(refusal.status).toBe(429);
    expect(refusal.message).toBe("quota of 100 tokens per day used up; it renews in 2h30m0s");
    expect(refusal.headers).toMatchObject({
      "retry-after": String(2.5 * 3600),
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-remaining-requests": "9",
    });
    // The refused request took no request from its budget.
    const [used] = await admin.hmget(`${PREFIX}c:${quota.policyId}:s:carol:requests:d2030-05-17`, "used");
    expect(used).toBe("1");
  });

  it("charge every group a group quota names, and refuse when any of them is used up", async () => {
    const a = await keeper();
    const shared = { policyId: randomUUID(), scope: "group" as const, requests: 2 };
    await a.keeper.admit(grant({ ...shared, groups: ["ml"] }), "dave");
    await a.keeper.admit(grant({ ...shared, groups: ["ml", "research"] }), "erin");
    // "ml" is used up by two members; "research" has room but is not enough.
    expect(await outcome(a.keeper.admit(grant({ ...shared, groups: ["ml", "research"] }), "frank"))).toBe(
      "quota_exceeded",
    );
    expect(await outcome(a.keeper.admit(grant({ ...shared, groups: ["research"] }), "frank"))).toBe("admitted");
    expect(await outcome(a.keeper.admit(grant({ ...shared, groups: ["research"] }), "grace"))).toBe("quota_exceeded");
  });

  it("get back, once it runs out, the lease of a gateway that died holding it: counted as spent", async () => {
    const quota = grant({ requests: 100 });
    const dying = await keeper({ reserveFraction: 0.5, reserveMax: 1_000, leaseMs: 1_500 });
    await dying.keeper.admit(quota, "heidi");
    // Killed: no settlement, no lease given back.
    await dying.store.close();
    const survivor = await keeper({ leaseMs: 1_500 });
    let admitted = 0;
    while ((await outcome(survivor.keeper.admit(quota, "heidi"))) === "admitted") admitted += 1;
    // 1 taken and half of the 99 left leased to the dead gateway.
    expect(admitted).toBe(100 - 1 - 49);
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    while ((await outcome(survivor.keeper.admit(quota, "heidi"))) === "admitted") admitted += 1;
    // The dead lease counted as spent: nothing comes back, nothing is given twice.
    expect(admitted).toBe(50);
  });
});

describe("when Redis fails", () => {
  let redis: DedicatedRedis;

  afterEach(async () => {
    await redis?.close();
  });

  it("refuses quota'd requests with 503 quota_unavailable unless the gateway's lease covers them", async () => {
    redis = await startDedicatedRedis();
    const leased = await keeper({ url: redis.url, reserveFraction: 0.5, reserveMax: 10 });
    const unleased = await keeper({ url: redis.url });
    const quota = grant({ requests: 1_000 });
    await leased.keeper.admit(quota, "ivan");
    await unleased.keeper.admit(quota, "ivan");
    await redis.stop();
    expect(await outcome(unleased.keeper.admit(quota, "ivan"))).toBe("quota_unavailable");
    // The lease of 10 covers 10 more requests, then the gateway fails closed too.
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) outcomes.push(await outcome(leased.keeper.admit(quota, "ivan")));
    expect(outcomes).toEqual([...Array(10).fill("admitted"), "quota_unavailable", "quota_unavailable"]);
    await redis.start();
    expect(await outcome(onceReachable(() => leased.keeper.admit(quota, "ivan")))).toBe("admitted");
    // What was spent on the lease while Redis was away is settled, not lost.
    await leased.keeper.close();
    await unleased.keeper.close();
    const check = new Redis(redis.url);
    const used = await check.hget(
      `${PREFIX}c:${quota.policyId}:s:ivan:requests:${quotaWindow("day", Date.now()).id}`,
      "used",
    );
    await check.quit();
    expect(Number(used)).toBe(1 + 1 + 10 + 1);
  });

  it("notices Redis restarted without its data and refuses the window's requests until the window ends or an operator accepts the loss", async () => {
    redis = await startDedicatedRedis({ persist: false });
    // Windows are the gateway's clock, the loss is Redis's: the test's hour is the real one.
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    let now = hour + 15 * 60_000;
    const gateway = await keeper({ url: redis.url, now: () => now });
    const quota = grant({ requests: 5, per: "hour" });
    for (let i = 0; i < 5; i++) await gateway.keeper.admit(quota, "judy");
    expect(await outcome(gateway.keeper.admit(quota, "judy"))).toBe("quota_exceeded");

    await redis.stop();
    await redis.start();
    // The counter of 5 is gone; read as zero it would admit 5 more.
    const refusal = await refusalOf(onceReachable(() => gateway.keeper.admit(quota, "judy")));
    expect(refusal.code).toBe("quota_unavailable");
    expect(refusal.status).toBe(503);
    expect(refusal.headers["retry-after"]).toBe(String(45 * 60));
    expect(gateway.lines.some((line) => line.includes("quota counters were lost"))).toBe(true);

    // A gateway started after the loss learns it from Redis, not from memory.
    const newcomer = await keeper({ url: redis.url, now: () => now });
    expect(await outcome(newcomer.keeper.admit(quota, "judy"))).toBe("quota_unavailable");

    // The next window began after the loss: its counter is whole.
    now = hour + 3_600_000;
    expect(await outcome(gateway.keeper.admit(quota, "judy"))).toBe("admitted");

    // An operator who accepts the loss deletes the marker: the window starts again from zero.
    now = hour + 20 * 60_000;
    const operator = new Redis(redis.url);
    expect(await operator.del(`${PREFIX}lost-at`)).toBe(1);
    await operator.quit();
    expect(await outcome(gateway.keeper.admit(quota, "judy"))).toBe("admitted");
  });
});
