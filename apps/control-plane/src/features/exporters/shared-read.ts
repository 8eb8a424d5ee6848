/**
 * Lets concurrent callers share one read: while a read is in flight, every
 * caller gets its result; the first call after it settles starts a new one.
 * The audit worker stores a batch's records concurrently and runs the
 * export and alert hooks for each: with this, a batch of 100 records costs
 * one read of the (small) exporter and alert-rule tables, not 100 each,
 * while a record stored after a change still reads the change (its read
 * starts after the change committed, or joins one that did).
 */
export function sharedRead<T>(read: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => {
    if (inFlight) return inFlight;
    const current = read().finally(() => {
      if (inFlight === current) inFlight = undefined;
    });
    inFlight = current;
    return current;
  };
}
