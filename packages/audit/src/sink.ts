// The gateway's side of the audit pipeline: a bounded local buffer in front
// of a transport (the BullMQ queue in production, the control plane's store
// in the zero-config process).
//
// Records must never be lost for a request that was served, so admission and
// recording are tied together: a request is admitted only with a reserved
// place in the buffer (`admit()`), and the record it produces always fits in
// that place. When the buffer is full (the transport has been failing for a
// while), new requests are refused with 503 `audit_unavailable` instead of
// being served unrecorded, unless the operator opted out (`failOpen`).
//
// With a spool (spool.ts), records the transport cannot take go to disk
// instead of memory: once a hand-over fails, what the buffer holds moves to
// the spool, and every new record follows it there until the spool has
// been handed over in full. So records keep their order, and a gateway
// killed while Redis is away loses only what was not yet committed to disk.
// While Redis is up the spool is not touched.
import type { Logger } from "@modelgate/core";
import type { AuditRecord } from "./record.js";
import type { AuditSpool, AuditSpoolStatus } from "./spool.js";

/** Where buffered records go. `send` resolves only once every record in the batch is durably handed over. */
export interface AuditTransport {
  /** Sends a batch; idempotent by session id, since a batch that failed halfway is sent again whole. */
  send(records: readonly AuditRecord[]): Promise<void>;
  close(): Promise<void>;
}

export interface AuditSinkOptions {
  transport: AuditTransport;
  logger: Logger;
  /** Records held (buffered plus reserved by requests in flight) before new requests are refused (default 10,000). */
  maxRecords?: number | undefined;
  /** Estimated bytes buffered before new requests are refused (default 256 MiB). */
  maxBytes?: number | undefined;
  /** Records per transport call (default 200). */
  batchSize?: number | undefined;
  /** Estimated bytes per transport call (default 8 MiB); a larger record goes alone. */
  batchBytes?: number | undefined;
  /**
   * How long a record waits for others before a batch smaller than
   * `batchSize` is sent (default 5 ms; 0: at once). The queue's and the
   * control plane's cost is per job, not per record: at 1,000 requests a
   * second, sending at once makes jobs of one or two records.
   */
  lingerMs?: number | undefined;
  /** Backoff between failed sends: doubling from `baseMs` up to `maxMs` (defaults 100 ms, 5 s). */
  retry?: { baseMs?: number; maxMs?: number } | undefined;
  /**
   * Serve requests even when their record cannot be kept. An explicit,
   * loudly logged opt-out of the default: no unrecorded inference.
   */
  failOpen?: boolean | undefined;
  /** Called for each record dropped (fail-open only), for a metric. */
  onDropped?: (() => void) | undefined;
  /**
   * Where records wait while the transport fails, instead of memory; the
   * sink closes it. Full (or failing to write), it refuses new requests
   * like a full buffer does.
   */
  spool?: AuditSpool | undefined;
}

/** A place in the buffer reserved for one request's record. */
export interface AuditTicket {
  /** Hands the request's record over; call exactly once (later calls are ignored). */
  submit(record: AuditRecord): void;
}

export interface AuditSinkStatus {
  /** False while records cannot be handed over (the transport is failing). */
  transportHealthy: boolean;
  /** Records waiting to be sent. */
  buffered: number;
  /** Places held by requests in flight. */
  reserved: number;
  bufferedBytes: number;
  /** Whether a new request would be admitted right now. */
  accepting: boolean;
  failOpen: boolean;
  dropped: number;
  /** Present when records spill to a spool on disk. */
  spool?: AuditSpoolStatus | undefined;
}

const DEFAULTS = {
  maxRecords: 10_000,
  maxBytes: 256 * 1024 * 1024,
  batchSize: 200,
  batchBytes: 8 * 1024 * 1024,
  lingerMs: 5,
  baseMs: 100,
  maxMs: 5_000,
};
/**
 * A hand-over to the queue slower than this moves the records held in
 * memory to the spool: a healthy Redis answers in milliseconds, a hanging
 * one only at its command timeout. With the spool's group commit, this
 * bounds what a crash during a stalled queue can lose.
 */
const SLOW_SEND_SPILL_MS = 250;
/** A failing transport is reported at most this often, not once per retry. */
const FAILURE_LOG_INTERVAL_MS = 30_000;

export class AuditSink {
  readonly #transport: AuditTransport;
  readonly #logger: Logger;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #batchSize: number;
  readonly #batchBytes: number;
  readonly #lingerMs: number;
  readonly #retry: { baseMs: number; maxMs: number };
  readonly #failOpen: boolean;
  readonly #onDropped: (() => void) | undefined;
  readonly #spool: AuditSpool | undefined;

  readonly #queue: { record: AuditRecord; bytes: number }[] = [];
  #bytes = 0;
  #reserved = 0;
  #dropped = 0;
  #healthy = true;
  #pumping: Promise<void> | undefined;
  #failures = 0;
  #lastFailureLogAt = 0;
  /** Wakes a pump that is sleeping between retries (flush at shutdown). */
  #wake: (() => void) | undefined;
  #closed = false;
  readonly #idleWaiters = new Set<() => void>();

  constructor(options: AuditSinkOptions) {
    this.#transport = options.transport;
    this.#logger = options.logger;
    this.#maxRecords = options.maxRecords ?? DEFAULTS.maxRecords;
    this.#maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
    this.#batchSize = options.batchSize ?? DEFAULTS.batchSize;
    this.#batchBytes = options.batchBytes ?? DEFAULTS.batchBytes;
    this.#lingerMs = options.lingerMs ?? DEFAULTS.lingerMs;
    this.#retry = { baseMs: options.retry?.baseMs ?? DEFAULTS.baseMs, maxMs: options.retry?.maxMs ?? DEFAULTS.maxMs };
    this.#failOpen = options.failOpen ?? false;
    this.#onDropped = options.onDropped;
    this.#spool = options.spool;
    // Records reached the disk (or were adopted from a gateway that is gone): hand them over.
    this.#spool?.onRecords(() => this.#startPump());
    // What it adopted at start goes first.
    if (this.#spool?.readable) this.#startPump();
    if (this.#failOpen) {
      this.#logger.warn(
        "MODELGATE_AUDIT_FAIL_OPEN is on: requests are served even when their audit record cannot be kept",
      );
    }
  }

  /**
   * Reserves a place for one request's record, or returns undefined when the
   * buffer is full and the request must be refused. With `failOpen` a
   * ticket is always given; a record that then finds no place is dropped
   * and logged at error.
   */
  admit(): AuditTicket | undefined {
    const hasRoom = this.#hasRoom();
    if (!hasRoom && !this.#failOpen) return undefined;
    const reserved = hasRoom;
    if (reserved) this.#reserved += 1;
    let used = false;
    return {
      submit: (record) => {
        if (used) return;
        used = true;
        if (reserved) this.#reserved -= 1;
        if (!reserved && !this.#hasRoom()) return this.#drop(record);
        this.#push(record);
      },
    };
  }

  status(): AuditSinkStatus {
    return {
      transportHealthy: this.#healthy,
      buffered: this.#queue.length,
      reserved: this.#reserved,
      bufferedBytes: this.#bytes,
      accepting: this.#hasRoom() || this.#failOpen,
      failOpen: this.#failOpen,
      dropped: this.#dropped,
      ...(this.#spool ? { spool: this.#spool.status() } : {}),
    };
  }

  /**
   * Sends what is buffered, retrying without waiting out the backoff, until
   * the buffer is empty or `timeoutMs` passes. Resolves true when nothing
   * is left. Records of requests still in flight are not waited for: stop
   * taking requests and let them finish first.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#holding() && Date.now() < deadline) {
      this.#wake?.();
      this.#startPump();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, Math.min(50, deadline - Date.now())));
        this.#idleWaiters.add(done);
        function done() {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    return !this.#holding();
  }

  /**
   * Flushes (bounded by `timeoutMs`), and closes the transport. With a
   * spool, what could not be handed over is written to it for the next
   * gateway; without one it is reported as lost.
   */
  async close(timeoutMs: number): Promise<void> {
    const flushed = await this.flush(timeoutMs);
    this.#closed = true;
    this.#wake?.();
    await this.#pumping;
    if (!flushed && this.#spool && this.#queue.length > 0) {
      this.#logger.warn(
        { records: this.#queue.length },
        "audit records not handed over before shutdown go to the spool",
      );
      this.#spill();
    } else if (!flushed && this.#queue.length > 0) {
      this.#logger.error(
        { records: this.#queue.length, sessionIds: this.#queue.slice(0, 20).map((item) => item.record.sessionId) },
        "audit records could not be handed over before shutdown and are lost",
      );
    }
    await this.#spool?.close();
    await this.#transport.close();
  }

  #hasRoom(): boolean {
    const memory = this.#queue.length + this.#reserved < this.#maxRecords && this.#bytes < this.#maxBytes;
    return memory && (this.#spool?.hasRoom() ?? true);
  }

  /** Records not yet handed over: in memory, or in the spool. */
  #holding(): boolean {
    return this.#queue.length > 0 || (this.#spool !== undefined && !this.#spool.empty);
  }

  /** Moves what memory holds to the spool, oldest first, ahead of every record submitted after. */
  #spill() {
    const spool = this.#spool;
    if (!spool) return;
    for (const item of this.#queue) spool.append(item.record);
    this.#queue.length = 0;
    this.#bytes = 0;
  }

  #push(record: AuditRecord) {
    if (this.#closed) {
      // Only a request still unwinding after close() gave up waiting for it.
      this.#logger.error(
        { sessionId: record.sessionId, decision: record.decision },
        "audit record arrived after shutdown and is lost",
      );
      return;
    }
    // While the transport fails, and until what the spool holds is handed
    // over, records go to disk behind the ones already there.
    if (this.#spool && (!this.#healthy || !this.#spool.empty)) {
      this.#spool.append(record);
      return;
    }
    const bytes = estimateBytes(record);
    this.#queue.push({ record, bytes });
    this.#bytes += bytes;
    this.#startPump();
  }

  #drop(record: AuditRecord) {
    this.#dropped += 1;
    this.#onDropped?.();
    this.#logger.error(
      { sessionId: record.sessionId, decision: record.decision, dropped: this.#dropped },
      "audit record dropped: the audit buffer is full and MODELGATE_AUDIT_FAIL_OPEN is on",
    );
  }

  #startPump() {
    if (this.#pumping || this.#closed) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = undefined;
      // Records that arrived (or reached the disk) as the pump finished.
      if ((this.#queue.length > 0 || this.#spool?.readable) && !this.#closed) this.#startPump();
    });
  }

  /**
   * Memory first, then the spool: memory only ever holds records older
   * than the spool's (new records go to the spool while it holds any).
   */
  async #pump() {
    while (!this.#closed) {
      if (this.#queue.length > 0) {
        // Records arriving within the linger share the job (flush and close cut it short).
        if (this.#lingerMs > 0 && this.#healthy && this.#queue.length < this.#batchSize) {
          await this.#sleep(this.#lingerMs);
          if (this.#closed || this.#queue.length === 0) continue;
        }
        const batch = this.#nextBatch();
        // A queue that hangs rather than refuses (a partition, a stalled
        // Redis) fails only at its command timeout, seconds later; until
        // then what memory holds would be lost to a crash. So a hand-over
        // slower than SLOW_SEND_SPILL_MS moves memory to the spool (the
        // batch in flight included: a record sent twice is stored once),
        // and new records follow it there.
        let spilledWhileSending = false;
        const slow = this.#spool
          ? setTimeout(() => {
              spilledWhileSending = true;
              this.#spill();
            }, SLOW_SEND_SPILL_MS)
          : undefined;
        try {
          await this.#transport.send(batch.map((item) => item.record));
        } catch (error) {
          clearTimeout(slow);
          this.#onFailure(error);
          // Off to disk, where a crash cannot take them.
          this.#spill();
          await this.#sleep(backoff(this.#failures, this.#retry));
          continue;
        }
        clearTimeout(slow);
        if (!spilledWhileSending) {
          this.#queue.splice(0, batch.length);
          for (const item of batch) this.#bytes -= item.bytes;
        }
      } else if (this.#spool) {
        const records = await this.#spool.peek(this.#batchSize, this.#batchBytes);
        // Nothing on disk yet: the spool wakes the pump when its commit is done.
        if (records.length === 0) break;
        try {
          await this.#transport.send(records);
        } catch (error) {
          this.#onFailure(error);
          await this.#sleep(backoff(this.#failures, this.#retry));
          continue;
        }
        await this.#spool.ack();
      } else break;
      this.#onSuccess();
      for (const waiter of this.#idleWaiters) waiter();
      this.#idleWaiters.clear();
    }
  }

  /** The oldest records, up to the count and byte limits (always at least one). */
  #nextBatch() {
    let bytes = 0;
    let end = 0;
    while (end < this.#queue.length && end < this.#batchSize) {
      const size = this.#queue[end]?.bytes ?? 0;
      if (end > 0 && bytes + size > this.#batchBytes) break;
      bytes += size;
      end += 1;
    }
    return this.#queue.slice(0, end);
  }

  #onFailure(error: unknown) {
    this.#failures += 1;
    const now = Date.now();
    if (this.#healthy || now - this.#lastFailureLogAt >= FAILURE_LOG_INTERVAL_MS) {
      this.#lastFailureLogAt = now;
      this.#logger.error(
        {
          err: error,
          buffered: this.#queue.length,
          maxRecords: this.#maxRecords,
          failures: this.#failures,
          ...(this.#spool ? { spool: this.#spool.status() } : {}),
        },
        this.#spool
          ? "audit records cannot be handed over; spooling them to disk (new requests are refused once the spool is full)"
          : "audit records cannot be handed over; buffering them (new requests are refused once the buffer is full)",
      );
    }
    this.#healthy = false;
  }

  #onSuccess() {
    if (!this.#healthy) {
      this.#logger.info({ failures: this.#failures }, "audit records are handed over again");
    }
    this.#healthy = true;
    this.#failures = 0;
  }

  #sleep(ms: number) {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const wake = () => done();
      this.#wake = wake;
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.#wake === wake) self.#wake = undefined;
        resolve();
      }
    });
  }
}

function backoff(failures: number, { baseMs, maxMs }: { baseMs: number; maxMs: number }): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 20));
}

/** UTF-16 length of the texts plus a fixed allowance for the rest: cheap, and within a factor of two of the JSON. */
function estimateBytes(record: AuditRecord): number {
  let bytes = 2048 + (record.request?.text.length ?? 0) + (record.response?.text.length ?? 0);
  for (const event of record.events) bytes += event.data.length + 32;
  return bytes;
}
