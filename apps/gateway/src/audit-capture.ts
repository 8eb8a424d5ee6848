// What the audit record keeps of a request's bodies: the request as
// received and the response as delivered to the client, with each chunk's
// offset from receiving the request, cut at a cap but never silently.
import type { ServerResponse } from "node:http";
import { StringDecoder } from "node:string_decoder";
import type { AuditRecord } from "@modelgate/audit";

type RecordedBody = NonNullable<AuditRecord["request"]>;
type StreamEvent = AuditRecord["events"][number];

/** The record schema's bound on events; a longer stream is cut and flagged. */
const MAX_EVENTS = 100_000;

const TEXT_TYPES =
  /^(text\/|application\/(json|x-ndjson|ndjson|jsonl|x-jsonlines|xml|javascript|x-www-form-urlencoded)\b|application\/[\w.+-]+\+(json|xml)\b)/i;

/** True for content types whose bodies are text (bodies without a type are treated as text). */
export function isTextContentType(contentType: string | undefined): boolean {
  return !contentType || TEXT_TYPES.test(contentType.trim());
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A request body as recorded: UTF-8 text when it is text, base64 otherwise
 * (`lenient`: bad bytes as U+FFFD instead); at most `maxBytes` of it.
 */
export function recordBody(body: Buffer, maxBytes: number, { lenient = false } = {}): RecordedBody {
  const truncated = body.length > maxBytes;
  const kept = truncated ? body.subarray(0, utf8Boundary(body, maxBytes)) : body;
  if (lenient) return { text: kept.toString("utf8"), truncated, bytes: body.length };
  try {
    return { text: strictUtf8.decode(kept), truncated, bytes: body.length };
  } catch {
    return { text: kept.toString("base64"), encoding: "base64", truncated, bytes: body.length };
  }
}

/** The largest cut at or below `limit` that does not split a UTF-8 sequence. */
function utf8Boundary(buffer: Buffer, limit: number): number {
  let end = Math.min(limit, buffer.length);
  // Step back over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && end < buffer.length && ((buffer[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return end;
}

export interface CapturedResponse {
  response: RecordedBody | undefined;
  events: StreamEvent[];
  contentType: string | undefined;
  /** performance.now() when the first body byte (or the head of a stream) went out. */
  firstByteAt: number | undefined;
}

/**
 * Records what is written to `res`, as it is written: every path that
 * answers (the forwarded runtime answer, gateway errors, an error event
 * ending a stream) goes through `write`/`end`, so nothing the client saw is
 * missed. Text bodies are decoded across chunk boundaries (a character
 * split between two chunks is kept whole in the first event that completes
 * it); other bodies are kept as bytes and recorded in base64, without events.
 */
export class ResponseCapture {
  readonly #receivedAt: number;
  readonly #maxBytes: number;
  #decoder: StringDecoder | undefined;
  #text = "";
  #binary: Buffer[] = [];
  #textual: boolean | undefined;
  #keptBytes = 0;
  #totalBytes = 0;
  #truncated = false;
  #events: StreamEvent[] = [];
  #writes = 0;
  #firstByteAt: number | undefined;
  #contentType: string | undefined;

  constructor(res: ServerResponse, receivedAt: number, maxBytes: number) {
    this.#receivedAt = receivedAt;
    this.#maxBytes = maxBytes;
    const write = res.write;
    const end = res.end;
    const flushHeaders = res.flushHeaders;
    const writeHead = res.writeHead;
    const capture = this;
    // Headers given to writeHead are not always readable with getHeader
    // afterwards (not when none were set before), so they are noted here.
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      const headers = args.find((arg) => typeof arg === "object" && arg !== null);
      if (headers) capture.#noteHeaders(headers);
      return (writeHead as (...args: unknown[]) => ServerResponse).apply(this, args);
    } as ServerResponse["writeHead"];
    // A stream's head is flushed before its first token: that is its first byte.
    res.flushHeaders = function (this: ServerResponse) {
      capture.#markFirstByte();
      flushHeaders.call(this);
    };
    // Node's overloads (chunk, encoding?, callback?) are passed on untouched.
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      capture.#observe(res, chunk, rest[0]);
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as ServerResponse["write"];
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (chunk !== undefined && typeof chunk !== "function") capture.#observe(res, chunk, rest[0]);
      else capture.#markFirstByte();
      return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    } as ServerResponse["end"];
  }

  result(): CapturedResponse {
    if (this.#textual === undefined) {
      return { response: undefined, events: [], contentType: this.#contentType, firstByteAt: this.#firstByteAt };
    }
    if (this.#decoder) {
      const rest = this.#decoder.end();
      if (rest && !this.#truncated) this.#appendText(rest);
    }
    const response: RecordedBody = this.#textual
      ? { text: this.#text, truncated: this.#truncated, bytes: this.#totalBytes }
      : {
          text: Buffer.concat(this.#binary).toString("base64"),
          encoding: "base64",
          truncated: this.#truncated,
          bytes: this.#totalBytes,
        };
    // A body written in one piece is not a stream: its events would only
    // repeat the body.
    const streamed = this.#textual && (this.#writes > 1 || /^text\/event-stream|ndjson/i.test(this.#contentType ?? ""));
    return {
      response,
      events: streamed ? this.#events : [],
      contentType: this.#contentType,
      firstByteAt: this.#firstByteAt,
    };
  }

  #headerNotes: { contentType?: string; contentEncoding?: string } = {};

  #noteHeaders(headers: object) {
    const entries: [string, unknown][] = Array.isArray(headers)
      ? Array.isArray(headers[0])
        ? (headers as [string, unknown][])
        : pairs(headers as unknown[])
      : Object.entries(headers);
    for (const [name, value] of entries) {
      const lower = String(name).toLowerCase();
      if (lower === "content-type") this.#headerNotes.contentType = String(value);
      if (lower === "content-encoding") this.#headerNotes.contentEncoding = String(value);
    }
  }

  #header(res: ServerResponse, name: "content-type" | "content-encoding"): string | undefined {
    const value = res.getHeader(name);
    if (typeof value === "string") return value;
    return name === "content-type" ? this.#headerNotes.contentType : this.#headerNotes.contentEncoding;
  }

  #markFirstByte() {
    this.#firstByteAt ??= performance.now();
  }

  #observe(res: ServerResponse, chunk: unknown, encoding: unknown) {
    const bytes = toBuffer(chunk, encoding);
    if (!bytes || bytes.length === 0) return;
    this.#markFirstByte();
    if (this.#textual === undefined) {
      this.#contentType = this.#header(res, "content-type")?.slice(0, 256);
      const encoded = (this.#header(res, "content-encoding") ?? "identity").trim().toLowerCase() !== "identity";
      this.#textual = !encoded && isTextContentType(this.#contentType);
      if (this.#textual) this.#decoder = new StringDecoder("utf8");
    }
    this.#writes += 1;
    this.#totalBytes += bytes.length;
    if (this.#truncated) return;
    const room = this.#maxBytes - this.#keptBytes;
    const kept = bytes.length > room ? bytes.subarray(0, utf8Boundary(bytes, room)) : bytes;
    if (kept.length < bytes.length) this.#truncated = true;
    this.#keptBytes += kept.length;
    if (!this.#textual) {
      this.#binary.push(Buffer.from(kept));
      return;
    }
    const text = this.#decoder?.write(kept);
    if (text) this.#appendText(text);
  }

  #appendText(text: string) {
    this.#text += text;
    if (this.#events.length >= MAX_EVENTS) {
      this.#truncated = true;
      return;
    }
    const offsetMs = Math.max(0, Math.round(performance.now() - this.#receivedAt));
    this.#events.push({ offsetMs, data: text });
  }
}

/** `[name, value, name, value, …]`, the flat form writeHead also takes. */
function pairs(flat: unknown[]): [string, unknown][] {
  const result: [string, unknown][] = [];
  for (let index = 0; index + 1 < flat.length; index += 2) result.push([String(flat[index]), flat[index + 1]]);
  return result;
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (typeof chunk === "string")
    return Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return undefined;
}
