import { randomUUID } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import {
  MemoryRateLimiter,
  type RateLimiter,
  RateLimiterUnavailableError,
  type RateLimitResult,
  RedisRateLimiter,
  type RedisRateLimiterOptions,
} from "./rate-limit.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** Test keys live under their own prefix in the shared Redis and are deleted afterwards. */
const usedPrefixes: string[] = [];
function uniquePrefix(): string {
  const prefix = `modelgate-test:rl:${randomUUID()}:`;
  usedPrefixes.push(prefix);
  return prefix;
}

let admin: Redis;
const open: RateLimiter[] = [];

function redisLimiter(options: Partial<RedisRateLimiterOptions> = {}): RedisRateLimiter {
  const limiter = new RedisRateLimiter({ url: REDIS_URL, keyPrefix: uniquePrefix(), ...options });
  open.push(limiter);
  return limiter;
}

beforeAll(() => {
  admin = new Redis(REDIS_URL, { lazyConnect: true });
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((limiter) => limiter.close()));
  for (const prefix of usedPrefixes.splice(0)) {
    let cursor = "0";
    do {
      const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  }
});

afterAll(async () => {
  await admin.quit();
});

const refused = (result: RateLimitResult) => (result.allowed ? undefined : result);

describe.each([
  { name: "MemoryRateLimiter", create: async (): Promise<RateLimiter> => new MemoryRateLimiter() },
  {
    name: "RedisRateLimiter",
    create: async (): Promise<RateLimiter> => {
      const limiter = redisLimiter();
      await limiter.ready();
      return limiter;
    },
  },
])("$name", ({ create }) => {
  it("allows up to the limit, then refuses until a token is back", async () => {
    const limiter = await create();
    const charge = { key: "rpm:p1:alice", limitPerMinute: 3, cost: 1 };
    for (let i = 0; i < 3; i++) expect(await limiter.consume([charge])).toEqual({ allowed: true });
    const result = refused(await limiter.consume([charge]));
    expect(result).toMatchObject({ allowed: false, key: "rpm:p1:alice", exceedsCapacity: false });
    // One token comes back every 20 s; a few ms have passed since the first.
    expect(result?.retryAfterMs).toBeGreaterThan(19_000);
    expect(result?.retryAfterMs).toBeLessThanOrEqual(20_000);
    // Another key has its own bucket.
    expect(await limiter.consume([{ ...charge, key: "rpm:p1:bob" }])).toEqual({ allowed: true });
  });

  it("takes every charge or none, and reports the refusal with the longest wait", async () => {
    const limiter = await create();
    const rpm = { key: "rpm:p1:alice", limitPerMinute: 10, cost: 1 };
    const tpm = { key: "tpm:p1:alice", limitPerMinute: 600, cost: 600 };
    expect(await limiter.consume([{ ...rpm, cost: 4 }])).toEqual({ allowed: true });
    expect(await limiter.consume([tpm])).toEqual({ allowed: true });
    // The token budget is empty: the request budget must stay at 6.
    const result = refused(await limiter.consume([rpm, { ...tpm, cost: 300 }]));
    expect(result).toMatchObject({ key: "tpm:p1:alice", exceedsCapacity: false });
    expect(await limiter.consume([{ ...rpm, cost: 6 }])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([rpm]))?.key).toBe("rpm:p1:alice");

    // Both empty: the request budget (6 s per request) waits longer than 1 token (0.1 s).
    const both = refused(await limiter.consume([{ ...tpm, cost: 1 }, rpm]));
    expect(both?.key).toBe("rpm:p1:alice");
    expect(both?.retryAfterMs).toBeGreaterThan(5_000);
  });

  it("flags a cost that can never fit, and takes nothing for it", async () => {
    const limiter = await create();
    const small = { key: "rpm:p1:carol", limitPerMinute: 10, cost: 1 };
    const result = await limiter.consume([small, { key: "tpm:p1:carol", limitPerMinute: 100, cost: 101 }]);
    expect(result).toEqual({ allowed: false, key: "tpm:p1:carol", retryAfterMs: 60_000, exceedsCapacity: true });
    expect(await limiter.consume([{ ...small, cost: 10 }])).toEqual({ allowed: true });
  });

  it("adds up charges on the same key and skips zero costs", async () => {
    const limiter = await create();
    const charge = { key: "tpm:p2:dave", limitPerMinute: 10, cost: 3 };
    expect(await limiter.consume([{ ...charge, cost: 5 }])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([charge, charge]))?.exceedsCapacity).toBe(false);
    expect(await limiter.consume([charge, { ...charge, cost: 2 }, { ...charge, cost: 0 }])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([charge, charge, charge, charge]))?.exceedsCapacity).toBe(true);
    expect(await limiter.consume([{ ...charge, cost: 0 }])).toEqual({ allowed: true });
    expect(await limiter.consume([])).toEqual({ allowed: true });
  });

  it("refuses malformed charges", async () => {
    const limiter = await create();
    const charge = { key: "rpm:p1:erin", limitPerMinute: 10, cost: 1 };
    const bad = [
      { ...charge, limitPerMinute: 0 },
      { ...charge, limitPerMinute: -1 },
      { ...charge, limitPerMinute: Number.POSITIVE_INFINITY },
      { ...charge, limitPerMinute: Number.NaN },
      { ...charge, cost: -1 },
      { ...charge, cost: Number.NaN },
      { ...charge, cost: Number.POSITIVE_INFINITY },
      { ...charge, key: "" },
      { ...charge, key: "k".repeat(513) },
    ];
    for (const charges of bad) await expect(limiter.consume([charge, charges])).rejects.toThrow(TypeError);
    await expect(limiter.consume([charge, { ...charge, limitPerMinute: 20 }])).rejects.toThrow(/two limits/);
    // Nothing was taken by the refused calls.
    expect(await limiter.consume([{ ...charge, key: "k".repeat(512), cost: 10 }])).toEqual({ allowed: true });
    expect(await limiter.consume([{ ...charge, cost: 10 }])).toEqual({ allowed: true });
  });
});

describe("MemoryRateLimiter with a fake clock", () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  it("refills exactly at limitPerMinute/60 per second, up to the capacity", async () => {
    const limiter = new MemoryRateLimiter({ now: clock });
    const rpm = { key: "rpm", limitPerMinute: 60, cost: 1 };
    expect(await limiter.consume([{ ...rpm, cost: 60 }])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([rpm]))?.retryAfterMs).toBe(1_000);
    now += 999;
    expect(refused(await limiter.consume([rpm]))?.retryAfterMs).toBe(1);
    now += 1;
    expect(await limiter.consume([rpm])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([rpm]))?.retryAfterMs).toBe(1_000);

    const tpm = { key: "tpm", limitPerMinute: 1_000, cost: 400 };
    expect(await limiter.consume([tpm])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([{ ...tpm, cost: 700 }]))?.retryAfterMs).toBe(6_000);
    now += 6_000;
    expect(await limiter.consume([{ ...tpm, cost: 700 }])).toEqual({ allowed: true });

    // Ten idle minutes fill the bucket to its capacity, not beyond.
    now += 600_000;
    expect(await limiter.consume([{ ...tpm, cost: 1_000 }])).toEqual({ allowed: true });
    expect(refused(await limiter.consume([{ ...tpm, cost: 1 }]))?.retryAfterMs).toBe(60);
  });

  it("reports the wait for fractional refills and ignores a clock stepping back", async () => {
    const limiter = new MemoryRateLimiter({ now: clock });
    const charge = { key: "k", limitPerMinute: 7, cost: 7 };
    expect(await limiter.consume([charge])).toEqual({ allowed: true });
    // 60000/7 = 8571.43 ms per token.
    expect(refused(await limiter.consume([{ ...charge, cost: 1 }]))?.retryAfterMs).toBe(8_572);
    now += 3 * 8_572;
    expect(await limiter.consume([{ ...charge, cost: 3 }])).toEqual({ allowed: true });
    // Stepping back 50 s neither refills nor drains: a token is still about 8.57 s away.
    now -= 50_000;
    const wait = refused(await limiter.consume([{ ...charge, cost: 1 }]))?.retryAfterMs;
    expect(wait).toBeGreaterThan(8_500);
    expect(wait).toBeLessThanOrEqual(8_572);
  });

  it("evicts full buckets first, else the least recently used", async () => {
    const limiter = new MemoryRateLimiter({ now: clock, maxKeys: 3 });
    const charge = (key: string, cost: number) => [{ key, limitPerMinute: 60, cost }];
    await limiter.consume(charge("b", 30)); // full again in 30 s
    await limiter.consume(charge("c", 30));
    await limiter.consume(charge("a", 1)); // full again in 1 s, and the most recent
    now += 1_000;
    await limiter.consume(charge("d", 30));
    expect(limiter.size).toBe(3);
    // a went (it held nothing); b kept its state: 31 tokens now.
    expect(refused(await limiter.consume(charge("b", 32)))?.retryAfterMs).toBe(1_000);
    // No bucket is full: the least recently used goes, c (b was just used, refused or not).
    await limiter.consume(charge("e", 30));
    expect(limiter.size).toBe(3);
    expect(await limiter.consume(charge("c", 60))).toEqual({ allowed: true });
    expect(refused(await limiter.consume(charge("b", 32)))?.retryAfterMs).toBe(1_000);
    expect(limiter.size).toBe(3);

    // Once full, every bucket goes in one sweep when a new key needs room.
    now += 61_000;
    await limiter.consume(charge("f", 1));
    expect(limiter.size).toBe(1);
  });

  it("refuses a maxKeys below 1", () => {
    expect(() => new MemoryRateLimiter({ maxKeys: 0 })).toThrow(RangeError);
  });
});

describe("RedisRateLimiter", () => {
  it("refills over time", async () => {
    const limiter = redisLimiter();
    await limiter.ready();
    const charge = { key: "rpm:fast", limitPerMinute: 600, cost: 1 }; // 10 per second
    expect(await limiter.consume([{ ...charge, cost: 600 }])).toEqual({ allowed: true });
    const result = refused(await limiter.consume([charge]));
    expect(result?.retryAfterMs).toBeGreaterThan(0);
    expect(result?.retryAfterMs).toBeLessThanOrEqual(100);
    await sleep((result?.retryAfterMs ?? 100) + 20);
    expect(await limiter.consume([charge])).toEqual({ allowed: true });
    // Five more tokens take half a second.
    expect(refused(await limiter.consume([{ ...charge, cost: 5 }]))?.retryAfterMs).toBeGreaterThan(300);
  });

  it("shares buckets between instances on the same prefix", async () => {
    const keyPrefix = uniquePrefix();
    const first = redisLimiter({ keyPrefix });
    const second = redisLimiter({ keyPrefix });
    await Promise.all([first.ready(), second.ready()]);
    const charge = { key: "rpm:shared", limitPerMinute: 5, cost: 1 };
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).consume([charge])),
    );
    expect(results.filter((result) => result.allowed)).toHaveLength(5);
    // Another prefix is another set of buckets.
    const other = redisLimiter();
    await other.ready();
    expect(await other.consume([charge])).toEqual({ allowed: true });
  });

  it("stores each bucket under the prefix with an expiry at its full refill", async () => {
    const keyPrefix = uniquePrefix();
    const limiter = redisLimiter({ keyPrefix });
    await limiter.ready();
    await limiter.consume([{ key: "tpm:exp", limitPerMinute: 60, cost: 30 }]);
    const stored = await admin.hgetall(`${keyPrefix}tpm:exp`);
    expect(Number(stored.t)).toBeCloseTo(30, 2);
    expect(Number(stored.ts)).toBeGreaterThan(0);
    const ttl = await admin.pttl(`${keyPrefix}tpm:exp`);
    // 30 s to refill the 30 tokens, plus a 1 s margin.
    expect(ttl).toBeGreaterThan(29_000);
    expect(ttl).toBeLessThanOrEqual(31_000);
    // A refused charge takes nothing and leaves no key behind.
    await limiter.consume([{ key: "tpm:huge", limitPerMinute: 60, cost: 61 }]);
    expect(await admin.exists(`${keyPrefix}tpm:huge`)).toBe(0);
  });

  it("fails at once while nothing listens, and logs that once", async () => {
    const port = await freePort();
    const warnings: string[] = [];
    const limiter = new RedisRateLimiter({
      url: `redis://127.0.0.1:${port}`,
      logger: { warn: (_fields, message) => warnings.push(message) },
    });
    open.push(limiter);
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await expect(limiter.consume([{ key: "k", limitPerMinute: 1, cost: 1 }])).rejects.toThrow(
        RateLimiterUnavailableError,
      );
      expect(performance.now() - started).toBeLessThan(200);
      await sleep(60); // let reconnect attempts fail in between
    }
    expect(warnings).toHaveLength(1);
    const ready = limiter.ready();
    await limiter.close();
    await expect(ready).rejects.toThrow(RateLimiterUnavailableError);
  });

  it("fails closed when Redis stalls or goes away, and recovers when it is back", async () => {
    const proxy = new TcpProxy(new URL(REDIS_URL));
    const port = await proxy.listen(0);
    const url = new URL(REDIS_URL);
    url.hostname = "127.0.0.1";
    url.port = String(port);
    const logs: string[] = [];
    const limiter = redisLimiter({
      url: url.toString(),
      commandTimeoutMs: 200,
      logger: { warn: (_fields, message) => logs.push(`warn: ${message}`), info: (_f, m) => logs.push(`info: ${m}`) },
    });
    try {
      await limiter.ready();
      const charge = { key: "rpm:outage", limitPerMinute: 100, cost: 1 };
      expect(await limiter.consume([charge])).toEqual({ allowed: true });

      // Stalled: the answer does not come within the command timeout.
      proxy.stalled = true;
      const started = performance.now();
      await expect(limiter.consume([charge])).rejects.toThrow(RateLimiterUnavailableError);
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(190);
      expect(waited).toBeLessThan(1_000);
      proxy.stalled = false;

      // Gone: refused at once, and the outage is logged once, not per request.
      await proxy.close();
      await sleep(20);
      for (let i = 0; i < 3; i++) {
        await expect(limiter.consume([charge])).rejects.toThrow(RateLimiterUnavailableError);
        await sleep(100);
      }
      expect(logs).toEqual([expect.stringMatching(/^warn: rate limiter cannot reach Redis/)]);

      await proxy.listen(port);
      await limiter.ready();
      expect(await limiter.consume([charge])).toEqual({ allowed: true });
      expect(logs).toEqual([expect.any(String), "info: rate limiter reached Redis again"]);
    } finally {
      await proxy.close();
    }
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

/**
 * A loopback TCP proxy to the test Redis that can hold back traffic (a
 * stalled Redis) or close (Redis gone), without touching Redis itself.
 */
class TcpProxy {
  readonly #target: { host: string; port: number };
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();
  readonly #held: { socket: net.Socket; chunk: Buffer }[] = [];
  #stalled = false;

  constructor(target: URL) {
    this.#target = { host: target.hostname, port: Number(target.port || 6379) };
  }

  set stalled(stalled: boolean) {
    this.#stalled = stalled;
    if (stalled) return;
    for (const { socket, chunk } of this.#held.splice(0)) socket.write(chunk);
  }

  async listen(port: number): Promise<number> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target.port, this.#target.host);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(from);
        from.on("data", (chunk: Buffer) => {
          if (this.#stalled) this.#held.push({ socket: to, chunk });
          else to.write(chunk);
        });
        from.on("close", () => {
          this.#sockets.delete(from);
          to.destroy();
        });
        from.on("error", () => to.destroy());
      }
    });
    this.#server = server;
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    return (server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}
