import type { IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";

/**
 * One request as the fixture saw it. Times are `performance.now()`
 * milliseconds: monotonic and sub-millisecond, and directly comparable with
 * `performance.now()` in the process that started the fixture (tests and
 * benchmarks run it in-process). They are not wall-clock times.
 */
export interface RecordedRequest {
  /** Sequential from 1; also sent back in the `x-fixture-request-id` response header. */
  id: number;
  method: string;
  /** The raw request target, query string included. */
  path: string;
  /** As Node parsed them: lower-case names, repeated headers joined (set-cookie as an array). */
  headers: Record<string, string | string[] | undefined>;
  /** The body as UTF-8 text; "" until it has been read, and for a body refused as too large. */
  body: string;
  receivedAt: number;
  /** When the response was completely handed to the operating system. */
  finishedAt?: number;
  /** True when the connection closed before the response finished (client abort). */
  aborted: boolean;
  abortedAt?: number;
  /** Streamed content chunks written so far; stops growing once the request is aborted. */
  chunksWritten: number;
}

// Long benchmarks send millions of requests; keep only the latest ones, and
// also bound the bodies they hold, since one body alone may be 10 MiB.
const MAX_RECORDED_REQUESTS = 10_000;
const MAX_RECORDED_BODY_BYTES = 64 * 1024 * 1024;

type Settled = (record: RecordedRequest) => void;

/** Keeps the recent requests, tracks which are in flight, and lets callers await an abort. */
export class RequestRecorder {
  readonly #requests: RecordedRequest[] = [];
  readonly #inFlight = new Set<RecordedRequest>();
  readonly #waiters = new Map<number, Set<Settled>>();
  #nextId = 1;
  #bodyBytes = 0;
  #totalRequests = 0;
  #totalAborted = 0;
  #totalChunks = 0;
  #processing = 0;

  get requests(): readonly RecordedRequest[] {
    return this.#requests;
  }

  get totals(): { requests: number; aborted: number; chunks: number; inFlight: number; processing: number } {
    return {
      requests: this.#totalRequests,
      aborted: this.#totalAborted,
      chunks: this.#totalChunks,
      inFlight: this.#inFlight.size,
      processing: this.#processing,
    };
  }

  /**
   * Brackets the fixture's own work on a request (waiting, generating,
   * writing). Unlike `inFlight`, which follows the response, this shows
   * whether the work really stopped when a client aborted.
   */
  processingStarted(): void {
    this.#processing += 1;
  }

  processingEnded(): void {
    this.#processing -= 1;
  }

  begin(req: Pick<IncomingMessage, "method" | "url" | "headers">): RecordedRequest {
    const record: RecordedRequest = {
      id: this.#nextId++,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: { ...req.headers },
      body: "",
      receivedAt: performance.now(),
      aborted: false,
      chunksWritten: 0,
    };
    this.#requests.push(record);
    this.#inFlight.add(record);
    this.#totalRequests += 1;
    this.#evictOldest();
    return record;
  }

  setBody(record: RecordedRequest, body: string): void {
    record.body = body;
    // Only retained records count towards the budget; a record evicted while
    // its body was still being read has nothing left to account for.
    if (this.#find(record.id) === record) {
      this.#bodyBytes += Buffer.byteLength(body);
      this.#evictOldest();
    }
  }

  countChunk(record: RecordedRequest): void {
    record.chunksWritten += 1;
    this.#totalChunks += 1;
  }

  finish(record: RecordedRequest): void {
    if (!this.#inFlight.delete(record)) return;
    record.finishedAt = performance.now();
    this.#notify(record);
  }

  abort(record: RecordedRequest): void {
    if (!this.#inFlight.delete(record)) return;
    record.aborted = true;
    record.abortedAt = performance.now();
    this.#totalAborted += 1;
    this.#notify(record);
  }

  inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Resolves with `abortedAt` once the request is aborted (at once if it
   * already was). Rejects after `timeoutMs`, or as soon as the request is
   * known to have finished normally, since then no abort can follow. The id
   * may belong to a request that has not arrived yet.
   */
  waitForAbort(requestId: number, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const settled: Settled = (record) => {
        clearTimeout(timer);
        this.#removeWaiter(requestId, settled);
        if (record.aborted && record.abortedAt !== undefined) resolve(record.abortedAt);
        else reject(new Error(`request ${requestId} finished without being aborted`));
      };
      const timer = setTimeout(() => {
        this.#removeWaiter(requestId, settled);
        reject(new Error(`request ${requestId} was not aborted within ${timeoutMs} ms`));
      }, timeoutMs);

      const record = this.#find(requestId);
      if (record !== undefined && !this.#inFlight.has(record)) {
        settled(record);
        return;
      }
      if (record === undefined && requestId < this.#nextId) {
        clearTimeout(timer);
        reject(new Error(`request ${requestId} is unknown or no longer recorded`));
        return;
      }
      const waiters = this.#waiters.get(requestId) ?? new Set<Settled>();
      waiters.add(settled);
      this.#waiters.set(requestId, waiters);
    });
  }

  #find(id: number): RecordedRequest | undefined {
    // Ids are consecutive and only the oldest are evicted, so the position is known.
    const first = this.#requests[0];
    return first === undefined ? undefined : this.#requests[id - first.id];
  }

  #notify(record: RecordedRequest): void {
    const waiters = this.#waiters.get(record.id);
    if (waiters === undefined) return;
    for (const waiter of [...waiters]) waiter(record);
  }

  #removeWaiter(id: number, waiter: Settled): void {
    const waiters = this.#waiters.get(id);
    waiters?.delete(waiter);
    if (waiters?.size === 0) this.#waiters.delete(id);
  }

  #evictOldest(): void {
    while (
      this.#requests.length > MAX_RECORDED_REQUESTS ||
      (this.#bodyBytes > MAX_RECORDED_BODY_BYTES && this.#requests.length > 1)
    ) {
      const oldest = this.#requests.shift();
      if (oldest !== undefined) this.#bodyBytes -= Buffer.byteLength(oldest.body);
    }
  }
}
