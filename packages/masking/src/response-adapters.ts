import { type MaskCounts, MaskingError, type MaskingStream } from "./masker.js";
import { DocumentStreamMasker, maskStringLeaves, maskWholeValue, type TextMasker } from "./response-documents.js";
import { parseJson, serializeJson } from "./response-json.js";
import { NdjsonLine, NdjsonSplitter, ndjsonCompletion } from "./response-ndjson.js";
import { type FieldSelector, isContainer } from "./response-selector.js";
import { parseSseEvent, SseSplitter, sseCompletion, terminateEvent } from "./response-sse.js";

/**
 * A bound on one SSE event or NDJSON line. Generation events are a few
 * hundred bytes; the bound keeps a runtime that never ends an event from
 * making the agent hold an unbounded one.
 */
export const MAX_EVENT_BYTES = 4 * 1024 * 1024;

/** One response format: decoded text in, text that may be sent out. */
export interface FormatAdapter {
  push(chunk: Uint8Array): string;
  end(): string;
  readonly counts: MaskCounts;
  /** Bytes taken in but not yet answered for (a buffered JSON body). */
  readonly buffered: number;
}

/**
 * Decodes UTF-8 strictly: an invalid byte sequence cannot be re-encoded as
 * received, so it fails the response rather than being replaced silently.
 */
class Utf8 {
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });

  decode(chunk?: Uint8Array): string {
    try {
      return chunk === undefined ? this.#decoder.decode() : this.#decoder.decode(chunk, { stream: true });
    } catch {
      throw new MaskingError("the response is not valid UTF-8");
    }
  }
}

/** Tracks the bytes of the frame not yet complete, against MAX_EVENT_BYTES. */
class FrameBudget {
  #pending = 0;

  received(chunk: Uint8Array): void {
    this.#pending += chunk.byteLength;
  }

  completed(frame: string): void {
    const bytes = Buffer.byteLength(frame);
    if (bytes > MAX_EVENT_BYTES) throw tooLarge();
    this.#pending -= bytes;
  }

  check(): void {
    if (this.#pending > MAX_EVENT_BYTES) throw tooLarge();
  }
}

const tooLarge = () => new MaskingError(`a response event exceeds ${MAX_EVENT_BYTES} bytes`);

/** `text/event-stream`: OpenAI, TGI and any SSE API. */
export class SseAdapter implements FormatAdapter {
  readonly #utf8 = new Utf8();
  readonly #splitter = new SseSplitter();
  readonly #frames = new FrameBudget();
  readonly #documents: DocumentStreamMasker;
  readonly buffered = 0;

  constructor(masker: TextMasker, selector: FieldSelector) {
    this.#documents = new DocumentStreamMasker(masker, selector);
  }

  get counts(): MaskCounts {
    return this.#documents.counts;
  }

  push(chunk: Uint8Array): string {
    this.#frames.received(chunk);
    return this.#events(this.#splitter.push(this.#utf8.decode(chunk)));
  }

  end(): string {
    let out = this.#events(this.#splitter.push(this.#utf8.decode()));
    // Clients drop an event the stream ended inside of; masking it anyway
    // (completed) keeps a lenient client from reading it unmasked.
    const rest = this.#splitter.pending;
    out += rest.trim() === "" ? rest : this.#event(terminateEvent(rest));
    return out + this.#documents.flush();
  }

  #events(events: readonly string[]): string {
    let out = "";
    for (const raw of events) {
      this.#frames.completed(raw);
      out += this.#event(raw);
    }
    this.#frames.check();
    return out;
  }

  #event(raw: string): string {
    const { event, data } = parseSseEvent(raw);
    if (data === undefined || data.trim() === "") return raw;
    // The terminal event: whatever channels hold goes out before it.
    if (data.trim() === "[DONE]") return this.#documents.flush() + raw;
    const document = parseJson(data, "a response event");
    return this.#documents.mask(event, document, sseCompletion(document));
  }
}

/** `application/x-ndjson`: Ollama's streams. */
export class NdjsonAdapter implements FormatAdapter {
  readonly #utf8 = new Utf8();
  readonly #splitter = new NdjsonSplitter();
  readonly #frames = new FrameBudget();
  readonly #documents: DocumentStreamMasker;
  readonly buffered = 0;

  constructor(masker: TextMasker, selector: FieldSelector) {
    this.#documents = new DocumentStreamMasker(masker, selector);
  }

  get counts(): MaskCounts {
    return this.#documents.counts;
  }

  push(chunk: Uint8Array): string {
    this.#frames.received(chunk);
    return this.#lines(this.#splitter.push(this.#utf8.decode(chunk)));
  }

  end(): string {
    const out = this.#lines(this.#splitter.push(this.#utf8.decode()));
    const rest = this.#splitter.pending;
    return out + (rest === "" ? "" : this.#line(rest)) + this.#documents.flush();
  }

  #lines(lines: readonly string[]): string {
    let out = "";
    for (const raw of lines) {
      this.#frames.completed(raw);
      out += this.#line(raw);
    }
    this.#frames.check();
    return out;
  }

  #line(raw: string): string {
    const line = new NdjsonLine(raw);
    if (line.json.trim() === "") return raw;
    const document = parseJson(line.json, "a response line");
    return this.#documents.mask(line, document, ndjsonCompletion(document));
  }
}

/** Any other `text/*` body: one text, streamed through one masking stream. */
export class TextAdapter implements FormatAdapter {
  readonly #utf8 = new Utf8();
  readonly #stream: MaskingStream;
  readonly buffered = 0;

  constructor(masker: TextMasker) {
    this.#stream = masker.createStream();
  }

  get counts(): MaskCounts {
    return this.#stream.counts;
  }

  push(chunk: Uint8Array): string {
    return this.#stream.push(this.#utf8.decode(chunk));
  }

  end(): string {
    return this.#stream.push(this.#utf8.decode()) + this.#stream.end();
  }
}

/**
 * `application/json`: a whole document (the agent receives non-streamed
 * answers in one piece), each selected value masked whole.
 */
export class JsonAdapter implements FormatAdapter {
  readonly #masker: TextMasker;
  readonly #selector: FieldSelector;
  readonly #chunks: Uint8Array[] = [];
  readonly #counts: MaskCounts = {};
  #buffered = 0;

  constructor(masker: TextMasker, selector: FieldSelector) {
    this.#masker = masker;
    this.#selector = selector;
  }

  get counts(): MaskCounts {
    return { ...this.#counts };
  }

  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): string {
    // Copied: a caller may reuse its buffer once push returns.
    this.#chunks.push(Uint8Array.prototype.slice.call(chunk));
    this.#buffered += chunk.byteLength;
    return "";
  }

  end(): string {
    const utf8 = new Utf8();
    let text = "";
    for (const chunk of this.#chunks) text += utf8.decode(chunk);
    text += utf8.decode();
    this.#chunks.length = 0;
    this.#buffered = 0;
    // An empty body (a HEAD answer, a 204) has nothing to mask.
    if (text.trim() === "") return text;
    const document = parseJson(text, "the response body");
    let changed = false;
    for (const match of this.#selector.matches(document)) {
      if (typeof match.value === "string") changed = maskWholeValue(this.#masker, match, this.#counts) || changed;
      else if (isContainer(match.value)) changed = maskStringLeaves(this.#masker, match.value, this.#counts) || changed;
    }
    if (!changed) return text;
    // The runtime's surrounding whitespace (Ollama ends its bodies with a newline) is kept.
    let start = 0;
    while (isJsonSpace(text.charCodeAt(start))) start += 1;
    let end = text.length;
    while (isJsonSpace(text.charCodeAt(end - 1))) end -= 1;
    return text.slice(0, start) + serializeJson(document) + text.slice(end);
  }
}

/** Space, tab, LF, CR: JSON's whitespace. */
function isJsonSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}
