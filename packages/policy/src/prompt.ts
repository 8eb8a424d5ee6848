import type { BodyFormat } from "./request-kind.js";

/**
 * Characters that render as nothing (or only steer rendering) and can be
 * slipped between the letters of a blocked phrase: zero-width spaces and
 * joiners, bidi controls, the soft hyphen, variation selectors and the tag
 * characters. Also U+061C (Arabic letter mark) and the supplementary
 * variation selectors, which hide text the same way.
 */
const INVISIBLE =
  // Default_Ignorable_Code_Point is Unicode's own list of what renders as
  // nothing (it covers Hangul fillers and Mongolian selectors too); the
  // explicit class adds the bidi embeddings and U+180E for older data.
  // biome-ignore lint/suspicious/noMisleadingCharacterClass: each combining mark is removed on its own, which is the point
  /\p{Default_Ignorable_Code_Point}|[\u00AD\u034F\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFE00-\uFE0F\uFEFF\u{E0000}-\u{E007F}\u{E0100}-\u{E01EF}]/gu;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the whole ASCII range is what this tests
const ASCII_ONLY = /^[\u0000-\u007f]*$/;

/**
 * The text prompt rules are matched against: NFKC (so full-width and other
 * compatibility forms such as "ｅｘｐｏｒｔ" read as "export"), without
 * invisible characters. Removing a character can bring two others together
 * that NFKC composes, so the text is normalised again when anything was
 * removed.
 */
export function normalizePromptText(text: string): string {
  // Pure ASCII is already in NFKC and holds no invisible characters.
  if (ASCII_ONLY.test(text)) return text;
  const folded = text.normalize("NFKC");
  const visible = folded.replace(INVISIBLE, "");
  return visible.length === folded.length ? visible : visible.normalize("NFKC");
}

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
  /**
   * The prompt holds input the text cannot show: token ids, images, audio,
   * or a value of a type the format does not define. Text rules cannot see
   * such input, so the engine refuses it where text rules apply.
   */
  nonText: boolean;
}

/** Collects a prompt's text pieces and whether anything was not text. */
class PromptCollector {
  readonly pieces: string[] = [];
  nonText = false;

  /** A field that must be a string when present. */
  text(value: unknown): void {
    if (typeof value === "string") this.pieces.push(value);
    else if (value !== undefined && value !== null) this.nonText = true;
  }

  /** OpenAI `prompt` / `input` and Ollama `input`: a string, or a list of strings; numbers are token ids. */
  textOrTokens(value: unknown): void {
    if (Array.isArray(value)) {
      for (const item of value) {
        if (typeof item === "string") this.pieces.push(item);
        else this.nonText = true;
      }
    } else {
      this.text(value);
    }
  }

  /** Tool-call arguments: a JSON string (OpenAI) or an object (Ollama); the model reads either. */
  arguments(value: unknown): void {
    if (typeof value === "string") this.pieces.push(value);
    else if (value !== undefined && value !== null) this.pieces.push(JSON.stringify(value));
  }

  /** A list field whose presence (non-empty) means non-text input, such as images. */
  nonTextList(value: unknown): void {
    if (value === undefined || value === null) return;
    if (!Array.isArray(value) || value.length > 0) this.nonText = true;
  }

  /**
   * Tool definitions: the model reads their descriptions and parameter
   * schemas as part of its prompt, so instructions can hide there.
   */
  tools(value: unknown): void {
    if (value === undefined || value === null) return;
    if (!Array.isArray(value)) {
      this.nonText = true;
      return;
    }
    for (const tool of value) {
      const definition = isObject(tool) && isObject(tool.function) ? tool.function : tool;
      if (!isObject(definition)) {
        this.nonText = true;
        continue;
      }
      this.text(definition.name);
      this.text(definition.description);
      if (definition.parameters !== undefined) this.pieces.push(JSON.stringify(definition.parameters));
    }
  }

  messages(value: unknown, content: (message: Record<string, unknown>) => void): void {
    if (value === undefined || value === null) return;
    if (!Array.isArray(value)) {
      this.nonText = true;
      return;
    }
    for (const message of value) {
      if (!isObject(message)) {
        this.nonText = true;
        continue;
      }
      content(message);
      const toolCalls = message.tool_calls;
      if (Array.isArray(toolCalls)) {
        for (const call of toolCalls) {
          if (isObject(call) && isObject(call.function)) this.arguments(call.function.arguments);
        }
      }
      // The legacy single function call of OpenAI's assistant messages.
      if (isObject(message.function_call)) this.arguments(message.function_call.arguments);
    }
  }

  result(): ExtractedPrompt {
    return { text: this.pieces.join("\n"), nonText: this.nonText };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** OpenAI chat content: a string, or parts of which only text (and refusal) parts are text. */
function openAiContent(collector: PromptCollector, content: unknown): void {
  if (!Array.isArray(content)) {
    collector.text(content);
    return;
  }
  for (const part of content) {
    if (isObject(part) && part.type === "text" && typeof part.text === "string") collector.pieces.push(part.text);
    else if (isObject(part) && part.type === "refusal" && typeof part.refusal === "string") {
      collector.pieces.push(part.refusal);
    } else collector.nonText = true;
  }
}

/**
 * The prompt of a request body in the given format: what prompt rules are
 * matched against and what maxPromptChars counts.
 */
export function extractPrompt(format: BodyFormat, body: Record<string, unknown>): ExtractedPrompt {
  const collector = new PromptCollector();
  switch (format) {
    case "openai.chat":
      collector.messages(body.messages, (message) => openAiContent(collector, message.content));
      collector.tools(body.tools);
      collector.tools(body.functions);
      // vLLM lets a request replace the chat template: text the model reads.
      collector.text(body.chat_template);
      break;
    case "openai.completions":
      collector.textOrTokens(body.prompt);
      collector.text(body.suffix);
      break;
    case "openai.embeddings":
      collector.textOrTokens(body.input);
      break;
    case "ollama.generate":
      collector.text(body.system);
      collector.text(body.prompt);
      collector.text(body.suffix);
      // A request's own template wraps the prompt in text the model reads.
      collector.text(body.template);
      collector.nonTextList(body.images);
      // The encoded previous conversation: token ids the rules cannot read.
      collector.nonTextList(body.context);
      break;
    case "ollama.chat":
      collector.messages(body.messages, (message) => {
        collector.text(message.content);
        collector.nonTextList(message.images);
      });
      collector.tools(body.tools);
      collector.text(body.template);
      break;
    case "ollama.embed":
      collector.textOrTokens(body.input);
      collector.text(body.prompt);
      break;
    case "tgi.generate":
      collector.text(body.inputs);
      break;
    case "none":
      break;
  }
  return collector.result();
}
