import fc from "fast-check";
import { Masker, type MaskingProfile, normalizeForMatching } from "../src/index.js";

// Property: deny-list terms written with invisible characters, accents,
// white space of any kind and look-alike letters are masked, and streamed
// masking of such text (cut anywhere, surrogate pairs included) gives what
// whole-text masking gives and never holds more than its bound.

const profile: MaskingProfile = {
  entities: [],
  custom: [],
  denyList: [{ name: "PROJECT", terms: ["Project Falcon", "Blue Heron", "Falcon"] }],
  style: "label",
  fields: [],
  onError: "block",
  maskPromptsInAudit: false,
};

/** Ways to write one letter: itself, its other case, full-width, mathematical bold, a look-alike. */
const VARIANTS: Record<string, string[]> = {
  a: ["a", "A", "ａ", "𝐚", "\u0430", "\u03b1", "\u00e0"],
  e: ["e", "E", "ｅ", "𝐞", "\u0435", "\u00e9", "e\u0301"],
  o: ["o", "O", "ｏ", "𝐨", "\u043e", "\u03bf", "\u00f6"],
  c: ["c", "C", "ｃ", "\u0441", "\u1d04"],
  r: ["r", "R", "ｒ", "\u0433"],
  P: ["P", "p", "Ｐ", "\u0420", "\u03a1", "𝐏"],
  B: ["B", "b", "Ｂ", "\u0412", "\u0392"],
  H: ["H", "h", "Ｈ", "\u041d", "\u0397", "\u04bb"],
  l: ["l", "L", "ｌ"],
  n: ["n", "N", "ｎ", "\u0578"],
};
const IGNORED = ["", "", "", "\u200b", "\u200d", "\u00ad", "\ufe0f", "\u0336", "\u{e0041}", "\u200b\u200b"];
const SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\u3000", " \u200b "];

function obfuscated(term: string): fc.Arbitrary<string> {
  const pieces = [...term].map((char) =>
    char === " "
      ? fc.constantFrom(...SPACES)
      : fc
          .tuple(fc.constantFrom(...(VARIANTS[char] ?? [char])), fc.constantFrom(...IGNORED))
          .map(([letter, after]) => letter + after),
  );
  return fc.tuple(...pieces).map((parts) => parts.join(""));
}

const TERM = fc.oneof(obfuscated("Project Falcon"), obfuscated("Blue Heron"), obfuscated("Falcon"));
const WORD = fc.constantFrom("the", "Project", "Falconer", "é", "😀", "𝐏", "blue", "\u200b", "x", "Pro");
const SEPARATOR = fc.constantFrom(" ", ", ", "\n", ". ", "\u00a0");
const TEXT = fc
  .array(fc.tuple(fc.oneof(TERM, WORD), SEPARATOR), { minLength: 1, maxLength: 12 })
  .map((parts) => parts.map(([piece, separator]) => piece + separator).join(""));
const CHUNKING = fc.oneof(fc.constant([1]), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 12 }));

function cut(text: string, lengths: readonly number[]): string[] {
  if (!lengths.some((length) => length > 0)) return [text];
  const chunks: string[] = [];
  for (let index = 0, turn = 0; index < text.length; turn++) {
    const length = lengths[turn % lengths.length] ?? 1;
    chunks.push(text.slice(index, index + length));
    index += length;
  }
  return chunks;
}

describe("deny-lists over obfuscated text", () => {
  const masker = new Masker(profile);

  it("mask every obfuscated term, and nothing of it is left to read", () => {
    fc.assert(
      fc.property(TERM, (term) => {
        const { text } = masker.maskText(`see ${term} now`);
        expect(text).toBe("see [PROJECT] now");
      }),
      { numRuns: 1000, seed: 13 },
    );
  });

  it("stream exactly as they mask whole texts, within their hold-back bound", () => {
    fc.assert(
      fc.property(TEXT, CHUNKING, (text, chunking) => {
        const whole = masker.maskText(text);
        const stream = masker.createStream();
        let released = "";
        let maxHeld = 0;
        for (const chunk of cut(text, chunking)) {
          released += stream.push(chunk);
          maxHeld = Math.max(maxHeld, stream.held);
        }
        released += stream.end();
        expect(released).toBe(whole.text);
        expect(stream.counts).toEqual(whole.counts);
        expect(maxHeld).toBeLessThanOrEqual(masker.holdback + 1);
        expect(normalizeForMatching(whole.text).toLowerCase()).not.toMatch(/\bproject falcon\b|\bblue heron\b/);
      }),
      { numRuns: 1500, seed: 20261127 },
    );
  });
});
