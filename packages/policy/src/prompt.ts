import { type BodyPath, fieldShape, isObject, pathText, type Shape, shapeOf } from "./body-shape.js";
import type { BodyFormat } from "./request-kind.js";

const SURROGATE = /[\uD800-\uDFFF]/;

/** Unicode code points, as maxPromptChars counts them (a lone surrogate counts as one). */
export function codePointLength(text: string): number {
  // Most prompts have no surrogates; a native scan finds that out fastest.
  if (!SURROGATE.test(text)) return text.length;
  let length = text.length;
  for (let index = 0; index < text.length - 1; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(index + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        length--;
        index++;
      }
    }
  }
  return length;
}

export interface ExtractedPrompt {
  /** The prompt's text pieces joined with "\n". */
  text: string;
  /** The pieces, in document order: every string the model may read. */
  pieces: readonly string[];
  /** The JSON path of a piece ("messages.2.name"): where a rule matched. */
  fieldOf(piece: number): string;
  /**
   * The prompt holds input the text cannot show: token ids, images, audio,
   * or a value of a type the format does not define. Text rules cannot see
   * such input, so the engine refuses it where text rules apply.
   */
  nonText: boolean;
}

/**
 * Every string of the body that may reach the model, with where it is.
 *
 * Runtimes render far more than the messages into the prompt: vLLM renders
 * `documents`, `chat_template_kwargs` and each message's `name`, Ollama a
 * request's `template`, tools their descriptions and JSON schemas, and the
 * next release will render something else. So the sound default is to read
 * everything: every string value at any depth, and the keys of free-form
 * maps (a schema's property names, template variables), except the few
 * places body-shape.ts describes as not text for the model (the model name,
 * stop sequences, the end-user id, words of a fixed vocabulary such as a
 * message's role, and media the engine refuses where rules apply).
 * Numbers and booleans are not text. Iterative and linear in the body.
 */
function collectText(format: BodyFormat, body: Record<string, unknown>) {
  const pieces: string[] = [];
  const paths: (BodyPath | undefined)[] = [];
  const stack: { value: unknown; shape: Shape; path: BodyPath | undefined }[] = [
    { value: body, shape: shapeOf(format), path: undefined },
  ];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const { value, shape, path } = frame;
    if (shape.skip) continue;
    if (typeof value === "string") {
      if (shape.vocabulary?.has(value) !== true) {
        pieces.push(value);
        paths.push(path);
      }
    } else if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) {
        stack.push({ value: value[index], shape, path: { parent: path, key: index } });
      }
    } else if (isObject(value)) {
      if (shape.nonText?.(value) === true) continue;
      const keys = Object.keys(value);
      for (let index = keys.length - 1; index >= 0; index--) {
        const key = keys[index] as string;
        const at: BodyPath = shape.free ? { parent: path, key, data: true } : { parent: path, key };
        stack.push({ value: value[key], shape: fieldShape(shape, key), path: at });
        // A free-form map's keys are data the model may read (a schema's
        // property names); pushed after the value, so read before it. When
        // a key is what matched, the path names the map, not the key.
        if (shape.free) stack.push({ value: key, shape, path: { parent: path, key: "*" } });
      }
    }
  }
  return { pieces, paths };
}

/** Whether a list field that must hold text (a prompt, an input) holds anything else: token ids. */
function notTextList(value: unknown): boolean {
  if (Array.isArray(value)) return value.some((item) => typeof item !== "string");
  return value !== undefined && value !== null && typeof value !== "string";
}

/** A field that must be a string when present. */
const notText = (value: unknown) => value !== undefined && value !== null && typeof value !== "string";

/** A list (of images, of token ids) that is present and not empty. */
const nonEmpty = (value: unknown) =>
  value !== undefined && value !== null && (!Array.isArray(value) || value.length > 0);

/** Messages must be a list of objects. */
function badMessages(value: unknown, message: (message: Record<string, unknown>) => boolean): boolean {
  if (value === undefined || value === null) return false;
  if (!Array.isArray(value)) return true;
  return value.some((item) => !isObject(item) || message(item));
}

/** Tool definitions must be a list of objects. */
function badTools(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (!Array.isArray(value)) return true;
  return value.some((tool) => !isObject(isObject(tool) && isObject(tool.function) ? tool.function : tool));
}

/** OpenAI chat content: a string, or parts of which only text (and refusal) parts are text. */
function openAiContentNotText(content: unknown): boolean {
  if (!Array.isArray(content)) return notText(content);
  return content.some(
    (part) =>
      !isObject(part) ||
      !(
        (part.type === "text" && typeof part.text === "string") ||
        (part.type === "refusal" && typeof part.refusal === "string")
      ),
  );
}

/**
 * Anthropic content: a string, or blocks of which text, tool calls, tool
 * results (themselves a string or text blocks) and thinking are text.
 */
function anthropicContentNotText(content: unknown): boolean {
  if (!Array.isArray(content)) return notText(content);
  return content.some((block) => {
    if (!isObject(block)) return true;
    switch (block.type) {
      case "text":
        return typeof block.text !== "string";
      case "thinking":
        return typeof block.thinking !== "string";
      case "tool_use":
        return typeof block.name !== "string" || (block.input !== undefined && !isObject(block.input));
      case "tool_result":
        return block.content !== undefined && anthropicContentNotText(block.content);
      default:
        return true;
    }
  });
}

/** A Responses API content list (or tool output): a string, or parts that are all text. */
function responsesContentNotText(content: unknown): boolean {
  if (!Array.isArray(content)) return notText(content);
  return content.some(
    (part) =>
      !isObject(part) ||
      !(
        ((part.type === "input_text" ||
          part.type === "output_text" ||
          part.type === "summary_text" ||
          part.type === "reasoning_text") &&
          typeof part.text === "string") ||
        (part.type === "refusal" && typeof part.refusal === "string")
      ),
  );
}

/**
 * The Responses API's input: a string, or items of which messages,
 * function calls and their outputs, and reasoning summaries are text.
 * Anything else (images, files, references to stored items, encrypted
 * reasoning) is input the rules cannot read.
 */
function responsesInputNotText(input: unknown): boolean {
  if (!Array.isArray(input)) return notText(input);
  return input.some((item) => {
    if (!isObject(item)) return true;
    switch (item.type ?? "message") {
      case "message":
        return responsesContentNotText(item.content);
      case "function_call":
        return typeof item.arguments !== "string";
      case "function_call_output":
        return responsesContentNotText(item.output);
      case "reasoning":
        return (
          (item.encrypted_content !== undefined && item.encrypted_content !== null) ||
          (item.summary !== undefined && responsesContentNotText(item.summary)) ||
          (item.content !== undefined && item.content !== null && responsesContentNotText(item.content))
        );
      default:
        return true;
    }
  });
}

/**
 * Rerank and score inputs: a text, or a list of texts or of `{text}`
 * documents (Cohere's form). Multi-modal documents (`{content: [...]}`,
 * images) are not text.
 */
function scoreInputNotText(value: unknown): boolean {
  if (value === undefined || value === null || typeof value === "string") return false;
  if (!Array.isArray(value))
    return !isObject(value) || notText(value.text) || Object.keys(value).some((key) => key !== "text");
  return value.some((item) => typeof item !== "string" && scoreInputNotText(item));
}

/**
 * Whether the body holds prompt input that is not text (token ids, images,
 * audio, a value of a type the format does not define), per format.
 */
function holdsNonText(format: BodyFormat, body: Record<string, unknown>): boolean {
  switch (format) {
    case "openai.chat":
      return (
        badMessages(body.messages, (message) => openAiContentNotText(message.content)) ||
        badTools(body.tools) ||
        badTools(body.functions)
      );
    case "openai.completions":
      return notTextList(body.prompt);
    case "openai.embeddings":
      return notTextList(body.input);
    case "ollama.generate":
      // Images, and the encoded previous conversation: token ids.
      return notText(body.prompt) || nonEmpty(body.images) || nonEmpty(body.context);
    case "ollama.chat":
      return (
        badMessages(body.messages, (message) => notText(message.content) || nonEmpty(message.images)) ||
        badTools(body.tools)
      );
    case "ollama.embed":
      return notTextList(body.input);
    case "tgi.generate":
      return notText(body.inputs);
    case "openai.responses":
      // An earlier response, a stored conversation or prompt template: the
      // runtime adds text the gateway never sees.
      return (
        notText(body.instructions) ||
        responsesInputNotText(body.input) ||
        badTools(body.tools) ||
        nonEmpty(body.previous_response_id) ||
        nonEmpty(body.conversation) ||
        nonEmpty(body.prompt)
      );
    case "vllm.score":
      return ["query", "documents", "text_1", "text_2", "queries", "data_1", "data_2"].some((field) =>
        scoreInputNotText(body[field]),
      );
    case "vllm.tokenize":
      // Detokenize's input is token ids; tokenize's a prompt (llama.cpp: `content`) or messages.
      return (
        nonEmpty(body.tokens) ||
        notTextList(body.prompt) ||
        notText(body.content) ||
        badMessages(body.messages, (message) => openAiContentNotText(message.content)) ||
        badTools(body.tools)
      );
    case "anthropic.messages":
      return (
        anthropicContentNotText(body.system) ||
        badMessages(body.messages, (message) => anthropicContentNotText(message.content)) ||
        badTools(body.tools)
      );
    case "none":
      return false;
  }
}

/**
 * The prompt of a request body in the given format: what prompt rules are
 * matched against and what maxPromptChars counts.
 */
export function extractPrompt(format: BodyFormat, body: Record<string, unknown>): ExtractedPrompt {
  if (format === "none") return { text: "", pieces: [], fieldOf: () => "", nonText: false };
  const { pieces, paths } = collectText(format, body);
  return {
    text: pieces.join("\n"),
    pieces,
    fieldOf: (piece) => pathText(paths[piece]),
    nonText: holdsNonText(format, body),
  };
}
