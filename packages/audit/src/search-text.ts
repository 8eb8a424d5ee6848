// The text a session's answer is searched by (the listing's `q`), when that
// is not its body: a streamed answer arrives as many small JSON events
// (OpenAI's SSE chunks, Ollama's NDJSON lines), and searching the stream as
// stored means searching its wrappers ("chat.completion.chunk", ids, model
// names) over and over, while a phrase the model wrote across two chunks is
// in no single place of it. The answer's text, assembled from the events, is
// what a reader looks for, and a fraction of the size: the trigram index over
// the stored streams was half of Postgres' work per streamed session
// (docs/benchmarks.md, issue 16).
//
// Nothing the stream carries may drop out of search because of this (the
// runtime chooses what it sends, and an auditor must find it): every string
// of every event is kept except the values of a few wrapper keys, and
// whatever is not a JSON event (plain `data:`, unknown SSE lines, an event too
// large or too deeply nested to read cheaply) is kept as it is.
//
// Derived, not evidence: the hash chain covers the body this is read from,
// and verification derives it again (audit-integrity/verify).

/**
 * Keys whose string values are the stream's wrapping, repeated in every
 * event: identifiers, names of objects and event types, roles, reasons a
 * stream stopped, timestamps. Every other string is kept.
 */
const WRAPPER_KEYS = new Set([
  "id",
  "object",
  "model",
  "system_fingerprint",
  "finish_reason",
  "stop_reason",
  "done_reason",
  "role",
  "type",
  "event",
  "item_id",
  "response_id",
  "service_tier",
  "status",
  "created_at",
]);

/** Deeper than any runtime's events nest: such a document is kept as text, unparsed. */
const MAX_DEPTH = 32;
/** An event this long is kept as text: parsing it is not worth its cost, and its text is searchable as it is. */
const MAX_PARSED_CHARS = 256 * 1024;

const SSE = /^text\/event-stream\b/i;
const NDJSON = /^application\/(x-ndjson|ndjson|jsonl|x-jsonlines)\b/i;

/**
 * The answer's text for search, for a streamed answer (server-sent events
 * or newline-delimited JSON); null for any other body, and for a stream
 * with nothing but wrapping in it: the body itself is then searched.
 */
export function answerSearchText(contentType: string | undefined, body: string | null): string | null {
  if (body === null || contentType === undefined) return null;
  const type = contentType.trim();
  const parts: string[] = [];
  if (SSE.test(type)) collectSse(body, parts);
  else if (NDJSON.test(type)) {
    for (const line of lines(body)) collectDocument(line, parts);
  } else return null;
  if (parts.length === 0) return null;
  // JSON escapes can spell what Postgres text cannot hold (U+0000) or
  // what its UTF-8 cannot encode (a lone surrogate): stored as U+FFFD, as
  // the record's other text is (toSessionRows).
  return parts.join("").toWellFormed().replaceAll("\u0000", "\uFFFD");
}

function* lines(text: string): Generator<string> {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    yield text.endsWith("\r", end) ? text.slice(start, end - 1) : text.slice(start, end);
    start = end + 1;
  }
}

/** Server-sent events as a client reads them: `data:` lines joined per event, events ended by a blank line. */
function collectSse(body: string, parts: string[]): void {
  let data: string[] = [];
  const dispatch = () => {
    if (data.length > 0) collectDocument(data.join("\n"), parts);
    data = [];
  };
  for (const line of lines(body)) {
    if (line === "") {
      dispatch();
      continue;
    }
    if (line.startsWith(":")) continue; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field !== "event" && field !== "id" && field !== "retry") parts.push(line); // not SSE: kept as sent
  }
  dispatch();
}

/** One event's data or one NDJSON line: its strings when it is a JSON document, else its text. */
function collectDocument(raw: string, parts: string[]): void {
  const text = raw.trim();
  if (text === "" || text === "[DONE]") return;
  if ((text.startsWith("{") || text.startsWith("[")) && text.length <= MAX_PARSED_CHARS && !tooDeep(text)) {
    try {
      collectStrings(JSON.parse(text), parts);
      return;
    } catch {
      // A line cut by the body's cap, or not JSON after all: kept as text below.
    }
  }
  parts.push(text);
}

/** Whether `text` nests deeper than MAX_DEPTH outside its strings: a cheap scan before a costly parse. */
function tooDeep(text: string): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text.charCodeAt(index);
    if (inString) {
      if (char === 0x5c)
        index += 1; // backslash: skip the escaped character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x7b || char === 0x5b) {
      depth += 1;
      if (depth > MAX_DEPTH) return true;
    } else if (char === 0x7d || char === 0x5d) depth -= 1;
  }
  return false;
}

/** Appends the strings of `root` in document order, but the wrapper keys' values; without recursion. */
function collectStrings(root: unknown, parts: string[]): void {
  if (typeof root === "string") {
    parts.push(root);
    return;
  }
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === "string") {
      parts.push(value);
      continue;
    }
    if (value === null || typeof value !== "object") continue;
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((item): [string, unknown] => ["", item])
      : Object.entries(value);
    // Pushed in reverse, so that they come off the stack in document order.
    for (let index = entries.length - 1; index >= 0; index -= 1) {
      const [key, item] = entries[index] as [string, unknown];
      if (typeof item === "string" ? !WRAPPER_KEYS.has(key) : item !== null && typeof item === "object") {
        stack.push(item);
      }
    }
  }
}
