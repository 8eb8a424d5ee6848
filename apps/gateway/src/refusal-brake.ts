// The refusal brake: a caller refused again and again is answered slower.
//
// Refusing is cheap for the gateway but not free: a reconnect loop of
// requests it refuses (a key without grants, a caller at its in-flight cap,
// bad credentials) is accepted, authenticated, refused and recorded as fast
// as the attacker can send, and on a shared host that CPU comes out of every
// other caller's latency. Each caller has a budget of refusals, a token
// bucket of `burst` refilled at `perSecond`. Past it a refusal is answered
// when the budget has earned it back, at most `maxDelayMs` later, holding
// only its socket (no in-flight place, no body, no audit place). So one
// connection refused in a loop gets `perSecond` answers a second, and N
// connections about N / maxDelay a second, instead of as many as the gateway
// can refuse. Answers that are not refusals are never delayed, and a caller
// within its budget never notices.
//
// A caller is its subject once authenticated, otherwise its client address
// (IPv6 by /64, what one host is usually given). Everything is bounded: the
// callers tracked (least recently refused forgotten first), a caller's debt
// (`maxDelayMs` of refills, so it recovers soon after it stops), and the
// refusals held back at once (past that, answered at once).

export interface RefusalBrakeOptions {
  /** Refusals a caller earns back per second. */
  perSecond: number;
  /** Refusals a caller may get in a burst before the brake applies. */
  burst: number;
  /** The longest a refusal past the budget waits before it is answered; 0 turns the brake off. */
  maxDelayMs: number;
  /** Refusals waiting at once, over all callers; past that they are answered at once. */
  maxDelayed: number;
  /** Callers whose budget is remembered (default 100,000). */
  maxTracked?: number;
}

export const DEFAULT_REFUSAL_BRAKE: RefusalBrakeOptions = {
  perSecond: 100,
  burst: 200,
  maxDelayMs: 10_000,
  maxDelayed: 10_000,
};

const DEFAULT_MAX_TRACKED = 100_000;

interface Budget {
  tokens: number;
  /** When `tokens` was last brought up to date (ms, monotonic). */
  at: number;
}

export class RefusalBrake {
  private readonly budgets = new Map<string, Budget>();
  private readonly waiting = new Set<() => void>();
  private readonly maxTracked: number;
  private readonly options: RefusalBrakeOptions;
  private readonly now: () => number;
  private closed = false;

  /** `now` is a monotonic clock in milliseconds (tests pass their own). */
  constructor(options: RefusalBrakeOptions, now: () => number = () => performance.now()) {
    this.options = options;
    this.now = now;
    this.maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED;
  }

  /** Refusals waiting for their answer now. */
  get delayed(): number {
    return this.waiting.size;
  }

  /**
   * Charges one refusal to `caller`; returns how long its answer must wait
   * (0: answer at once, within the budget, with the brake off or closed, or
   * with too many refusals held back already). Pass a non-zero result to
   * `wait`, synchronously, so the bound on held refusals holds.
   */
  charge(caller: string): number {
    if (this.options.maxDelayMs <= 0 || this.closed) return 0;
    const delayMs = this.spend(caller);
    return this.waiting.size >= this.options.maxDelayed ? 0 : delayMs;
  }

  /** Waits `delayMs`, or less if `signal` aborts or the brake closes first. */
  async wait(delayMs: number, signal?: AbortSignal): Promise<void> {
    if (delayMs <= 0 || this.closed || signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, delayMs);
      signal?.addEventListener("abort", done, { once: true });
      this.waiting.add(done);
    });
  }

  /** Answers every waiting refusal now, and delays none after (shutdown). */
  close(): void {
    this.closed = true;
    for (const done of [...this.waiting]) done();
  }

  /**
   * Takes one refusal from the caller's budget; returns how long the refusal
   * waits for the budget to earn it back (0 when there was one to take).
   */
  private spend(caller: string): number {
    const { burst, perSecond, maxDelayMs } = this.options;
    const now = this.now();
    let budget = this.budgets.get(caller);
    if (budget) {
      // Re-inserted, so the map's order is least recently refused first.
      this.budgets.delete(caller);
      budget.tokens = Math.min(burst, budget.tokens + ((now - budget.at) / 1000) * perSecond);
      budget.at = now;
    } else {
      this.makeRoom(now);
      budget = { tokens: burst, at: now };
    }
    this.budgets.set(caller, budget);
    // Debt is bounded by what the longest delay earns back, so a caller
    // that stops is out of debt within maxDelayMs.
    budget.tokens = Math.max(budget.tokens - 1, -(maxDelayMs / 1000) * perSecond);
    if (budget.tokens >= 0) return 0;
    return Math.min(maxDelayMs, Math.ceil((-budget.tokens / perSecond) * 1000));
  }

  /**
   * Keeps the map within its bound: callers whose budget has refilled are
   * the same as callers never seen, so they go first; then the least
   * recently refused, down to 90 % so this runs once per many new callers.
   */
  private makeRoom(now: number): void {
    if (this.budgets.size < this.maxTracked) return;
    for (const [caller, budget] of this.budgets) {
      if (budget.tokens + ((now - budget.at) / 1000) * this.options.perSecond >= this.options.burst) {
        this.budgets.delete(caller);
      }
    }
    const keep = Math.floor(this.maxTracked * 0.9);
    for (const caller of this.budgets.keys()) {
      if (this.budgets.size <= keep) break;
      this.budgets.delete(caller);
    }
  }
}

/**
 * The caller a refusal is charged to when no subject is known: the client's
 * address, an IPv4-mapped IPv6 address as IPv4, other IPv6 addresses by
 * their /64 prefix (one host usually has a whole /64 to pick from).
 */
export function addressCaller(remoteAddress: string | undefined): string {
  if (!remoteAddress) return "address:unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
  if (mapped) return `address:${mapped[1]}`;
  if (!remoteAddress.includes(":")) return `address:${remoteAddress}`;
  return `address:${ipv6Prefix64(remoteAddress)}`;
}

/** The first four 16-bit groups of an IPv6 address, expanded (`::` and zone handled). */
function ipv6Prefix64(address: string): string {
  const withoutZone = address.split("%", 1)[0] ?? address;
  const [head = "", tail] = withoutZone.split("::", 2);
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  // An embedded IPv4 tail counts as two groups.
  const tailCount = tailGroups.reduce((sum, group) => sum + (group.includes(".") ? 2 : 1), 0);
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array(Math.max(0, 8 - headGroups.length - tailCount)).fill("0"), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((group) => (Number.parseInt(group, 16) || 0).toString(16))
    .join(":")}::/64`;
}
