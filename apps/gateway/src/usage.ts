// Token usage as the runtime reported it, read from the response the
// client received, in OpenAI's names whatever the protocol (or API:
// Anthropic's and the Responses API's input and output tokens too).

/** Bodies larger than this are not parsed for usage: the record stays cheap to build. */
const MAX_PARSED_BYTES = 1024 * 1024;

export type Usage = Record<string, number>;

/**
 * The keys a usage report has in each protocol (usageOf). A document
 * without any of them is not parsed: most events of a stream carry no
 * usage, and parsing the last few of every stream showed in the gateway's
 * profile. Written with other characters (JSON escapes), a key is missed
 * and the record has no usage; no runtime writes its keys so.
 */
const USAGE_KEY = /"(?:usage|prompt_eval_count|eval_count|generated_tokens)"/;

/**
 * Usage from an OpenAI (`usage`), Ollama (`prompt_eval_count`,
 * `eval_count`) or TGI (`details.generated_tokens`) answer, whole or
 * streamed (the last SSE event or NDJSON line that carries it). Undefined
 * when the answer carries none.
 */
export function extractUsage(contentType: string | undefined, text: string): Usage | undefined {
  const type = (contentType ?? "").toLowerCase();
  // The answer comes from a runtime: whatever its shape, reading usage must
  // never fail the record.
  try {
    if (type.startsWith("text/event-stream")) {
      const data = (line: string) => (line.startsWith("data:") ? line.slice(5) : undefined);
      const usage = lastOf(text, data);
      // Anthropic's stream counts the prompt in its first event
      // (message_start) and the answer in its last (message_delta).
      if (usage && usage.prompt_tokens === undefined) return withPrompt(usage, firstOf(text, data));
      return usage;
    }
    if (type.includes("ndjson")) return lastOf(text, (line) => line);
    if (type.startsWith("application/json") && text.length <= MAX_PARSED_BYTES && USAGE_KEY.test(text)) {
      return usageOf(parse(text));
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** Scans the last lines, from the end (usage comes last in every streaming protocol), without splitting the whole text. */
function lastOf(text: string, payload: (line: string) => string | undefined): Usage | undefined {
  let end = text.length;
  for (let scanned = 0; end > 0 && scanned < 8; ) {
    const start = text.lastIndexOf("\n", end - 1);
    const line = text.slice(start + 1, end).trim();
    end = start === -1 ? 0 : start;
    if (!line) continue;
    scanned += 1;
    const data = payload(line)?.trim();
    if (!data || data.length > MAX_PARSED_BYTES || !USAGE_KEY.test(data)) continue;
    const usage = usageOf(parse(data));
    if (usage) return usage;
  }
  return undefined;
}

/** The first usage report among the first few lines. */
function firstOf(text: string, payload: (line: string) => string | undefined): Usage | undefined {
  let start = 0;
  for (let scanned = 0; start < text.length && scanned < 8; ) {
    const found = text.indexOf("\n", start);
    const end = found === -1 ? text.length : found;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (!line) continue;
    scanned += 1;
    const data = payload(line)?.trim();
    if (!data || data.length > MAX_PARSED_BYTES || !USAGE_KEY.test(data)) continue;
    const usage = usageOf(parse(data));
    if (usage) return usage;
  }
  return undefined;
}

/** `usage` with the prompt tokens of `first`, when that has them. */
function withPrompt(usage: Usage, first: Usage | undefined): Usage {
  const prompt = first?.prompt_tokens;
  if (prompt === undefined) return usage;
  const merged: Usage = { prompt_tokens: prompt, ...usage };
  if (merged.completion_tokens !== undefined) merged.total_tokens = prompt + merged.completion_tokens;
  return merged;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function usageOf(document: unknown): Usage | undefined {
  if (!isObject(document)) return undefined;
  if (isObject(document.usage)) {
    const usage =
      inputOutputUsage(document.usage) ??
      pickNumbers(document.usage, ["prompt_tokens", "completion_tokens", "total_tokens"]);
    if (usage) return usage;
  }
  // Anthropic's message_start (`message.usage`), the Responses API's last
  // event (`response.usage`): the report one level down, once.
  for (const inner of [document.message, document.response]) {
    if (isObject(inner) && isObject(inner.usage)) {
      const usage = inputOutputUsage(inner.usage);
      if (usage) return usage;
    }
  }
  // Ollama: the final object of /api/generate and /api/chat.
  const prompt = document.prompt_eval_count;
  const completion = document.eval_count;
  if (isCount(prompt) || isCount(completion)) {
    const usage: Usage = {};
    if (isCount(prompt)) usage.prompt_tokens = prompt;
    if (isCount(completion)) usage.completion_tokens = completion;
    if (isCount(prompt) && isCount(completion)) usage.total_tokens = prompt + completion;
    return usage;
  }
  // TGI: `details` on /generate (an array of one for some versions) and on the last stream event.
  const details = Array.isArray(document) ? undefined : document.details;
  const generated = isObject(details) ? details.generated_tokens : undefined;
  if (isCount(generated)) return { completion_tokens: generated };
  // TGI's array of one, unwrapped once: an answer nested deeper is no usage report.
  if (Array.isArray(document) && document.length === 1 && !Array.isArray(document[0])) return usageOf(document[0]);
  return undefined;
}

/**
 * Anthropic's and the Responses API's names: `input_tokens` and
 * `output_tokens`. Anthropic counts tokens read from or written to its
 * prompt cache apart from `input_tokens`; they are prompt tokens too.
 */
function inputOutputUsage(source: Record<string, unknown>): Usage | undefined {
  const input = source.input_tokens;
  const output = source.output_tokens;
  if (!isCount(input) && !isCount(output)) return undefined;
  const usage: Usage = {};
  if (isCount(input)) {
    let prompt = input;
    for (const cached of [source.cache_creation_input_tokens, source.cache_read_input_tokens]) {
      if (isCount(cached)) prompt += cached;
    }
    usage.prompt_tokens = prompt;
  }
  if (isCount(output)) usage.completion_tokens = output;
  if (usage.prompt_tokens !== undefined && usage.completion_tokens !== undefined) {
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  }
  return usage;
}

function pickNumbers(source: Record<string, unknown>, names: readonly string[]): Usage | undefined {
  const usage: Usage = {};
  for (const name of names) {
    const value = source[name];
    if (isCount(value)) usage[name] = value;
  }
  return Object.keys(usage).length > 0 ? usage : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
