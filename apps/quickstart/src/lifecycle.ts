// Small helpers for starting many parts in order and stopping them in
// reverse, whether startup finished, failed halfway or was interrupted.

/** Stops registered parts last-started-first; stopping twice stops once. */
export class ShutdownStack {
  readonly #steps: { name: string; stop: () => Promise<unknown> }[] = [];
  #closing: Promise<void> | undefined;
  readonly #onError: (name: string, error: unknown) => void;

  constructor(onError: (name: string, error: unknown) => void) {
    this.#onError = onError;
  }

  push(name: string, stop: () => Promise<unknown>): void {
    this.#steps.push({ name, stop });
  }

  /**
   * Runs every step even when one fails, so a part that cannot stop cleanly
   * never leaves the ones started before it (Postgres above all) running.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (let step = this.#steps.pop(); step; step = this.#steps.pop()) {
        try {
          await step.stop();
        } catch (error) {
          this.#onError(step.name, error);
        }
      }
    })();
    return this.#closing;
  }
}

export interface WaitOptions {
  what: string;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** Resolves with the promise, or fails after the timeout or when the signal aborts. */
export async function within<T>(promise: Promise<T>, { what, timeoutMs, signal }: WaitOptions): Promise<T> {
  signal?.throwIfAborted();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const failure = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    onAbort = () => reject(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, failure]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** Polls `check` until it returns true; fails after the timeout or when the signal aborts. */
export async function until(check: () => Promise<boolean>, options: WaitOptions & { intervalMs?: number }) {
  const deadline = Date.now() + options.timeoutMs;
  while (!(await check())) {
    options.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}
