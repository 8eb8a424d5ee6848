// The text a session's answer is searched by (the listing's `q`), when that
// is not its body: a streamed answer arrives as many small JSON events
// (OpenAI's SSE chunks, Ollama's NDJSON lines), and searching the stream as
// stored means searching its wrappers ("chat.completion.chunk", ids, model
// names) over and over, while a phrase the model wrote across two chunks is
// in no single place of it. The answer's own text, assembled from the
// events, is what a reader looks for, and a tenth of the size: the trigram
// index over the stored streams was half of Postgres' work per streamed
// session (docs/benchmarks.md, issue 16).
//
// Derived, not evidence: the hash chain covers the body this is read from,
// and verification derives it again (audit-integrity/verify).

/** Keys whose string values are text a model wrote, in the shapes current runtimes stream. */
const TEXT_KEYS = new Set([
  "content", // OpenAI chat deltas and messages, Ollama chat, Anthropic content blocks
  "text", // OpenAI completions, Anthropic text deltas, TGI tokens
  "response", // Ollama generate
  "delta", // OpenAI Responses API text deltas (a string there)
  "generated_text", // TGI's last event
  "reasoning_content", // vLLM reasoning parsers
  "reasoning", // Ollama and OpenAI-compatible reasoning fields
  "thinking", // Ollama thinking, Anthropic thinking deltas
  "refusal", // OpenAI refusals
  "arguments", // tool calls' arguments (OpenAI)
  "partial_json", // tool calls' arguments (Anthropic)
]);

/**
 * Far deeper than any of those shapes nests its text; a deeper value is not
 * searched, so a hostile body costs no more than its size.
 */
const MAX_DEPTH = 16;
/** The depth that marks an entry of the walk's stack as text to keep. */
const TEXT = -1;

const STREAM_TYPES = /^(text\/event-stream|application\/(x-ndjson|ndjson|jsonl|x-jsonlines))\b/i;

/**
 * The answer's text for search, for a streamed answer (server-sent events
 * or newline-delimited JSON); null for any other body, and for a stream
 * with no text in it: the body itself is then searched.
 */
export function answerSearchText(contentType: string | undefined, body: string | null): string | null {
  if (body === null || contentType === undefined || !STREAM_TYPES.test(contentType.trim())) return null;
  const parts: string[] = [];
  let start = 0;
  while (start < body.length) {
    let end = body.indexOf("\n", start);
    if (end === -1) end = body.length;
    collectLine(body.slice(start, end), parts);
    start = end + 1;
  }
  if (parts.length === 0) return null;
  // JSON escapes can spell what Postgres text cannot hold (U+0000) or
  // what its UTF-8 cannot encode (a lone surrogate): stored as U+FFFD, as
  // the record's other text is (toSessionRows).
  return parts.join("").toWellFormed().replaceAll("\u0000", "\uFFFD");
}

/** One line of the stream: an SSE `data:` field or an NDJSON line; anything else (ids, comments, `[DONE]`) has no text. */
function collectLine(rawLine: string, parts: string[]): void {
  let line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
  if (line.startsWith("data:")) line = line.slice(5);
  line = line.trim();
  if (!line.startsWith("{") && !line.startsWith("[")) return;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return; // a line cut by the body's cap, or not JSON: nothing to search in it
  }
  collectText(value, parts);
}

/** Appends the text-keyed strings of `root` in document order, without recursion (no stack to exhaust). */
function collectText(root: unknown, parts: string[]): void {
  // Each entry is a value to walk at a depth, or (depth TEXT) a string to keep.
  const stack: { value: unknown; depth: number }[] = [{ value: root, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop() as { value: unknown; depth: number };
    if (depth === TEXT) {
      parts.push(value as string);
      continue;
    }
    if (value === null || typeof value !== "object" || depth >= MAX_DEPTH) continue;
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((item): [string, unknown] => ["", item])
      : Object.entries(value);
    // Pushed in reverse, so that they come off the stack in document order.
    for (let index = entries.length - 1; index >= 0; index -= 1) {
      const [key, item] = entries[index] as [string, unknown];
      if (typeof item === "string") {
        if (TEXT_KEYS.has(key)) stack.push({ value: item, depth: TEXT });
      } else if (item !== null && typeof item === "object") {
        stack.push({ value: item, depth: depth + 1 });
      }
    }
  }
}
