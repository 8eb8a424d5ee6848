import type { BodyFormat } from "./request-kind.js";

/**
 * How the engine reads each place of a request body, per format: which
 * objects are field levels (their keys are field names a runtime maps onto
 * its request struct, so they must be canonical, see keys.ts), which are
 * free-form maps (their keys are data: schema properties, template
 * variables, token ids), and which strings are not text for the model (see
 * prompt.ts). Everything not described here is a field level whose strings
 * are read: an unknown field, or one a runtime adds in its next release,
 * is checked and read, never skipped.
 */
export interface Shape {
  /**
   * An object here is a free-form map: its keys are not field names (not
   * checked) and are read as text, as is everything below it.
   */
  readonly free?: boolean;
  /** Not text for the model: strings here and below are not read (keys below are still checked). */
  readonly skip?: boolean;
  /** A fixed vocabulary: a string here that is one of these words is not read; any other string is. */
  readonly vocabulary?: ReadonlySet<string>;
  /** The shapes of some fields of an object here; the others get FIELD. */
  readonly fields?: Readonly<Record<string, Shape>>;
  /**
   * An object here (an array's items included) that the engine already
   * refuses as input it cannot read (an image part) where prompt rules
   * apply: its strings are not read, and not counted as prompt.
   */
  readonly nonText?: (object: Record<string, unknown>) => boolean;
}

/** A field level with nothing special: keys checked, strings read. */
const FIELD: Shape = {};
const FREE: Shape = { free: true };
const SKIP: Shape = { skip: true };

const words = (...values: string[]): ReadonlySet<string> => new Set(values);

/**
 * Message roles. Chat templates render the role, and vLLM accepts any
 * string there, so a role outside this list is read like any text.
 */
const ROLE: Shape = { vocabulary: words("system", "user", "assistant", "tool", "developer", "function") };

/** `type` of content parts, tools, tool calls, response formats and grammars. */
const TYPE: Shape = {
  vocabulary: words(
    "text",
    "refusal",
    "image_url",
    "input_audio",
    "video_url",
    "audio_url",
    "file",
    "function",
    "json_schema",
    "json_object",
    "json",
    "regex",
    "grammar",
  ),
};

const FUNCTION_DEFINITION: Shape = { fields: { parameters: FREE } };
const TOOL: Shape = { fields: { type: TYPE, function: FUNCTION_DEFINITION } };
/** OpenAI sends arguments as a JSON string, Ollama as an object keyed by parameter name. */
const TOOL_CALL: Shape = { fields: { type: TYPE, function: { fields: { arguments: FREE } } } };

/** OpenAI content parts other than text and refusals: images, audio, video and files. */
const isMediaPart = (part: Record<string, unknown>) => part.type !== "text" && part.type !== "refusal";

const OPENAI_MESSAGE: Shape = {
  fields: {
    role: ROLE,
    content: { fields: { type: TYPE }, nonText: isMediaPart },
    tool_calls: TOOL_CALL,
    function_call: { fields: { arguments: FREE } },
  },
};

/**
 * Fields of every format that are not text for the model:
 * - `model`: which model runs, decided by the policy's model patterns;
 *   no runtime renders it into the prompt;
 * - `stop` (also in Ollama's `options` and TGI's `parameters`): stop
 *   sequences end the generation when the model writes them; they are
 *   never part of the prompt;
 * - `user`: OpenAI's end-user id for abuse reports, which the runtimes
 *   behind modelgate ignore.
 */
const NOT_TEXT = { model: SKIP, stop: SKIP, user: SKIP };

/** Free-form maps: their keys are data, read as text and not checked as field names. */
const FREE_MAPS = {
  logit_bias: FREE,
  metadata: FREE,
  // vLLM: variables for the chat template and the multi-modal processor,
  // RAG documents the template renders, guided decoding's JSON schema.
  chat_template_kwargs: FREE,
  mm_processor_kwargs: FREE,
  documents: FREE,
  guided_json: FREE,
  vllm_xargs: FREE,
  kv_transfer_params: FREE,
  // llama.cpp's JSON schema for the output.
  json_schema: FREE,
};

const OPENAI_BODY: Shape = {
  fields: {
    ...NOT_TEXT,
    ...FREE_MAPS,
    messages: OPENAI_MESSAGE,
    tools: TOOL,
    functions: FUNCTION_DEFINITION,
    tool_choice: { vocabulary: words("auto", "none", "required"), fields: { type: TYPE } },
    function_call: { vocabulary: words("auto", "none") },
    response_format: {
      fields: { type: TYPE, json_schema: { fields: { schema: FREE } }, schema: FREE, value: FREE },
    },
    structured_outputs: { fields: { json: FREE } },
    reasoning_effort: { vocabulary: words("minimal", "low", "medium", "high") },
    service_tier: { vocabulary: words("auto", "default", "flex", "scale", "priority") },
    encoding_format: { vocabulary: words("float", "base64") },
  },
};

const OLLAMA_BODY: Shape = {
  fields: {
    ...NOT_TEXT,
    messages: {
      fields: { role: ROLE, tool_calls: TOOL_CALL, images: SKIP },
    },
    tools: TOOL,
    options: { fields: { stop: SKIP } },
    // "json", or a JSON schema for the output.
    format: { vocabulary: words("json"), free: true },
    think: { vocabulary: words("low", "medium", "high") },
    // A duration ("5m") for keeping the model loaded.
    keep_alive: SKIP,
    // Base64 images (generate) and the token ids of an earlier answer:
    // refused as not text where prompt rules apply.
    images: SKIP,
    context: SKIP,
  },
};

const TGI_BODY: Shape = {
  fields: {
    ...NOT_TEXT,
    parameters: { fields: { stop: SKIP, grammar: { fields: { type: TYPE, value: FREE } } } },
  },
};

/**
 * Anthropic content blocks the model reads as text: text, tool calls and
 * their results, and earlier thinking. Images, documents (PDFs, or text
 * behind a URL) and redacted (encrypted) thinking are not text.
 */
const ANTHROPIC_TEXT_BLOCKS: ReadonlySet<unknown> = new Set(["text", "tool_use", "tool_result", "thinking"]);

const ANTHROPIC_TYPE: Shape = {
  vocabulary: words(
    "text",
    "tool_use",
    "tool_result",
    "thinking",
    "auto",
    "any",
    "tool",
    "none",
    "enabled",
    "disabled",
    "ephemeral",
    "custom",
  ),
};

const ANTHROPIC_BLOCK: Shape = {
  fields: {
    type: ANTHROPIC_TYPE,
    // tool_use: the call's arguments, an object keyed by parameter name.
    input: FREE,
    // thinking: an opaque signature of the thinking text, not text itself.
    signature: SKIP,
    cache_control: { fields: { type: ANTHROPIC_TYPE } },
  },
  nonText: (block) => !ANTHROPIC_TEXT_BLOCKS.has(block.type),
};

/** A tool_result's content: a string or blocks, read like a message's. */
const ANTHROPIC_CONTENT: Shape = {
  ...ANTHROPIC_BLOCK,
  fields: { ...ANTHROPIC_BLOCK.fields, content: ANTHROPIC_BLOCK },
};

const ANTHROPIC_BODY: Shape = {
  fields: {
    model: SKIP,
    // Stop sequences, as `stop` elsewhere; `metadata.user_id` is an end-user
    // id for abuse reports, as OpenAI's `user`.
    stop_sequences: SKIP,
    metadata: SKIP,
    system: ANTHROPIC_CONTENT,
    messages: { fields: { role: ROLE, content: ANTHROPIC_CONTENT } },
    tools: {
      fields: { type: ANTHROPIC_TYPE, input_schema: FREE, cache_control: { fields: { type: ANTHROPIC_TYPE } } },
    },
    tool_choice: { fields: { type: ANTHROPIC_TYPE } },
    thinking: { fields: { type: ANTHROPIC_TYPE } },
  },
};

/** `type` of the Responses API's input items, content parts, tools and formats. */
const RESPONSES_TYPE: Shape = {
  vocabulary: words(
    "message",
    "input_text",
    "output_text",
    "refusal",
    "function_call",
    "function_call_output",
    "reasoning",
    "summary_text",
    "reasoning_text",
    "function",
    "text",
    "json_schema",
    "json_object",
    "auto",
    "none",
    "required",
  ),
};

/** Input the Responses API names but the gateway cannot read: images, files, audio, references to stored items. */
const RESPONSES_NON_TEXT: ReadonlySet<unknown> = new Set([
  "input_image",
  "input_file",
  "input_audio",
  "item_reference",
  "image_generation_call",
]);

const RESPONSES_ITEM: Shape = {
  fields: {
    type: RESPONSES_TYPE,
    role: ROLE,
    status: { vocabulary: words("in_progress", "completed", "incomplete") },
    // A message's parts, a reasoning item's summary and text, a tool's output as parts.
    content: { fields: { type: RESPONSES_TYPE }, nonText: (part) => RESPONSES_NON_TEXT.has(part.type) },
    summary: { fields: { type: RESPONSES_TYPE } },
    output: { fields: { type: RESPONSES_TYPE }, nonText: (part) => RESPONSES_NON_TEXT.has(part.type) },
    // An encrypted reasoning item: not text, and refused where rules apply.
    encrypted_content: SKIP,
  },
  nonText: (item) => RESPONSES_NON_TEXT.has(item.type),
};

const RESPONSES_BODY: Shape = {
  fields: {
    ...NOT_TEXT,
    // An end-user id and a cache key, as `user`: not rendered into the prompt.
    safety_identifier: SKIP,
    prompt_cache_key: SKIP,
    metadata: FREE,
    // What the answer should include (`reasoning.encrypted_content`, …): fixed names.
    include: SKIP,
    input: RESPONSES_ITEM,
    tools: { fields: { type: RESPONSES_TYPE, parameters: FREE } },
    tool_choice: { vocabulary: words("auto", "none", "required"), fields: { type: RESPONSES_TYPE } },
    text: {
      fields: {
        format: { fields: { type: RESPONSES_TYPE, schema: FREE } },
        verbosity: { vocabulary: words("low", "medium", "high") },
      },
    },
    reasoning: {
      fields: {
        effort: { vocabulary: words("minimal", "low", "medium", "high") },
        summary: { vocabulary: words("auto", "concise", "detailed") },
      },
    },
    truncation: { vocabulary: words("auto", "disabled") },
    service_tier: { vocabulary: words("auto", "default", "flex", "scale", "priority") },
    // vLLM's extras, as on its chat route.
    chat_template_kwargs: FREE,
    structured_outputs: { fields: { json: FREE } },
  },
};

/** Rerank and score: texts to compare; `documents` here is a list of texts, not a template's map. */
const SCORE_BODY: Shape = {
  fields: { ...NOT_TEXT, documents: FIELD, metadata: FREE },
};

const NONE: Shape = { skip: true };

export function shapeOf(format: BodyFormat): Shape {
  switch (format) {
    case "openai.chat":
    case "openai.completions":
    case "openai.embeddings":
      return OPENAI_BODY;
    case "ollama.generate":
    case "ollama.chat":
    case "ollama.embed":
      return OLLAMA_BODY;
    case "tgi.generate":
      return TGI_BODY;
    case "anthropic.messages":
      return ANTHROPIC_BODY;
    case "openai.responses":
      return RESPONSES_BODY;
    case "vllm.score":
      return SCORE_BODY;
    // Tokenize takes a completion's prompt or a chat's messages, tools and template.
    case "vllm.tokenize":
      return OPENAI_BODY;
    case "none":
      return NONE;
  }
}

/** A place in the body, linked to its parent so that a path is built only when one is reported. */
export interface BodyPath {
  readonly parent: BodyPath | undefined;
  readonly key: string | number;
  /** A key of a free-form map: data from the prompt, not a field name. */
  readonly data?: boolean;
}

/** A free-form map's key shown in a path: a variable or property name, not prose or a number. */
const SHOWN_DATA_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/**
 * "messages.2.content", "" for the body itself. A path is reported in
 * errors, logs and audit records, where prompt text must not go unmasked:
 * a free-form map's key appears only when it looks like an identifier
 * ("chat_template_kwargs.persona"), any other as "*".
 */
export function pathText(path: BodyPath | undefined): string {
  const keys: (string | number)[] = [];
  for (let at = path; at !== undefined; at = at.parent) {
    keys.push(at.data === true && !SHOWN_DATA_KEY.test(String(at.key)) ? "*" : at.key);
  }
  return keys.reverse().join(".");
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The shape of a field of an object of shape `shape`. */
export function fieldShape(shape: Shape, key: string): Shape {
  if (shape.free) return shape;
  return (Object.hasOwn(shape.fields ?? {}, key) ? shape.fields?.[key] : undefined) ?? FIELD;
}
