// The quota stage: long-window budgets (docs/policies.md#quotas). A request
// under a grant with a quota is admitted while its budgets are not used up
// (one request is taken at once), and charged the tokens it actually used
// once its answer is complete; a stream that crosses the limit is never
// cut, and the next request is refused.
//
// Counters live in a QuotaStore shared by every gateway (Redis). So that a
// quota far from its limit costs no round trip per request, each gateway
// leases a share of what is left and serves from it locally; a lease is
// taken out of the budget, so leases never let the gateways together admit
// more than the limit. Near the limit leases shrink to nothing and every
// request asks the store.
import { createHash } from "node:crypto";
import type { QuotaGrant } from "@modelgate/policy";
import { Counter, type Registry } from "prom-client";
import type { CapturedResponse } from "./audit-capture.js";
import { PolicyDenial } from "./decide.js";
import { GatewayError } from "./errors.js";
import { type QuotaStore, QuotaStoreUnavailableError, type SyncResult } from "./quota-store.js";
import { extractUsage } from "./usage.js";

type Kind = "tokens" | "requests";
type Period = QuotaGrant["per"];

export interface QuotaWindow {
  /** Names the window in counter keys: "h2025-01-31T13", "d2025-01-31", "m2025-01". */
  id: string;
  start: number;
  end: number;
}

/** The calendar hour, day or month (UTC) that `now` falls in. */
export function quotaWindow(per: Period, now: number): QuotaWindow {
  const date = new Date(now);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  const iso = date.toISOString();
  if (per === "hour") {
    const start = Date.UTC(year, month, date.getUTCDate(), date.getUTCHours());
    return { id: `h${iso.slice(0, 13)}`, start, end: start + 3_600_000 };
  }
  if (per === "day") {
    const start = Date.UTC(year, month, date.getUTCDate());
    return { id: `d${iso.slice(0, 10)}`, start, end: start + 86_400_000 };
  }
  return { id: `m${iso.slice(0, 7)}`, start: Date.UTC(year, month, 1), end: Date.UTC(year, month + 1, 1) };
}

/** A duration as OpenAI's reset headers write it: "1h2m3s", "12m0s", "4s". */
export function formatReset(ms: number): string {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

export interface QuotaMetrics {
  refused: Counter<"scope" | "kind">;
  unavailable: Counter<"reason">;
  syncs: Counter<"outcome">;
  localAdmissions: Counter;
  thresholds: Counter<"threshold">;
}

export function createQuotaMetrics(registry: Registry): QuotaMetrics {
  return {
    refused: new Counter({
      name: "modelgate_quota_refused_total",
      help: "Requests refused with quota_exceeded, by the quota's scope and the budget used up (tokens, requests)",
      labelNames: ["scope", "kind"],
      registers: [registry],
    }),
    unavailable: new Counter({
      name: "modelgate_quota_unavailable_total",
      help: "Requests refused with quota_unavailable: the store was unreachable, or had lost the window's counters",
      labelNames: ["reason"],
      registers: [registry],
    }),
    syncs: new Counter({
      name: "modelgate_quota_syncs_total",
      help: "Round trips to the quota store (settle, admit, lease), by outcome",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    localAdmissions: new Counter({
      name: "modelgate_quota_local_admissions_total",
      help: "Quota checks answered from this gateway's lease, without a round trip",
      registers: [registry],
    }),
    thresholds: new Counter({
      name: "modelgate_quota_thresholds_crossed_total",
      help: "Quota counters that reached 80 or 100 percent of their limit (once per counter and window, across gateways)",
      labelNames: ["threshold"],
      registers: [registry],
    }),
  };
}

interface QuotaLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** The local reserve, as configured (MODELGATE_QUOTA_RESERVE_FRACTION, _MAX, MODELGATE_QUOTA_SYNC_MS). */
export interface QuotaReserveOptions {
  /** Share of what is left of a budget that one lease takes (0: no leases, every check asks the store). */
  reserveFraction: number;
  /** Most units (tokens or requests) one lease takes. */
  reserveMax: number;
  /** How often spending is settled and idle leases given back; a lease lasts three times this. */
  syncIntervalMs: number;
}

/**
 * 1 % of what is left, at most 10,000: a 2,000,000-token daily quota is
 * served locally in leases of 10,000 tokens while it is far from its limit,
 * and from Redis alone once less than 100 tokens are left.
 */
export const DEFAULT_QUOTA_OPTIONS: QuotaReserveOptions = {
  reserveFraction: 0.01,
  reserveMax: 10_000,
  syncIntervalMs: 5_000,
};

/**
 * A budget that reached 80 or 100 % in its window: reported once per
 * counter and window across every gateway (the store marks it), for the
 * control plane to raise an alert.
 */
export interface QuotaThreshold {
  policyId: string;
  scope: QuotaGrant["scope"];
  /** The group's name for a group budget; the subject's stable id for a subject's. */
  owner: string;
  kind: Kind;
  per: Period;
  /** The window's id (`2026-12-07` for a day). */
  window: string;
  used: number;
  limit: number;
  threshold: 80 | 100;
}

export interface QuotaKeeperOptions extends QuotaReserveOptions {
  store: QuotaStore;
  metrics: QuotaMetrics;
  /** Told each threshold crossing (after the log line); must not throw. */
  onThreshold?: ((crossing: QuotaThreshold) => void) | undefined;
  logger: QuotaLogger;
  /** Wall clock for windows (ms since the epoch). */
  now?: () => number;
}

/** One budget as this gateway tracks it. */
interface CounterState {
  key: string;
  kind: Kind;
  policyId: string;
  scope: QuotaGrant["scope"];
  per: Period;
  /** What the budget is charged to, for logs: "group <name>" or "subject <key>". */
  owner: string;
  /** Whose budget it is, for alerts: the group's name, or the subject's stable id. */
  ownerId: string;
  limit: number;
  window: QuotaWindow;
  /** The lease held and what was spent since the last sync (tokens may exceed the lease). */
  lease: number;
  spent: number;
  /** performance.now() after which the lease is not used: before the store counts it as spent. */
  leaseUntil: number;
  /** As of the last sync. */
  used: number;
  leasedElsewhere: number;
  /** Syncs of one counter run one after another. */
  chain: Promise<unknown>;
  usedSinceSync: boolean;
}

type Refusal =
  | { kind: "exceeded"; counter: CounterState; exhausted: boolean }
  | { kind: "unavailable"; error: GatewayError };

/** What an admitted request settles once its answer is complete. */
export interface QuotaCharge {
  /** `x-ratelimit-*` headers: the budgets as they stand before this request's tokens are known. */
  headers(): Record<string, string>;
  /** Charges the tokens the request used (or undoes nothing: its request was counted at admission). */
  settle(tokens: number): void;
}

/** Leases stop being used locally this long before the store would count them as spent. */
const LEASE_SAFETY_MS = 1_000;

export class QuotaKeeper {
  readonly #options: QuotaKeeperOptions;
  readonly #now: () => number;
  readonly #counters = new Map<string, CounterState>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  #unreachableLogged = false;

  constructor(options: QuotaKeeperOptions) {
    if (!(options.reserveFraction >= 0 && options.reserveFraction <= 1)) {
      throw new RangeError(`reserveFraction must be within 0-1, got ${options.reserveFraction}`);
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#timer = setInterval(() => void this.#sweep(), options.syncIntervalMs);
    // The gateway's listeners keep the process alive; close() settles.
    this.#timer.unref();
  }

  /**
   * Admits a request under its grant's quota for the subject `who` (its
   * subjectKey; `subjectId` names it in alerts): every budget must have room, and one request is taken from
   * each request budget, all or none. Throws the refusal: 429
   * quota_exceeded, or 503 quota_unavailable when the store cannot answer
   * and no lease covers the request.
   */
  async admit(grant: QuotaGrant, who: string, subjectId = who): Promise<QuotaCharge> {
    const counters = this.#countersOf(grant, who, subjectId);
    const outcomes = await Promise.all(
      counters.map((counter) =>
        this.#admitOne(counter, counter.kind === "requests" ? 1 : 0).then(
          (refusal) => refusal,
          (error: unknown): Refusal => ({ kind: "unavailable", error: this.#unavailable(error, counter) }),
        ),
      ),
    );
    const refusals = outcomes.filter((outcome): outcome is Refusal => outcome !== undefined);
    if (refusals.length > 0) {
      // All or none: requests taken from the budgets that had room go back,
      // to the store at once, so no other gateway is refused for them.
      const undone = counters.filter((counter, index) => outcomes[index] === undefined && counter.kind === "requests");
      await Promise.allSettled(
        undone.map((counter) => {
          counter.spent -= 1;
          return this.#serialized(counter, () => this.#sync(counter, 0));
        }),
      );
      throw this.#refusal(grant, counters, refusals);
    }
    const tokenCounters = counters.filter((counter) => counter.kind === "tokens");
    return {
      headers: () => this.#headers(counters),
      settle: (tokens) => {
        if (!(tokens > 0)) return;
        for (const counter of tokenCounters) {
          counter.spent += tokens;
          counter.usedSinceSync = true;
          // Past its lease, the spending goes to the store now: other
          // gateways must see it before they admit more.
          if (counter.spent > counter.lease || performance.now() >= counter.leaseUntil) {
            this.#serialized(counter, () => this.#sync(counter, 0)).catch(() => {
              // Kept in `spent`; the next sync settles it.
            });
          }
        }
      },
    };
  }

  /** Settles every counter and gives the leases back (gateway shutdown). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.allSettled(
      [...this.#counters.values()].map((counter) => this.#serialized(counter, () => this.#sync(counter, 0, 0))),
    );
    this.#counters.clear();
    await this.#options.store.close();
  }

  #countersOf(grant: QuotaGrant, who: string, subjectId: string): CounterState[] {
    const owners =
      grant.scope === "group" && grant.groups.length > 0
        ? grant.groups.map((group) => ({ id: `g:${digest(group)}`, owner: `group ${group}`, ownerId: group }))
        : [{ id: `s:${who}`, owner: `subject ${who}`, ownerId: subjectId }];
    const window = quotaWindow(grant.per, this.#now());
    const kinds: [Kind, number][] = [];
    if (grant.requests !== undefined) kinds.push(["requests", grant.requests]);
    if (grant.tokens !== undefined) kinds.push(["tokens", grant.tokens]);
    const counters: CounterState[] = [];
    for (const { id, owner, ownerId } of owners) {
      for (const [kind, limit] of kinds) {
        const key = `${grant.policyId}:${id}:${kind}:${window.id}`;
        let counter = this.#counters.get(key);
        if (!counter) {
          counter = {
            key,
            kind,
            policyId: grant.policyId,
            scope: grant.scope,
            per: grant.per,
            owner,
            ownerId,
            limit,
            window,
            lease: 0,
            spent: 0,
            leaseUntil: 0,
            used: 0,
            leasedElsewhere: 0,
            chain: Promise.resolve(),
            usedSinceSync: false,
          };
          this.#counters.set(key, counter);
        }
        // A policy edited within the window keeps its counter, with the new limit.
        counter.limit = limit;
        counters.push(counter);
      }
    }
    return counters;
  }

  /** Undefined when admitted. */
  async #admitOne(counter: CounterState, take: number): Promise<Refusal | undefined> {
    counter.usedSinceSync = true;
    if (this.#fromLease(counter, take)) return undefined;
    return this.#serialized(counter, async () => {
      // The sync before this one may have brought a new lease.
      if (this.#fromLease(counter, take)) return undefined;
      const result = await this.#sync(counter, take);
      if (result.status === "admitted") return undefined;
      return {
        kind: "exceeded",
        counter,
        exhausted: counter.used >= counter.limit,
      } satisfies Refusal;
    });
  }

  #fromLease(counter: CounterState, take: number): boolean {
    if (counter.lease <= 0 || performance.now() >= counter.leaseUntil) return false;
    const fits = take > 0 ? counter.spent + take <= counter.lease : counter.spent < counter.lease;
    if (!fits) return false;
    counter.spent += take;
    this.#options.metrics.localAdmissions.inc();
    return true;
  }

  #serialized<T>(counter: CounterState, step: () => Promise<T>): Promise<T> {
    const run = counter.chain.then(step, step);
    counter.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * One round trip: settles what was spent, gives back the lease, admits
   * `take` and takes a new lease (`fraction` of what is left; 0 to take none).
   */
  async #sync(
    counter: CounterState,
    take: number,
    fraction = this.#closed ? 0 : this.#options.reserveFraction,
  ): Promise<Extract<SyncResult, { status: "admitted" | "refused" }>> {
    const { spent, lease: held, leaseUntil } = counter;
    counter.spent = 0;
    counter.lease = 0;
    counter.leaseUntil = 0;
    counter.usedSinceSync = false;
    const sentAt = performance.now();
    let result: SyncResult;
    try {
      result = await this.#options.store.sync({
        key: counter.key,
        limit: counter.limit,
        windowStart: counter.window.start,
        windowEnd: counter.window.end,
        spent,
        held,
        take,
        leaseFraction: fraction,
        leaseMax: this.#options.reserveMax,
      });
    } catch (error) {
      // Nothing was settled: the spending and the lease stay as they were.
      counter.spent += spent;
      counter.lease = held;
      counter.leaseUntil = leaseUntil;
      this.#options.metrics.syncs.inc({ outcome: "failed" });
      throw error;
    }
    this.#options.metrics.syncs.inc({ outcome: result.status });
    if (result.status === "lost") {
      throw new QuotaLostError(result.lostAt);
    }
    if (this.#unreachableLogged) {
      this.#unreachableLogged = false;
      this.#options.logger.warn({}, "quota store reachable again");
    }
    counter.used = result.used;
    counter.leasedElsewhere = result.leasedElsewhere;
    counter.lease = result.lease;
    counter.leaseUntil = sentAt + this.#options.store.leaseMs - LEASE_SAFETY_MS;
    if (result.crossed > 0) {
      this.#options.metrics.thresholds.inc({ threshold: String(result.crossed) });
      // The alert: one per counter and window across all gateways (the
      // store marks it), for log-based alerting and the SIEM.
      this.#options.logger.warn(
        {
          event: "modelgate.quota_threshold",
          policyId: counter.policyId,
          scope: counter.scope,
          owner: counter.owner,
          kind: counter.kind,
          per: counter.per,
          window: counter.window.id,
          used: result.used,
          limit: counter.limit,
          threshold: result.crossed,
        },
        `quota ${result.crossed}% used`,
      );
      this.#options.onThreshold?.({
        policyId: counter.policyId,
        scope: counter.scope,
        owner: counter.ownerId,
        kind: counter.kind,
        per: counter.per,
        window: counter.window.id,
        used: result.used,
        limit: counter.limit,
        threshold: result.crossed as 80 | 100,
      });
    }
    return result;
  }

  /** Settles spending, renews leases in use, gives back idle ones and forgets finished windows. */
  async #sweep(): Promise<void> {
    if (this.#closed) return;
    const now = this.#now();
    const work: Promise<unknown>[] = [];
    for (const counter of this.#counters.values()) {
      const over = now >= counter.window.end;
      const idle = !counter.usedSinceSync;
      if (counter.spent === 0 && counter.lease === 0 && (idle || over)) {
        this.#counters.delete(counter.key);
        continue;
      }
      if (over || idle) {
        work.push(
          this.#serialized(counter, () => this.#sync(counter, 0, 0)).then(() => {
            if (counter.spent === 0 && counter.lease === 0) this.#counters.delete(counter.key);
          }),
        );
      } else if (counter.spent !== 0) {
        work.push(this.#serialized(counter, () => this.#sync(counter, 0)));
      }
    }
    work.push(this.#options.store.checkEpoch());
    await Promise.allSettled(work);
  }

  #unavailable(error: unknown, counter: CounterState): GatewayError {
    if (error instanceof QuotaLostError) {
      this.#options.metrics.unavailable.inc({ reason: "lost" });
      return new GatewayError(
        "quota_unavailable",
        "the quota's counters were lost and what was used this period is unknown, so it admits nothing until the period ends",
        null,
        { "retry-after": String(secondsUntil(counter.window.end, this.#now())) },
      );
    }
    if (!(error instanceof QuotaStoreUnavailableError)) throw error;
    this.#options.metrics.unavailable.inc({ reason: "unreachable" });
    if (!this.#unreachableLogged) {
      this.#unreachableLogged = true;
      this.#options.logger.warn(
        { err: error.cause },
        "quota store unreachable: requests under a quota fail unless a lease covers them",
      );
    }
    return new GatewayError("quota_unavailable", "quotas cannot be checked right now; retry later", null, {
      "retry-after": "1",
    });
  }

  #refusal(grant: QuotaGrant, counters: CounterState[], refusals: Refusal[]): Error {
    const exceeded = refusals.find((refusal) => refusal.kind === "exceeded");
    if (!exceeded) return (refusals[0] as Extract<Refusal, { kind: "unavailable" }>).error;
    const { counter, exhausted } = exceeded;
    this.#options.metrics.refused.inc({ scope: counter.scope, kind: counter.kind });
    const now = this.#now();
    // Used up: the budget renews with the window. Not used up, but the rest
    // is leased to other gateways: they give back what they do not use
    // within their lease time.
    const retryAfter = exhausted
      ? secondsUntil(counter.window.end, now)
      : Math.ceil(this.#options.store.leaseMs / 1000);
    const budget = `${counter.limit} ${counter.kind} per ${counter.per}`;
    const whose = counter.owner.startsWith("group ")
      ? ` shared by ${counter.owner.replace(/^group /, 'group "')}"`
      : "";
    const message = exhausted
      ? `quota of ${budget}${whose} used up; it renews in ${formatReset(counter.window.end - now)}`
      : `quota of ${budget}${whose}: what is left is reserved by other gateways; retry in ${retryAfter} s`;
    const headers = { ...this.#headers(counters), "retry-after": String(retryAfter) };
    return new PolicyDenial(new GatewayError("quota_exceeded", message, null, headers), [grant.policyId], [message]);
  }

  /** Per kind, the budget with the least left. */
  #headers(counters: CounterState[]): Record<string, string> {
    const headers: Record<string, string> = {};
    const now = this.#now();
    for (const kind of ["requests", "tokens"] as const) {
      let tightest: { counter: CounterState; remaining: number } | undefined;
      for (const counter of counters) {
        if (counter.kind !== kind) continue;
        const remaining = Math.max(0, counter.limit - counter.used - counter.leasedElsewhere - counter.spent);
        if (!tightest || remaining < tightest.remaining) tightest = { counter, remaining };
      }
      if (!tightest) continue;
      headers[`x-ratelimit-limit-${kind}`] = String(tightest.counter.limit);
      headers[`x-ratelimit-remaining-${kind}`] = String(tightest.remaining);
      headers[`x-ratelimit-reset-${kind}`] = formatReset(tightest.counter.window.end - now);
    }
    return headers;
  }
}

/** The store answered that the window's counters were lost. */
class QuotaLostError extends Error {
  readonly lostAt: number;
  constructor(lostAt: number) {
    super("quota counters lost");
    this.lostAt = lostAt;
  }
}

function secondsUntil(end: number, now: number): number {
  return Math.max(1, Math.ceil((end - now) / 1000));
}

/** Group names are the identity provider's: hashed, so any name makes a safe, bounded key. */
function digest(value: string): string {
  return createHash("sha256").update(value).digest("base64url").slice(0, 22);
}

/**
 * The tokens a finished request is charged: what the runtime reported
 * (total, or prompt + completion), else the estimate the tokens-per-minute
 * budget used; nothing for an answer that failed without a report (the
 * runtime generated nothing the caller got).
 */
export function tokensUsed(captured: CapturedResponse, status: number, estimated: number): number {
  const response = captured.response;
  const usage =
    response && response.encoding === undefined ? extractUsage(captured.contentType, response.text) : undefined;
  if (usage) {
    if (usage.total_tokens !== undefined) return usage.total_tokens;
    const sum = (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0);
    if (sum > 0) return sum;
  }
  return status >= 400 ? 0 : estimated;
}
