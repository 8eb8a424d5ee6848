// Where quota counters live: in Redis, shared by every gateway replica, or
// in this process for a single gateway and for tests. One operation, sync,
// does all of a gateway's business with one counter in one atomic step:
// settle what it spent since the last sync, give back its lease, admit
// what must be admitted now, and take a new lease of the budget left.
// docs/policies.md#quotas explains the arithmetic and its bounds.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";

export interface SyncRequest {
  /** The counter's key (the store adds its prefix); it names the window, so a new window starts from zero. */
  key: string;
  limit: number;
  /** When the counter's window began (ms since the epoch, UTC). */
  windowStart: number;
  /** When it ends: the counter is forgotten some time after. */
  windowEnd: number;
  /** What this gateway spent since its last sync (negative to give back an admission that was undone). */
  spent: number;
  /** The lease this gateway holds, as it believes. */
  held: number;
  /**
   * Units to admit now, only if they fit under the limit: 1 for a request.
   * 0 admits a token charge that comes later, while anything is left.
   */
  take: number;
  /** Of the budget left after this sync, the share and the most to lease to this gateway (0: no lease). */
  leaseFraction: number;
  leaseMax: number;
}

export type SyncResult =
  | {
      status: "admitted" | "refused";
      /** Everything settled, this sync included. */
      used: number;
      /** Leases other gateways hold now. */
      leasedElsewhere: number;
      /** The lease granted to this gateway (valid for the store's lease time). */
      lease: number;
      /** 80 or 100 when this sync took the counter past that share of its limit, first of all gateways in this window. */
      crossed: 0 | 80 | 100;
    }
  | {
      /**
       * The store lost its data (Redis restarted empty) during this
       * counter's window: what was spent before is unknown.
       */
      status: "lost";
      lostAt: number;
    };

export interface QuotaStore {
  sync(request: SyncRequest): Promise<SyncResult>;
  /** Looks for a loss of data even when no counter is synced (cheap). */
  checkEpoch(): Promise<void>;
  /** How long a lease is good for, from its grant; a lease not settled by then counts as spent. */
  readonly leaseMs: number;
  close(): Promise<void>;
}

/** The store did not answer: quota'd requests fail closed (503) unless a lease covers them. */
export class QuotaStoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QuotaStoreUnavailableError";
  }
}

/** A window's counter outlives the window by this much, for late settlements. */
const COUNTER_GRACE_SECONDS = 3_600;

/** The lease a sync grants: a share of what is left, capped, never more than what is left. */
function leaseOf(room: number, fraction: number, max: number): number {
  if (room <= 0) return 0;
  return Math.max(0, Math.floor(Math.min(room * fraction, max, room)));
}

function crossing(before: number, after: number, limit: number, alerted: Set<number>): 0 | 80 | 100 {
  let crossed: 0 | 80 | 100 = 0;
  for (const threshold of [80, 100] as const) {
    if (after * 100 >= limit * threshold && before * 100 < limit * threshold && !alerted.has(threshold)) {
      alerted.add(threshold);
      crossed = threshold;
    }
  }
  return crossed;
}

interface MemoryCounter {
  used: number;
  /** Gateway id → lease and when it expires. */
  leases: Map<string, { amount: number; expiresAt: number }>;
  alerted: Set<number>;
  windowEnd: number;
}

/** Counters in this process: one gateway (its lease is its own), and tests. */
export class MemoryQuotaStore implements QuotaStore {
  readonly leaseMs: number;
  readonly #counters = new Map<string, MemoryCounter>();
  readonly #gatewayId: string;
  readonly #now: () => number;

  constructor(options: { gatewayId?: string; leaseMs?: number; now?: () => number } = {}) {
    this.#gatewayId = options.gatewayId ?? randomUUID();
    this.leaseMs = options.leaseMs ?? 15_000;
    this.#now = options.now ?? Date.now;
  }

  async sync(request: SyncRequest): Promise<SyncResult> {
    const now = this.#now();
    for (const [key, counter] of this.#counters) {
      if (counter.windowEnd + COUNTER_GRACE_SECONDS * 1000 < now) this.#counters.delete(key);
    }
    let counter = this.#counters.get(request.key);
    if (!counter) {
      counter = { used: 0, leases: new Map(), alerted: new Set(), windowEnd: request.windowEnd };
      this.#counters.set(request.key, counter);
    }
    let elsewhere = 0;
    for (const [id, lease] of counter.leases) {
      if (id === this.#gatewayId) continue;
      if (lease.expiresAt <= now) {
        counter.used += lease.amount;
        counter.leases.delete(id);
      } else elsewhere += lease.amount;
    }
    const before = counter.used;
    const mine = counter.leases.get(this.#gatewayId);
    counter.used += mine ? request.spent : request.spent - request.held;
    counter.leases.delete(this.#gatewayId);
    const admitted =
      request.take === 0
        ? counter.used + elsewhere < request.limit
        : counter.used + elsewhere + request.take <= request.limit;
    if (admitted) counter.used += request.take;
    const lease = admitted
      ? leaseOf(request.limit - counter.used - elsewhere, request.leaseFraction, request.leaseMax)
      : 0;
    if (lease > 0) counter.leases.set(this.#gatewayId, { amount: lease, expiresAt: now + this.leaseMs });
    return {
      status: admitted ? "admitted" : "refused",
      used: counter.used,
      leasedElsewhere: elsewhere,
      lease,
      crossed: crossing(before, counter.used, request.limit, counter.alerted),
    };
  }

  async checkEpoch(): Promise<void> {}

  async close(): Promise<void> {
    this.#counters.clear();
  }
}

/**
 * The data-loss guard, first in every script. KEYS[2] holds the store's
 * epoch, a random id written on first use; KEYS[3] the time a loss was
 * noticed. ARGV[1] is the epoch this gateway saw before ('' if none),
 * ARGV[2] a fresh one. An epoch that vanished (Redis restarted without its
 * data) or changed under a gateway that saw another one means the counters
 * are gone: the loss is noted, and counters whose window began before it
 * are refused until an operator accepts the loss by deleting KEYS[3].
 */
const EPOCH_GUARD = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  if ARGV[1] ~= '' then redis.call('SET', KEYS[3], now, 'NX') end
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
elseif ARGV[1] ~= '' and epoch ~= ARGV[1] then
  redis.call('SET', KEYS[3], now, 'NX')
end
local lost = redis.call('GET', KEYS[3])
`;

const CHECK_EPOCH_SCRIPT = `${EPOCH_GUARD}
return {epoch, lost or ''}
`;

/**
 * One counter's sync (see SyncRequest). KEYS[1] is the counter, a hash:
 * `used` (settled), `l:<gateway>` = "<lease>:<expires ms>", `a80`/`a100`
 * (alerted). ARGV[3..] = limit, gateway id, spent, held, take, lease
 * fraction, lease max, lease ms, window start ms, expire-at s. Returns
 * {1 admitted | 0 refused | -1 lost, used or lost-at, leased elsewhere,
 * lease, crossed, epoch}. Mirrors MemoryQuotaStore.sync. Time is the Redis
 * server's, so gateways with skewed clocks agree on lease expiry.
 */
const SYNC_SCRIPT = `${EPOCH_GUARD}
local windowStart = tonumber(ARGV[11])
if lost and windowStart < tonumber(lost) then
  return {-1, tonumber(lost), 0, 0, 0, epoch}
end
local limit = tonumber(ARGV[3])
local gateway = ARGV[4]
local spent = tonumber(ARGV[5])
local held = tonumber(ARGV[6])
local take = tonumber(ARGV[7])
local fields = redis.call('HGETALL', KEYS[1])
local used, elsewhere, mine = 0, 0, false
for i = 1, #fields, 2 do
  local field = fields[i]
  if field == 'used' then
    used = used + tonumber(fields[i + 1])
  elseif string.sub(field, 1, 2) == 'l:' then
    local amount, expires = string.match(fields[i + 1], '^(%d+):(%d+)$')
    amount, expires = tonumber(amount), tonumber(expires)
    if string.sub(field, 3) == gateway then
      mine = true
    elseif expires <= now then
      -- A lease its gateway never settled (it died): counted as spent.
      used = used + amount
      redis.call('HDEL', KEYS[1], field)
    else
      elsewhere = elsewhere + amount
    end
  end
end
local before = used
if mine then
  used = used + spent
else
  -- Another gateway already counted this lease (if any) as spent.
  used = used + spent - held
end
local admitted
if take == 0 then
  admitted = used + elsewhere < limit
else
  admitted = used + elsewhere + take <= limit
end
local lease = 0
if admitted then
  used = used + take
  local room = limit - used - elsewhere
  if room > 0 then
    lease = math.floor(math.min(room * tonumber(ARGV[8]), tonumber(ARGV[9]), room))
  end
end
if lease > 0 then
  redis.call('HSET', KEYS[1], 'l:' .. gateway, string.format('%d:%d', lease, now + tonumber(ARGV[10])))
else
  redis.call('HDEL', KEYS[1], 'l:' .. gateway)
end
redis.call('HSET', KEYS[1], 'used', string.format('%d', used))
redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[12]))
local crossed = 0
if used * 100 >= limit * 80 and before * 100 < limit * 80 and redis.call('HSETNX', KEYS[1], 'a80', now) == 1 then
  crossed = 80
end
if used >= limit and before < limit and redis.call('HSETNX', KEYS[1], 'a100', now) == 1 then
  crossed = 100
end
return {admitted and 1 or 0, used, elsewhere, lease, crossed, epoch}
`;

type SyncReply = [
  status: number,
  usedOrLostAt: number,
  elsewhere: number,
  lease: number,
  crossed: number,
  epoch: string,
];

type ScriptedRedis = Redis & {
  modelgateQuotaSync(keyCount: number, ...keysThenArgs: string[]): Promise<SyncReply>;
  modelgateQuotaEpoch(keyCount: number, ...keysThenArgs: string[]): Promise<[epoch: string, lostAt: string]>;
};

export interface QuotaStoreLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  info?(fields: object, message: string): void;
}

export interface RedisQuotaStoreOptions {
  url: string;
  gatewayId: string;
  /** Prepended to every key (default "modelgate:quota:"). */
  keyPrefix?: string;
  /** How long a request waits for Redis before it is refused (default 500 ms). */
  commandTimeoutMs?: number;
  leaseMs?: number;
  logger?: QuotaStoreLogger;
}

/** Counters in Redis, shared by every gateway replica using the same prefix. */
export class RedisQuotaStore implements QuotaStore {
  readonly leaseMs: number;
  readonly #client: ScriptedRedis;
  readonly #prefix: string;
  readonly #gatewayId: string;
  readonly #logger: QuotaStoreLogger | undefined;
  /** The epoch this gateway saw; '' until its first sync. */
  #epoch = "";
  #lossLogged = false;

  constructor(options: RedisQuotaStoreOptions) {
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.#prefix = options.keyPrefix ?? "modelgate:quota:";
    this.#gatewayId = options.gatewayId;
    this.#logger = options.logger;
    // As the rate limiter's connection (rate-limit.ts): nothing queues
    // behind an outage, a stalled Redis fails a request after the timeout.
    const client = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: commandTimeoutMs,
      connectTimeout: 2_000,
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
      disconnectTimeout: commandTimeoutMs,
    });
    client.defineCommand("modelgateQuotaSync", { lua: SYNC_SCRIPT });
    client.defineCommand("modelgateQuotaEpoch", { lua: CHECK_EPOCH_SCRIPT });
    // Reconnect attempts report here; the keeper logs outages once.
    client.on("error", () => {});
    this.#client = client as ScriptedRedis;
  }

  /** Resolves once connected (tests). */
  async ready(): Promise<void> {
    if (this.#client.status === "ready") return;
    await new Promise<void>((resolve) => this.#client.once("ready", () => resolve()));
  }

  async sync(request: SyncRequest): Promise<SyncResult> {
    const args = [
      this.#epoch,
      randomUUID(),
      String(request.limit),
      this.#gatewayId,
      String(request.spent),
      String(request.held),
      String(request.take),
      String(request.leaseFraction),
      String(request.leaseMax),
      String(this.leaseMs),
      String(request.windowStart),
      String(Math.ceil(request.windowEnd / 1000) + COUNTER_GRACE_SECONDS),
    ];
    let reply: SyncReply;
    try {
      reply = await this.#client.modelgateQuotaSync(3, ...this.#keys(request.key), ...args);
    } catch (error) {
      throw new QuotaStoreUnavailableError("the quota store did not answer", { cause: error });
    }
    const [status, usedOrLostAt, elsewhere, lease, crossed, epoch] = reply;
    this.#adopt(epoch);
    if (status === -1) {
      this.#noteLoss(usedOrLostAt);
      return { status: "lost", lostAt: usedOrLostAt };
    }
    return {
      status: status === 1 ? "admitted" : "refused",
      used: usedOrLostAt,
      leasedElsewhere: elsewhere,
      lease,
      crossed: crossed === 80 || crossed === 100 ? crossed : 0,
    };
  }

  async checkEpoch(): Promise<void> {
    // Only a gateway that saw an epoch can notice it vanished.
    if (this.#epoch === "") return;
    try {
      const [epoch, lostAt] = await this.#client.modelgateQuotaEpoch(3, ...this.#keys("-"), this.#epoch, randomUUID());
      this.#adopt(epoch);
      if (lostAt !== "") this.#noteLoss(Number(lostAt));
      else this.#lossLogged = false;
    } catch {
      // Unreachable: the next sync reports it.
    }
  }

  async close(): Promise<void> {
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

  #keys(key: string): [string, string, string] {
    return [`${this.#prefix}c:${key}`, `${this.#prefix}epoch`, `${this.#prefix}lost-at`];
  }

  /**
   * Later syncs compare with the epoch found now. After a loss every
   * gateway adopts the new epoch, so accepting the loss (deleting the
   * lost-at key) is not undone by a gateway that noticed late.
   */
  #adopt(epoch: string): void {
    this.#epoch = epoch;
  }

  #noteLoss(lostAt: number): void {
    if (this.#lossLogged) return;
    this.#lossLogged = true;
    this.#logger?.error(
      { lostAt: new Date(lostAt).toISOString(), key: `${this.#prefix}lost-at` },
      "quota counters were lost (Redis restarted without its data): quotas whose window began before then refuse requests (503 quota_unavailable) until the window ends or an operator deletes the key",
    );
  }
}
