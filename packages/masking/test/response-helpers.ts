// Shared by the response adapter tests: a small deterministic stand-in for
// the engine, the runtimes' frames as the runtime fixture writes them, and
// a driver that feeds a body in chosen pieces.
import type { MaskCounts, MaskingStream } from "../src/masker.js";
import type { TextMasker } from "../src/response-documents.js";
import { createResponseMasker, type ResponseMaskerOptions } from "../src/response-masker.js";

export const EMAIL = "john@example.com";
export const LABEL = "[EMAIL]";

/**
 * Masks the one fixed word EMAIL as LABEL. Its stream holds back exactly
 * the longest tail that is a start of the word, as the engine's streams
 * hold back what could still become a match.
 */
export class WordMasker implements TextMasker {
  readonly word: string;
  readonly label: string;
  readonly entity: string;

  constructor(word = EMAIL, label = LABEL, entity = "EMAIL") {
    this.word = word;
    this.label = label;
    this.entity = entity;
  }

  maskText(text: string): { text: string; counts: MaskCounts } {
    const pieces = text.split(this.word);
    const found = pieces.length - 1;
    return { text: pieces.join(this.label), counts: found > 0 ? { [this.entity]: found } : {} };
  }

  createStream(): MaskingStream {
    const { word, label, entity } = this;
    let held = "";
    const counts: MaskCounts = {};
    return {
      push(chunk: string): string {
        let text = held + chunk;
        let out = "";
        for (let at = text.indexOf(word); at !== -1; at = text.indexOf(word)) {
          out += text.slice(0, at) + label;
          counts[entity] = (counts[entity] ?? 0) + 1;
          text = text.slice(at + word.length);
        }
        let keep = Math.min(word.length - 1, text.length);
        while (keep > 0 && !text.endsWith(word.slice(0, keep))) keep -= 1;
        held = text.slice(text.length - keep);
        return out + text.slice(0, text.length - keep);
      },
      end(): string {
        const rest = held;
        held = "";
        return rest;
      },
      get counts() {
        return { ...counts };
      },
      get held() {
        return held.length;
      },
    };
  }
}

const encoder = new TextEncoder();

/** A body cut into pieces at the given byte offsets (so a cut may fall inside a character). */
export function cutBytes(body: string, offsets: readonly number[]): Uint8Array[] {
  const bytes = encoder.encode(body);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const offset of [...offsets, bytes.length]) {
    pieces.push(bytes.slice(start, offset));
    start = offset;
  }
  return pieces;
}

/** Pieces of the frames as they were written: one chunk per frame. */
export function frameChunks(frames: readonly string[]): Uint8Array[] {
  return frames.map((frame) => encoder.encode(frame));
}

export interface Run {
  /** What each push released, then what end released, decoded. */
  outputs: string[];
  /** Everything, joined. */
  body: string;
  counts: MaskCounts;
}

/** Feeds chunks through a fresh response masker. */
export function run(
  chunks: readonly Uint8Array[],
  options: ResponseMaskerOptions,
  masker: TextMasker = new WordMasker(),
): Run {
  const responseMasker = createResponseMasker(masker, options);
  const decoder = new TextDecoder();
  const outputs: string[] = [];
  const bytes: Uint8Array[] = [];
  for (const chunk of chunks) bytes.push(responseMasker.push(chunk));
  bytes.push(responseMasker.end());
  // Decoded together: a released piece may end inside a character.
  for (const piece of bytes) outputs.push(decoder.decode(piece, { stream: true }));
  return { outputs, body: outputs.join(""), counts: responseMasker.counts };
}

// ---- OpenAI, as vLLM (and the runtime fixture) streams it ----

export const CHAT_ID = "chatcmpl-fixture-1";
export const CREATED = 1_760_000_000;
export const MODEL = "llama-3.1-8b-instruct";

export function sseFrame(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

export const DONE_FRAME = "data: [DONE]\n\n";

export function chatChunk(choices: unknown[], usage?: unknown): string {
  return sseFrame({
    id: CHAT_ID,
    object: "chat.completion.chunk",
    created: CREATED,
    model: MODEL,
    choices,
    ...(usage === undefined ? {} : { usage }),
  });
}

export function deltaChoice(delta: object, finishReason: string | null = null, index = 0) {
  return { index, delta, logprobs: null, finish_reason: finishReason };
}

/** A chat stream as the fixture sends it: role chunk, content chunks, finish chunk, [DONE]. */
export function chatStream(contents: readonly string[]): string[] {
  return [
    chatChunk([deltaChoice({ role: "assistant", content: "" })]),
    ...contents.map((content) => chatChunk([deltaChoice({ content })])),
    chatChunk([deltaChoice({}, "stop")]),
    DONE_FRAME,
  ];
}

/** Parsed SSE events of a body: each event's data (JSON parsed, or the raw text). */
export function sseData(body: string): unknown[] {
  return body
    .split(/\r?\n\r?\n/)
    .filter((event) => event.trim() !== "")
    .map((event) => {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      return data === "[DONE]" ? data : JSON.parse(data);
    });
}

interface ChatChunk {
  choices: { index: number; delta: { content?: string }; finish_reason: string | null }[];
}

/** The streamed content of choice 0, joined. */
export function chatContent(body: string): string {
  return sseData(body)
    .filter((data): data is ChatChunk => typeof data === "object")
    .map((data) => data.choices[0]?.delta.content ?? "")
    .join("");
}
