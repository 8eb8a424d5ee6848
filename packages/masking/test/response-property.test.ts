import { describe, expect, it } from "@jest/globals";
import fc from "fast-check";
import { DEFAULT_FIELDS } from "../src/response-fields.js";
import { chatContent, chatStream, cutBytes, EMAIL, run, WordMasker } from "./response-helpers.js";

// Pieces that build texts full of near misses: the word's prefixes, the
// word itself, multi-byte characters, JSON's special characters.
const piece = fc.constantFrom(EMAIL, "john@", "jo", "hn@example.com", "j", "@", " ", "é", "🙂", '"', "\\", "\n", "x");
const text = fc.array(piece, { maxLength: 30 }).map((pieces) => pieces.join(""));

/** A text cut into 1-8 deltas at arbitrary places (which may split a surrogate pair: JSON escapes it). */
const deltas = text.chain((whole) =>
  fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, whole.length - 1) }), { maxLength: 7 }).map((cuts) => {
    const sorted = cuts.filter((cut) => cut < whole.length).sort((a, b) => a - b);
    return [0, ...sorted].map((start, index) => whole.slice(start, sorted[index] ?? whole.length));
  }),
);

describe("streamed masking equals whole-text masking", () => {
  it("for any text, any split into deltas and any byte chunking of the SSE stream", () => {
    const masker = new WordMasker();
    fc.assert(
      fc.property(deltas, fc.array(fc.nat(), { maxLength: 6 }), (contents, rawCuts) => {
        const body = chatStream(contents).join("");
        const length = new TextEncoder().encode(body).length;
        const cuts = [...new Set(rawCuts.map((cut) => cut % length))].filter((cut) => cut > 0).sort((a, b) => a - b);
        const result = run(cutBytes(body, cuts), { contentType: "text/event-stream", fields: DEFAULT_FIELDS.openai });
        expect(chatContent(result.body)).toBe(masker.maskText(contents.join("")).text);
        expect(result.body).not.toContain(EMAIL);
        expect(result.counts).toEqual(masker.maskText(contents.join("")).counts);
      }),
      { numRuns: 300 },
    );
  });
});
