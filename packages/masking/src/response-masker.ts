import { FieldPathError, parseFieldPath } from "./json-path.js";
import { type MaskCounts, MaskingError } from "./masker.js";
import { type FormatAdapter, JsonAdapter, NdjsonAdapter, SseAdapter, TextAdapter } from "./response-adapters.js";
import type { TextMasker } from "./response-documents.js";
import { FieldSelector } from "./response-selector.js";

export interface ResponseMaskerOptions {
  /** The runtime's `Content-Type`; it decides how the body is read. */
  contentType: string;
  /** The profile's fields, or DEFAULT_FIELDS[protocol] when it names none. */
  fields: readonly string[];
  /**
   * How long one push or end may take, in milliseconds of CPU time
   * (default 100). A call that takes longer fails, and its output is not
   * released. For a buffered JSON body the budget applies per started MiB,
   * so a large answer is held to a throughput rather than to a latency.
   */
  timeBudgetMs?: number;
}

/**
 * Masks one response as it passes through. push and end throw MaskingError
 * on any failure (malformed JSON where fields are masked, a time-budget
 * overrun, an engine error); after one, every call throws, and nothing of
 * the failed call was returned: the caller ends the response with an
 * error and has sent nothing unmasked.
 */
export interface ResponseMasker {
  /** The bytes that may be sent now. */
  push(chunk: Uint8Array): Uint8Array;
  /** The rest, once the runtime's body has ended. */
  end(): Uint8Array;
  /** Values masked so far, by entity, over every field of the response. */
  readonly counts: MaskCounts;
}

export const DEFAULT_TIME_BUDGET_MS = 100;
const MIB = 1024 * 1024;

type BodyFormat = "sse" | "ndjson" | "json" | "text" | "binary";

const NDJSON_TYPES = new Set([
  "application/x-ndjson",
  "application/ndjson",
  "application/jsonl",
  "application/x-jsonlines",
  "application/jsonlines",
]);

/** How a body of this content type is read; anything not text passes through. */
export function bodyFormat(contentType: string): BodyFormat {
  const media = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  if (media === "text/event-stream") return "sse";
  if (NDJSON_TYPES.has(media)) return "ndjson";
  if (media === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(media)) return "json";
  if (media.startsWith("text/")) return "text";
  return "binary";
}

/**
 * Text is read as UTF-8 (JSON's only encoding, and what every runtime
 * sends). A body declared in another charset cannot be re-encoded as
 * received, so it is refused rather than guessed at.
 */
function requireUtf8(contentType: string): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8" && charset !== "us-ascii") {
    throw new MaskingError(`responses in charset ${charset} cannot be masked`);
  }
}

/**
 * The masker for one response. Binary and unknown content types (images,
 * audio, `application/octet-stream`, no content type) pass through
 * unchanged: masking targets text. Never throws itself: a field path outside
 * the syntax or a text charset other than UTF-8 makes the first push or end
 * throw, so that callers handle every masking failure in one place.
 */
export function createResponseMasker(masker: TextMasker, options: ResponseMaskerOptions): ResponseMasker {
  const format = bodyFormat(options.contentType);
  if (format === "binary") return new PassThrough();
  let adapter: FormatAdapter;
  try {
    requireUtf8(options.contentType);
    adapter = createAdapter(format, masker, selectorFor(options.fields));
  } catch (error) {
    return new FailedMasker(error instanceof FieldPathError ? new MaskingError(error.message) : asMaskingError(error));
  }
  return new BudgetedMasker(adapter, options.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS);
}

/** Selectors by their fields (JSON of the list): the same few field lists come with every response. */
const selectors = new Map<string, FieldSelector>();
const MAX_SELECTORS = 256;

/**
 * The selector for a list of field paths, built once: a FieldSelector is
 * immutable, and parsing the paths again for every response was the
 * largest part of setting up masking (docs/benchmarks.md). Throws
 * FieldPathError for a path outside the syntax, every time (nothing is
 * kept for it).
 */
function selectorFor(fields: readonly string[]): FieldSelector {
  const key = JSON.stringify(fields);
  let selector = selectors.get(key);
  if (selector === undefined) {
    selector = new FieldSelector(fields.map(parseFieldPath));
    // Bounded: past the bound, start again rather than grow with whatever lists arrive.
    if (selectors.size >= MAX_SELECTORS) selectors.clear();
    selectors.set(key, selector);
  }
  return selector;
}

function createAdapter(
  format: Exclude<BodyFormat, "binary">,
  masker: TextMasker,
  selector: FieldSelector,
): FormatAdapter {
  switch (format) {
    case "sse":
      return new SseAdapter(masker, selector);
    case "ndjson":
      return new NdjsonAdapter(masker, selector);
    case "json":
      return new JsonAdapter(masker, selector);
    case "text":
      return new TextAdapter(masker);
  }
}

const EMPTY = new Uint8Array(0);

/** Refuses every call: the response cannot be masked as configured. */
class FailedMasker implements ResponseMasker {
  readonly #error: MaskingError;

  constructor(error: MaskingError) {
    this.#error = error;
  }

  push(): Uint8Array {
    throw this.#error;
  }

  end(): Uint8Array {
    throw this.#error;
  }

  get counts(): MaskCounts {
    return {};
  }
}

class PassThrough implements ResponseMasker {
  push(chunk: Uint8Array): Uint8Array {
    return chunk;
  }

  end(): Uint8Array {
    return EMPTY;
  }

  get counts(): MaskCounts {
    return {};
  }
}

/**
 * Runs a format adapter under the time budget and the fail-closed rules:
 * the first failure is final, and it is always a MaskingError.
 */
class BudgetedMasker implements ResponseMasker {
  readonly #adapter: FormatAdapter;
  readonly #budgetMs: number;
  #failure: MaskingError | undefined;
  #ended = false;

  constructor(adapter: FormatAdapter, budgetMs: number) {
    this.#adapter = adapter;
    this.#budgetMs = budgetMs;
  }

  get counts(): MaskCounts {
    return this.#adapter.counts;
  }

  push(chunk: Uint8Array): Uint8Array {
    return this.#run(chunk.byteLength, () => this.#adapter.push(chunk));
  }

  end(): Uint8Array {
    return this.#run(this.#adapter.buffered, () => {
      this.#ended = true;
      return this.#adapter.end();
    });
  }

  #run(bytes: number, work: () => string): Uint8Array {
    if (this.#failure) throw new MaskingError(`masking already failed: ${this.#failure.message}`);
    if (this.#ended) throw new MaskingError("the response has already ended");
    try {
      const started = performance.now();
      const cpuStarted = recentThreadCpu(started, this.#budgetMs / CPU_READING_SHARE);
      const text = work();
      const budget = this.#budgetMs * Math.max(1, Math.ceil(bytes / MIB));
      // The clock is only the first test. What counts is the CPU time this
      // thread spent (garbage collection included): on a loaded host a step
      // can wait for a CPU longer than the budget without masking being slow,
      // and failing the response then would protect nothing.
      if (performance.now() - started > budget) {
        const now = readThreadCpu();
        const cpuMs = (now.user - cpuStarted.user + now.system - cpuStarted.system) / 1000;
        if (cpuMs > budget) {
          throw new MaskingError(`masking used ${cpuMs.toFixed(1)} ms of CPU, over its budget of ${budget} ms`);
        }
      }
      // Buffer.from is a Uint8Array, and for event-sized strings several times faster than TextEncoder.
      return text === "" ? EMPTY : Buffer.from(text, "utf8");
    } catch (error) {
      this.#failure = asMaskingError(error);
      throw this.#failure;
    }
  }
}

/**
 * Reading the thread's CPU clock is a system call, and it was read around
 * every step of every response: 5 % of the agent's time under masked
 * streaming load (docs/benchmarks.md, issue 16). A reading taken at most
 * budget/CPU_READING_SHARE ms of wall time before a step stands in for one at
 * its start. The thread cannot have used more CPU than wall time since then,
 * so the step is charged at most that much extra (2 % of its budget): the
 * error only ever fails a step sooner, never lets a slow one pass.
 */
const CPU_READING_SHARE = 50;
/** This thread's latest CPU clock reading (each worker thread has its own module state). */
let lastCpuReading: { wallMs: number; cpu: NodeJS.CpuUsage } = {
  wallMs: Number.NEGATIVE_INFINITY,
  cpu: { user: 0, system: 0 },
};

/** A reading of the thread's CPU clock taken at most `maxAgeMs` of wall time before `now`. */
function recentThreadCpu(now: number, maxAgeMs: number): NodeJS.CpuUsage {
  return now - lastCpuReading.wallMs > maxAgeMs ? readThreadCpu() : lastCpuReading.cpu;
}

/** Stamps the reading, then reads the thread's CPU clock: its age is never understated. */
function readThreadCpu(): NodeJS.CpuUsage {
  const wallMs = performance.now();
  const cpu = process.threadCpuUsage();
  lastCpuReading = { wallMs, cpu };
  return cpu;
}

/**
 * Another error's message is not passed on: an engine or parser error can
 * quote the text it failed on, which is the unmasked response.
 */
function asMaskingError(error: unknown): MaskingError {
  if (error instanceof MaskingError) return error;
  const name = error instanceof Error ? error.name : typeof error;
  return new MaskingError(`masking the response failed (${name})`);
}
