// Token buckets for the gateway's request and token budgets. Gateway replicas
// share their buckets in Redis, so a budget holds however many replicas run;
// the in-memory limiter does the same arithmetic for a single process and for
// tests. Both take every charge of a request at once or none of them, so a
// request refused by its token budget does not spend its requests-per-minute.
import { Redis } from "ioredis";

export interface RateLimitCharge {
  /** For example "rpm:<policyId>:<subjectKey>"; the Redis limiter adds its own prefix. */
  key: string;
  /** Bucket capacity; the bucket refills continuously at limitPerMinute/60 per second. */
  limitPerMinute: number;
  /** 1 for a request, the estimated tokens for a token budget. */
  cost: number;
}

export type RateLimitResult =
  | { allowed: true }
  | {
      allowed: false;
      /** When the refused bucket will hold enough tokens (ms, at least 1). */
      retryAfterMs: number;
      /** The caller's key of the refused charge. */
      key: string;
      /** The cost is larger than the capacity: the charge can never fit. */
      exceedsCapacity: boolean;
    };

type Refusal = Extract<RateLimitResult, { allowed: false }>;

export interface RateLimiter {
  /** All-or-nothing: either every charge fits and all are taken, or none is taken. */
  consume(charges: readonly RateLimitCharge[]): Promise<RateLimitResult>;
  close(): Promise<void>;
}

/** The shared store did not answer in time: the gateway fails closed (503). */
export class RateLimiterUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RateLimiterUnavailableError";
  }
}

const MS_PER_MINUTE = 60_000;
const MAX_KEY_LENGTH = 512;
/** The wait reported for a charge that can never fit: a minute, as for an empty bucket. */
const EXCEEDS_CAPACITY_RETRY_MS = MS_PER_MINUTE;
/**
 * A bucket refilled to exactly the cost can come out a few ulps short after
 * fractional refills; without this slack it would be refused with a 1 ms wait.
 */
const FIT_TOLERANCE = 1e-9;

const ALLOWED: RateLimitResult = Object.freeze({ allowed: true });

/** One bucket's share of a consume call: charges on the same key add up. */
interface Demand {
  key: string;
  capacity: number;
  cost: number;
}

/**
 * Validates the charges and merges those on the same key, so a call charging
 * one bucket twice needs both costs at once. Zero costs are dropped: they
 * change no bucket (refill is linear and capped, so a refill written now
 * equals the one computed later).
 */
function toDemands(charges: readonly RateLimitCharge[]): Demand[] {
  const demands = new Map<string, Demand>();
  for (const { key, limitPerMinute, cost } of charges) {
    if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new TypeError(`rate limit keys must have 1 to ${MAX_KEY_LENGTH} characters`);
    }
    if (typeof limitPerMinute !== "number" || !Number.isFinite(limitPerMinute) || limitPerMinute <= 0) {
      throw new TypeError(`limitPerMinute for "${key}" must be a finite number above 0, got ${limitPerMinute}`);
    }
    if (typeof cost !== "number" || !Number.isFinite(cost) || cost < 0) {
      throw new TypeError(`cost for "${key}" must be a finite number of at least 0, got ${cost}`);
    }
    const existing = demands.get(key);
    if (!existing) demands.set(key, { key, capacity: limitPerMinute, cost });
    else if (existing.capacity !== limitPerMinute) {
      throw new TypeError(`"${key}" is charged with two limits (${existing.capacity} and ${limitPerMinute})`);
    } else existing.cost += cost;
  }
  return [...demands.values()].filter((demand) => demand.cost > 0);
}

/** What a bucket holds after its last change. */
interface BucketState {
  tokens: number;
  updatedAt: number;
}

/**
 * The tokens a bucket keeps after the demand is taken at `now`, or the
 * refusal. A new bucket (no state) starts full.
 */
function take(state: BucketState | undefined, now: number, demand: Demand): number | Refusal {
  const { key, capacity, cost } = demand;
  if (cost > capacity) {
    return { allowed: false, retryAfterMs: EXCEEDS_CAPACITY_RETRY_MS, key, exceedsCapacity: true };
  }
  if (!state) return capacity - cost;
  // A clock that stepped back refills nothing rather than draining the bucket.
  const from = Math.min(state.updatedAt, now);
  // elapsed * capacity first: with integer times and limits the product is
  // exact, so a fake clock gives exact levels.
  const level = Math.min(capacity, state.tokens + ((now - from) * capacity) / MS_PER_MINUTE);
  if (level + FIT_TOLERANCE >= cost) return Math.max(0, level - cost);
  // Counted from the stored state, not from `level`: the refill's rounding
  // would turn an exact 1 ms wait into 2.
  const readyAt = from + ((cost - state.tokens) * MS_PER_MINUTE) / capacity;
  return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(readyAt - now)), key, exceedsCapacity: false };
}

/** The refusal to report: one that can never fit, else the longest wait; the first on ties. */
function worse(current: Refusal | undefined, candidate: Refusal): Refusal {
  if (!current) return candidate;
  if (candidate.exceedsCapacity !== current.exceedsCapacity) return candidate.exceedsCapacity ? candidate : current;
  return candidate.retryAfterMs > current.retryAfterMs ? candidate : current;
}

interface MemoryBucket extends BucketState {
  /** When the bucket is full again and so carries no state. */
  fullAt: number;
}

export interface MemoryRateLimiterOptions {
  /** Milliseconds on any fixed origin; a monotonic clock by default. */
  now?: () => number;
  /** Buckets kept at most (default 100_000). */
  maxKeys?: number;
}

/** Buckets in this process only: for a single gateway and for tests. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #now: () => number;
  readonly #maxKeys: number;
  /** In least-recently-used order: a used bucket is moved to the end. */
  readonly #buckets = new Map<string, MemoryBucket>();
  /** No bucket is full before this time, so no sweep for full buckets can free one. */
  #nextFullAt = Number.POSITIVE_INFINITY;

  constructor(options: MemoryRateLimiterOptions = {}) {
    // The wall clock can step (NTP, a VM resuming); buckets only need intervals.
    this.#now = options.now ?? (() => performance.now());
    this.#maxKeys = options.maxKeys ?? 100_000;
    if (!Number.isInteger(this.#maxKeys) || this.#maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${options.maxKeys}`);
    }
  }

  /** Buckets held now (for metrics and tests). */
  get size(): number {
    return this.#buckets.size;
  }

  async consume(charges: readonly RateLimitCharge[]): Promise<RateLimitResult> {
    const demands = toDemands(charges);
    if (demands.length === 0) return ALLOWED;
    const now = this.#now();
    const remaining: number[] = [];
    let refusal: Refusal | undefined;
    for (const demand of demands) {
      const outcome = take(this.#buckets.get(demand.key), now, demand);
      if (typeof outcome === "number") remaining.push(outcome);
      else refusal = worse(refusal, outcome);
    }
    if (refusal) {
      // A refused caller is still a user: evicting its empty bucket would hand it a full one.
      for (const demand of demands) this.#touch(demand.key);
      return refusal;
    }
    demands.forEach((demand, index) => {
      const tokens = remaining[index] as number;
      const fullAt = now + ((demand.capacity - tokens) * MS_PER_MINUTE) / demand.capacity;
      this.#buckets.delete(demand.key);
      this.#buckets.set(demand.key, { tokens, updatedAt: now, fullAt });
      this.#nextFullAt = Math.min(this.#nextFullAt, fullAt);
    });
    while (this.#buckets.size > this.#maxKeys) this.#evict(now);
    return ALLOWED;
  }

  async close(): Promise<void> {
    this.#buckets.clear();
  }

  #touch(key: string): void {
    const bucket = this.#buckets.get(key);
    if (!bucket) return;
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
  }

  /**
   * Drops every full bucket (they carry no state: a new bucket starts full),
   * else the least recently used one. The sweep runs only once some bucket
   * can be full, so a map of busy buckets is not scanned on every insert.
   */
  #evict(now: number): void {
    if (now >= this.#nextFullAt) {
      let nextFullAt = Number.POSITIVE_INFINITY;
      for (const [key, bucket] of this.#buckets) {
        if (bucket.fullAt <= now) this.#buckets.delete(key);
        else nextFullAt = Math.min(nextFullAt, bucket.fullAt);
      }
      this.#nextFullAt = nextFullAt;
      if (this.#buckets.size <= this.#maxKeys) return;
    }
    const oldest = this.#buckets.keys().next();
    if (!oldest.done) this.#buckets.delete(oldest.value);
  }
}

/** Bucket state outlives a full refill by this much, then Redis forgets it. */
const EXPIRY_MARGIN_MS = 1_000;

/**
 * Every bucket of a call in one atomic step. KEYS: one hash per bucket
 * (fields t = tokens, ts = last update); ARGV: capacity and cost per key.
 * Returns {1} when all fit and were taken, else {0, index of the refusal
 * (1-based), retry-after ms, 1 if the cost exceeds the capacity}. It mirrors
 * take and worse above. Time is the Redis server's, so gateways with skewed
 * clocks share one timeline; numbers are stored with 17 significant digits so
 * doubles survive the round trip.
 */
const CONSUME_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local after = {}
local worst, worstWait, worstExceeds = 0, -1, -1
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i - 1])
  local cost = tonumber(ARGV[2 * i])
  local wait, exceeds = 0, 0
  if cost > capacity then
    wait, exceeds = ${EXCEEDS_CAPACITY_RETRY_MS}, 1
  else
    local state = redis.call('HMGET', KEYS[i], 't', 'ts')
    if state[1] and state[2] then
      local tokens = tonumber(state[1])
      local from = math.min(tonumber(state[2]), now)
      local level = math.min(capacity, tokens + (now - from) * capacity / ${MS_PER_MINUTE})
      if level + ${FIT_TOLERANCE} >= cost then
        after[i] = math.max(0, level - cost)
      else
        wait = math.max(1, math.ceil(from + (cost - tokens) * ${MS_PER_MINUTE} / capacity - now))
      end
    else
      after[i] = capacity - cost
    end
  end
  if wait > 0 and (exceeds > worstExceeds or (exceeds == worstExceeds and wait > worstWait)) then
    worst, worstWait, worstExceeds = i, wait, exceeds
  end
end
if worst > 0 then
  return {0, worst, worstWait, worstExceeds}
end
local stamp = string.format('%.17g', now)
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i - 1])
  redis.call('HSET', KEYS[i], 't', string.format('%.17g', after[i]), 'ts', stamp)
  redis.call('PEXPIRE', KEYS[i], math.ceil((capacity - after[i]) * ${MS_PER_MINUTE} / capacity) + ${EXPIRY_MARGIN_MS})
end
return {1}
`;

type ConsumeReply = [fits: number, index?: number, retryAfterMs?: number, exceedsCapacity?: number];

type ScriptedRedis = Redis & {
  modelgateRateLimitConsume(keyCount: number, ...keysThenArgs: string[]): Promise<ConsumeReply>;
};

export interface RateLimiterLogger {
  warn(fields: object, message: string): void;
  info?(fields: object, message: string): void;
}

export interface RedisRateLimiterOptions {
  url: string;
  /** Prepended to every key (default "modelgate:rl:"). */
  keyPrefix?: string;
  /** How long a request waits for Redis before it is refused (default 500 ms). */
  commandTimeoutMs?: number;
  logger?: RateLimiterLogger;
}

/** Longest pause between reconnect attempts while Redis is unreachable. */
const MAX_RECONNECT_DELAY_MS = 1_000;

/** Buckets in Redis, shared by every gateway replica using the same prefix. */
export class RedisRateLimiter implements RateLimiter {
  readonly #client: ScriptedRedis;
  readonly #prefix: string;
  readonly #logger: RateLimiterLogger | undefined;
  /** Logged once per change, never per request or per reconnect attempt. */
  #reachable: boolean | undefined;
  #closed = false;
  /**
   * Aborted by close(). ioredis emits no "end" when it is closed between
   * reconnect attempts, so waiters for "ready" listen here instead.
   */
  readonly #closing = new AbortController();

  constructor(options: RedisRateLimiterOptions) {
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
      throw new RangeError(`commandTimeoutMs must be above 0, got ${options.commandTimeoutMs}`);
    }
    this.#prefix = options.keyPrefix ?? "modelgate:rl:";
    this.#logger = options.logger;
    const client = new Redis(options.url, {
      // Fail closed and fast: a command is refused at once while disconnected
      // and after commandTimeoutMs when Redis stalls; nothing queues behind an
      // outage to burst out when it ends.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: commandTimeoutMs,
      // Requests never wait on a connect; this only paces attempts to a
      // host that drops packets.
      connectTimeout: 2_000,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, MAX_RECONNECT_DELAY_MS),
      // How long close() lets a socket end before destroying it. No reply is
      // worth more than commandTimeoutMs, and ioredis also arms this timer
      // for a socket already gone, holding the process open for its length.
      disconnectTimeout: commandTimeoutMs,
    });
    client.defineCommand("modelgateRateLimitConsume", { lua: CONSUME_SCRIPT });
    this.#client = client as ScriptedRedis;
    client.on("ready", () => this.#setReachable(true));
    // ioredis emits "error" on every failed reconnect attempt; a listener is
    // also what keeps it from printing each one.
    client.on("error", (error: Error) => this.#setReachable(false, error));
    client.on("close", () => this.#setReachable(false));
  }

  /** Resolves once connected; rejects if the limiter is closed first. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new RateLimiterUnavailableError("the rate limiter is closed"));
    if (this.#client.status === "ready") return Promise.resolve();
    const signal = this.#closing.signal;
    return new Promise((resolve, reject) => {
      const onReady = () => {
        signal.removeEventListener("abort", onClose);
        resolve();
      };
      const onClose = () => {
        this.#client.off("ready", onReady);
        reject(new RateLimiterUnavailableError("the rate limiter closed before Redis was reachable"));
      };
      this.#client.once("ready", onReady);
      signal.addEventListener("abort", onClose, { once: true });
    });
  }

  async consume(charges: readonly RateLimitCharge[]): Promise<RateLimitResult> {
    const demands = toDemands(charges);
    if (demands.length === 0) return ALLOWED;
    const keys = demands.map((demand) => this.#prefix + demand.key);
    const args = demands.flatMap((demand) => [String(demand.capacity), String(demand.cost)]);
    let reply: ConsumeReply;
    try {
      reply = await this.#client.modelgateRateLimitConsume(keys.length, ...keys, ...args);
    } catch (error) {
      // Anything but an answer fails closed, a script error (a bug, or a key
      // of another type under the prefix) included.
      throw new RateLimiterUnavailableError("the rate limit store did not answer", { cause: error });
    }
    const [fits, index = 0, retryAfterMs = EXCEEDS_CAPACITY_RETRY_MS, exceedsCapacity = 0] = reply;
    if (fits === 1) return ALLOWED;
    const demand = demands[index - 1];
    if (!demand) throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)}`);
    return { allowed: false, retryAfterMs, key: demand.key, exceedsCapacity: exceedsCapacity === 1 };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    if (this.#client.status !== "ready") {
      this.#client.disconnect();
      return;
    }
    try {
      await this.#client.quit();
    } catch {
      this.#client.disconnect();
    }
  }

  #setReachable(reachable: boolean, error?: Error): void {
    if (this.#closed || this.#reachable === reachable) return;
    const wasDown = this.#reachable === false;
    this.#reachable = reachable;
    if (!reachable) {
      this.#logger?.warn(
        { err: error },
        "rate limiter cannot reach Redis: rate-limited requests fail until it is back",
      );
    } else if (wasDown) {
      this.#logger?.info?.({}, "rate limiter reached Redis again");
    }
  }
}
