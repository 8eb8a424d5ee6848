/** The connection protocols whose responses have known shapes. */
export type ResponseProtocol = "openai" | "ollama" | "tgi" | "http";

/**
 * Where each runtime puts generated text. Tool-call arguments count as
 * content: a model can leak personal data into a function call as easily as
 * into prose. Reasoning is listed under both names vLLM has used
 * (`reasoning_content` until 0.9, `reasoning` since).
 */
const OPENAI_FIELDS = [
  "choices[*].message.content",
  "choices[*].delta.content",
  "choices[*].text",
  "choices[*].message.tool_calls[*].function.arguments",
  "choices[*].delta.tool_calls[*].function.arguments",
  "choices[*].message.reasoning_content",
  "choices[*].delta.reasoning_content",
  "choices[*].message.reasoning",
  "choices[*].delta.reasoning",
] as const;

/**
 * The fields masked when a profile lists none. `http` has no defaults: an
 * arbitrary API's shape is unknown, so its profile names the paths; a
 * profile that names none there masks every string value (see
 * createResponseMasker).
 */
export const DEFAULT_FIELDS: Readonly<Record<ResponseProtocol, readonly string[]>> = Object.freeze({
  openai: Object.freeze([...OPENAI_FIELDS]),
  ollama: Object.freeze([
    "message.content",
    "response",
    // An object in Ollama's API, not a JSON string: its string leaves are masked.
    "message.tool_calls[*].function.arguments",
    // `thinking` on /api/generate, `message.thinking` on /api/chat.
    "thinking",
    "message.thinking",
    // Ollama also serves the OpenAI API (/v1/chat/completions, /v1/completions).
    ...OPENAI_FIELDS,
  ]),
  // TGI also serves the OpenAI API (/v1/chat/completions, /v1/completions).
  // best_of sequences carry whole texts too. (TGI's `POST /` answers with
  // a list, which no field path reaches: it is a `raw` route, so only
  // policies that grant `raw` expose it.)
  tgi: Object.freeze(["generated_text", "token.text", "details.best_of_sequences[*].generated_text", ...OPENAI_FIELDS]),
  http: Object.freeze([]),
});

/**
 * APIs that several runtimes serve beside their own, with shapes of their
 * own: the fields masked in their answers, added to the protocol's defaults
 * for requests of that API (keyed by the policy engine's body format).
 * Anthropic's streams name a text block's piece `delta.text`, where the
 * OpenAI Responses API's name theirs `delta` (a string): one list for both
 * would mask Anthropic's `delta` objects whole, event by event, missing a
 * value split across two events.
 */
export const API_FIELDS: Readonly<Record<"anthropic.messages" | "openai.responses", readonly string[]>> = Object.freeze(
  {
    "anthropic.messages": Object.freeze([
      // The answer: text blocks, thinking and tool calls' arguments (an object).
      "content[*].text",
      "content[*].thinking",
      "content[*].input",
      // Streamed: a block as it starts, then its pieces.
      "content_block.text",
      "content_block.thinking",
      "content_block.input",
      "delta.text",
      "delta.thinking",
      "delta.partial_json",
    ]),
    "openai.responses": Object.freeze([
      // The answer: messages' text and refusals, function calls' arguments, reasoning.
      "output[*].content[*].text",
      "output[*].content[*].refusal",
      "output[*].arguments",
      "output[*].summary[*].text",
      // Streamed: the pieces (`response.output_text.delta`, `….function_call_arguments.delta`,
      // `….reasoning_text.delta`, …), then each piece's whole text again in the
      // events that end it (see repeatsStreamedText).
      "delta",
      "text",
      "refusal",
      "arguments",
      "part.text",
      "part.refusal",
      "item.content[*].text",
      "item.content[*].refusal",
      "item.arguments",
      "item.summary[*].text",
      "response.output[*].content[*].text",
      "response.output[*].content[*].refusal",
      "response.output[*].arguments",
      "response.output[*].summary[*].text",
    ]),
  },
);

/**
 * Top-level fields that repeat, in a stream's last event, the whole text the
 * events before it delivered piece by piece (TGI's `generated_text`). They
 * are masked whole rather than streamed, and do not add to the counts when
 * the pieces were already counted.
 */
const CUMULATIVE_STREAM_FIELDS: ReadonlySet<string> = new Set(["generated_text"]);

/**
 * Whether a selected string of a stream's document repeats text streamed
 * before it: TGI's `generated_text`, and every text of the Responses API's
 * events other than its `….delta` ones (`response.output_text.done` carries
 * the whole text, `response.content_part.done`, `response.output_item.done`
 * and `response.completed` carry it again). Masked whole, not streamed; and
 * not counted again after streamed pieces.
 */
export function repeatsStreamedText(root: unknown, name: string): boolean {
  return CUMULATIVE_STREAM_FIELDS.has(name) || isResponsesClosingEvent(root);
}

/**
 * An event of the Responses API's stream (its `type` starts with
 * `response.`) other than a piece (`….delta`): it carries whole texts, and
 * follows the end of the text streamed before it, or comes before any.
 */
export function isResponsesClosingEvent(root: unknown): boolean {
  if (typeof root !== "object" || root === null) return false;
  const type = (root as { type?: unknown }).type;
  return typeof type === "string" && type.startsWith("response.") && !type.endsWith(".delta");
}
