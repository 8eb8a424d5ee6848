// Token usage of OpenAI-protocol streams the caller did not ask usage for.
//
// A streamed chat or completions answer carries no token counts unless the
// request says `stream_options: {include_usage: true}`; then the runtime
// (OpenAI, vLLM, Ollama's OpenAI API) sends one more chunk before
// `data: [DONE]`, with `choices: []` and `usage`. The gateway asks for it on
// the caller's behalf (requestUsageEdit) and takes that chunk out of what
// the caller receives (UsageChunkFilter), so the answer looks as it would
// have without the gateway, and the session gets its tokens anyway. What the
// audit records is what the caller received: the chunk is not in it; its
// counts are (record.usage, the session's token columns).
import type { BodyFormat } from "@modelgate/policy";
import type { JsonEdit } from "./http-body.js";
import { extractUsage, type Usage } from "./usage.js";

const STREAMED_FORMATS = new Set<BodyFormat>(["openai.chat", "openai.completions"]);

/**
 * The edit that asks the runtime for usage, or undefined when none is
 * needed: not an OpenAI-protocol streaming chat or completions request, or
 * the caller asked for usage itself (then its chunk is the caller's). A
 * `stream_options` that is not an object is left for the runtime to refuse.
 */
export function requestUsageEdit(
  format: BodyFormat,
  protocol: string,
  json: Record<string, unknown> | undefined,
): JsonEdit | undefined {
  if (protocol !== "openai" || !json || json.stream !== true || !STREAMED_FORMATS.has(format)) return undefined;
  const options = json.stream_options;
  if (options === undefined || options === null) return { path: ["stream_options", "include_usage"], value: true };
  if (typeof options !== "object" || Array.isArray(options)) return undefined;
  return (options as Record<string, unknown>).include_usage === true
    ? undefined
    : { path: ["stream_options", "include_usage"], value: true };
}

/** The usage chunk as OpenAI and vLLM write it (compact JSON); anything else is passed on, never guessed at. */
const USAGE_CHUNK_MARK = '"choices":[]';
const LF_LF = Buffer.from("\n\n");
const CRLF_CRLF = Buffer.from("\r\n\r\n");

/**
 * Takes the usage chunk out of an SSE stream, piece by piece as it is
 * forwarded. Most pieces are whole events without the chunk's mark and go
 * on as they are (two native byte searches, no copy, no decoding). A piece
 * that ends inside an event keeps that event's start until the event is
 * whole: a half event is of no use to the caller, and the mark may span the
 * two pieces.
 */
export class UsageChunkFilter {
  #pending: Buffer | undefined;
  /** The counts of the chunk taken out, once it went by. */
  usage: Usage | undefined;

  push(piece: Buffer): Buffer {
    const data = this.#pending ? Buffer.concat([this.#pending, piece]) : piece;
    this.#pending = undefined;
    const end = eventsEnd(data);
    if (end < data.length) {
      this.#pending = Buffer.from(data.subarray(end));
      if (end === 0) return EMPTY;
    }
    const events = end < data.length ? data.subarray(0, end) : data;
    return events.includes(USAGE_CHUNK_MARK) ? this.#strip(events) : events;
  }

  /** What is left at the end of the stream (an unterminated last event), as it came. */
  flush(): Buffer {
    const rest = this.#pending ?? EMPTY;
    this.#pending = undefined;
    return rest;
  }

  #strip(events: Buffer): Buffer {
    const text = events.toString("utf8");
    const kept: string[] = [];
    let changed = false;
    for (const event of text.split(/(?<=\r?\n\r?\n)/)) {
      const usage = event.includes(USAGE_CHUNK_MARK) ? usageChunk(event) : undefined;
      if (usage) {
        this.usage = usage;
        changed = true;
      } else {
        kept.push(event);
      }
    }
    return changed ? Buffer.from(kept.join("")) : events;
  }
}

const EMPTY = Buffer.alloc(0);

/** Where the last whole event of `data` ends (0 when none does). */
function eventsEnd(data: Buffer): number {
  if (data.length >= 2 && data[data.length - 1] === 0x0a && data[data.length - 2] === 0x0a) return data.length;
  const lf = data.lastIndexOf(LF_LF);
  const crlf = data.lastIndexOf(CRLF_CRLF);
  return Math.max(lf === -1 ? 0 : lf + 2, crlf === -1 ? 0 : crlf + 4);
}

/** The usage of an event that is exactly the usage chunk: `choices` empty and `usage` an object. */
function usageChunk(event: string): Usage | undefined {
  const data = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trim())
    .join("\n");
  let document: unknown;
  try {
    document = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof document !== "object" || document === null) return undefined;
  const { choices, usage } = document as { choices?: unknown; usage?: unknown };
  if (!Array.isArray(choices) || choices.length > 0 || typeof usage !== "object" || usage === null) return undefined;
  return extractUsage("application/json", data);
}
