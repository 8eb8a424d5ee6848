import fc from "fast-check";
import { requestUsageEdit, UsageChunkFilter } from "./stream-usage.js";

const frame = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;
const USAGE = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };

/** Runs `pieces` through a filter as forward.ts does: each piece, then the rest at the end. */
function filtered(pieces: readonly Buffer[]): { text: string; usage: unknown } {
  const filter = new UsageChunkFilter();
  const out = pieces.map((piece) => filter.push(piece));
  out.push(filter.flush());
  return { text: Buffer.concat(out).toString("utf8"), usage: filter.usage };
}

/** `text` cut at the given byte offsets (sorted, deduplicated, inside the text). */
function cut(text: string, offsets: readonly number[]): Buffer[] {
  const bytes = Buffer.from(text);
  const points = [...new Set(offsets.map((offset) => offset % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  return pieces;
}

describe("UsageChunkFilter", () => {
  it("takes out exactly the usage chunk, however the stream is cut into pieces (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: "grapheme", maxLength: 12 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (contents, offsets, crlf) => {
          const eol = (text: string) => (crlf ? text.replaceAll("\n", "\r\n") : text);
          const kept = contents
            .map((content) => eol(frame({ choices: [{ delta: { content } }], usage: null })))
            .join("");
          const done = eol("data: [DONE]\n\n");
          const stream = `${kept}${eol(frame({ id: "x", choices: [], usage: USAGE }))}${done}`;
          expect(filtered(cut(stream, offsets))).toEqual({ text: `${kept}${done}`, usage: USAGE });
        },
      ),
    );
  });

  it("passes a stream without the chunk through unchanged, an unterminated end included", () => {
    const stream = `${frame({ choices: [{ delta: { content: "a" } }] })}data: {"choices":[]`;
    expect(filtered(cut(stream, [3, 20, 40]))).toEqual({ text: stream, usage: undefined });
    // choices: [] without usage is not the usage chunk, nor is a chunk with usage and choices.
    const lookalike = `${frame({ choices: [], note: 1 })}${frame({ choices: [{}], usage: USAGE })}`;
    expect(filtered([Buffer.from(lookalike)])).toEqual({ text: lookalike, usage: undefined });
  });
});

describe("requestUsageEdit", () => {
  const edit = { path: ["stream_options", "include_usage"], value: true };
  it.each([
    ["openai.chat", "openai", { stream: true }, edit],
    ["openai.completions", "openai", { stream: true, stream_options: { include_usage: false } }, edit],
    ["openai.chat", "openai", { stream: true, stream_options: {} }, edit],
    ["openai.chat", "openai", { stream: true, stream_options: { include_usage: true } }, undefined],
    ["openai.chat", "openai", { stream: true, stream_options: "yes" }, undefined],
    ["openai.chat", "openai", { stream: false }, undefined],
    ["openai.chat", "openai", {}, undefined],
    ["openai.embeddings", "openai", { stream: true }, undefined],
    ["openai.chat", "tgi", { stream: true }, undefined],
    ["ollama.chat", "ollama", { stream: true }, undefined],
  ] as const)("%s on %s with %j: %j", (format, protocol, json, expected) => {
    expect(requestUsageEdit(format, protocol, json as Record<string, unknown>)).toEqual(expected);
  });
});
