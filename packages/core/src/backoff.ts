/** Delays for reconnect loops: exponential growth with full jitter. */
export interface Backoff {
  /** The delay before the next attempt, in milliseconds. */
  next(): number;
  /** Call after a success, so the next failure starts small again. */
  reset(): void;
}

/**
 * "Full jitter": each delay is uniformly random in [0, min(max, initial·2^n)],
 * so many agents that lost the same gateway do not reconnect in lockstep.
 * A floor of `initialMs / 2` keeps a tight failure loop from spinning.
 */
export function createBackoff({
  initialMs = 200,
  maxMs = 30_000,
  random = Math.random,
}: {
  initialMs?: number;
  maxMs?: number;
  random?: () => number;
} = {}): Backoff {
  let attempt = 0;
  return {
    next() {
      const ceiling = Math.min(maxMs, initialMs * 2 ** attempt);
      attempt = Math.min(attempt + 1, 30);
      return Math.max(initialMs / 2, Math.round(random() * ceiling));
    },
    reset() {
      attempt = 0;
    },
  };
}
