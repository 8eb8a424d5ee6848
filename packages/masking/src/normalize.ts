/**
 * The one normal form that keyword matching reads text in: prompt rules
 * (in the policy engine) and deny-lists (in masking) both match against it,
 * so a phrase hidden one way from one of them is hidden from neither.
 *
 * Text is read one code point at a time, each mapped to its "form":
 *
 * - nothing for characters that render as nothing or only decorate another
 *   (invisible characters and combining marks): "ex\u200Bport" and
 *   "e\u0301xport" read "export";
 * - one space for white space of any kind (tabs, line breaks, no-break and
 *   ideographic spaces, U+2000-U+200A), and runs of white space read as one
 *   space;
 * - otherwise its compatibility decomposition (NFKD: full-width, ligature,
 *   mathematical and circled forms read as the plain letters), with
 *   combining marks dropped and letters that look like Latin letters
 *   (Cyrillic "а", Greek "ο", Cherokee "Ꭺ") read as those letters.
 *
 * Case is kept: prompt rules fold case with their `i` flag, deny-lists
 * always fold it (see deny-list.ts). ASCII is never changed apart from
 * white space, so patterns written in ASCII keep their meaning.
 *
 * Two entry points share the tables: `normalizeForMatching` turns a whole
 * text into the normal form (fast native passes, for prompt rules), and
 * `matchForm` gives one code point's form, for matchers that must map a
 * match back to offsets in the original text (the deny-list detector, which
 * masks spans of the text it was given). A test checks that joining the
 * forms gives what `normalizeForMatching` gives.
 */

/**
 * Characters that render as nothing (or only steer rendering) and can be
 * slipped between the letters of a phrase: Unicode's Default_Ignorable
 * (zero-width spaces and joiners, bidi controls, the soft hyphen, variation
 * selectors, tag characters, Hangul fillers, Mongolian selectors), a few
 * older ones spelt out, and every combining mark (\p{M}), so accents and
 * strike-through overlays do not break a word.
 */
const IGNORED_SOURCE =
  "\\p{Default_Ignorable_Code_Point}|\\p{M}|[\\u00AD\\u034F\\u061C\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064\\u2066-\\u2069\\uFEFF\\u{E0000}-\\u{E007F}]";
const IGNORED = new RegExp(`^(?:${IGNORED_SOURCE})$`, "u");
const IGNORED_ALL = new RegExp(IGNORED_SOURCE, "gu");

/**
 * White space: Unicode's White_Space property, and U+2800 (the blank
 * Braille pattern), which renders as a space and is used as one to split
 * words past filters.
 */
const SPACE_SOURCE = "[\\p{White_Space}\\u2800]";
const SPACE = new RegExp(`^${SPACE_SOURCE}$`, "u");
const SPACE_RUNS = new RegExp(`${SPACE_SOURCE}+`, "gu");

/**
 * Letters of other scripts that look like a Latin letter, after Unicode
 * Technical Standard #39 (Unicode Security Mechanisms), confusables.txt.
 * Chosen as every entry of that table whose source is one letter of the
 * Latin, Greek, Cyrillic, Armenian, Cherokee, Coptic or Lisu scripts (the
 * scripts that imitate Latin text), whose prototype is one ASCII letter,
 * and which NFKD leaves alone (NFKD already reads "ｅ" and "𝐞" as "e").
 * TS #39 maps upper-case vertical strokes (Greek "Ι", Cyrillic "І") to "l";
 * here they read "I", as ASCII itself is never remapped and case is kept.
 * Data: confusables.txt of Unicode 10, where these entries are unchanged
 * since; extend the table when a newer one adds Latin look-alikes.
 */
// biome-ignore format: a table, seven entries a line
const CONFUSABLE_ENTRIES: readonly (readonly [number, string])[] = [
  // Latin (IPA, small capitals, Latin Extended)
  [0x0131, "i"], [0x0184, "b"], [0x018d, "g"], [0x0196, "I"], [0x01a6, "R"], [0x01bd, "s"], [0x01c0, "l"],
  [0x0251, "a"], [0x0261, "g"], [0x0263, "y"], [0x0269, "i"], [0x026a, "i"], [0x026f, "w"], [0x028b, "u"],
  [0x028f, "y"], [0x1d04, "c"], [0x1d0f, "o"], [0x1d11, "o"], [0x1d1c, "u"], [0x1d20, "v"], [0x1d21, "w"],
  [0x1d22, "z"], [0x1d83, "g"], [0x1d8c, "y"], [0x1e9d, "f"], [0x1eff, "y"], [0xa731, "s"], [0xa798, "F"],
  [0xa799, "f"], [0xa79f, "u"], [0xa7b2, "J"], [0xa7b3, "X"], [0xa7b4, "B"], [0xab32, "e"], [0xab35, "f"],
  [0xab3d, "o"], [0xab47, "r"], [0xab48, "r"], [0xab4e, "u"], [0xab52, "u"], [0xab5a, "y"],
  // Greek
  [0x037f, "J"], [0x0391, "A"], [0x0392, "B"], [0x0395, "E"], [0x0396, "Z"], [0x0397, "H"], [0x0399, "I"],
  [0x039a, "K"], [0x039c, "M"], [0x039d, "N"], [0x039f, "O"], [0x03a1, "P"], [0x03a4, "T"], [0x03a5, "Y"],
  [0x03a7, "X"], [0x03b1, "a"], [0x03b3, "y"], [0x03b9, "i"], [0x03bd, "v"], [0x03bf, "o"], [0x03c1, "p"],
  [0x03c3, "o"], [0x03c5, "u"], [0x03dc, "F"], [0x03f3, "j"], [0x03fa, "M"], [0x1d26, "r"],
  // Cyrillic
  [0x0405, "S"], [0x0406, "I"], [0x0408, "J"], [0x0410, "A"], [0x0412, "B"], [0x0415, "E"], [0x041a, "K"],
  [0x041c, "M"], [0x041d, "H"], [0x041e, "O"], [0x0420, "P"], [0x0421, "C"], [0x0422, "T"], [0x0423, "Y"],
  [0x0425, "X"], [0x042c, "b"], [0x0430, "a"], [0x0433, "r"], [0x0435, "e"], [0x043e, "o"], [0x0440, "p"],
  [0x0441, "c"], [0x0443, "y"], [0x0445, "x"], [0x0455, "s"], [0x0456, "i"], [0x0458, "j"], [0x0461, "w"],
  [0x0474, "V"], [0x0475, "v"], [0x04ae, "Y"], [0x04af, "y"], [0x04bb, "h"], [0x04bd, "e"], [0x04c0, "I"],
  [0x04cf, "i"], [0x0501, "d"], [0x050c, "G"], [0x051b, "q"], [0x051c, "W"], [0x051d, "w"], [0xa647, "i"],
  // Armenian
  [0x054d, "U"], [0x054f, "S"], [0x0555, "O"], [0x0561, "w"], [0x0563, "q"], [0x0566, "q"], [0x0570, "h"],
  [0x0578, "n"], [0x057c, "n"], [0x057d, "u"], [0x0581, "g"], [0x0584, "f"], [0x0585, "o"],
  // Cherokee
  [0x13a0, "D"], [0x13a1, "R"], [0x13a2, "T"], [0x13a5, "i"], [0x13a9, "Y"], [0x13aa, "A"], [0x13ab, "J"],
  [0x13ac, "E"], [0x13b3, "W"], [0x13b7, "M"], [0x13bb, "H"], [0x13bd, "Y"], [0x13c0, "G"], [0x13c2, "h"],
  [0x13c3, "Z"], [0x13cf, "b"], [0x13d2, "R"], [0x13d4, "W"], [0x13d5, "S"], [0x13d9, "V"], [0x13da, "S"],
  [0x13de, "L"], [0x13df, "C"], [0x13e2, "P"], [0x13e6, "K"], [0x13e7, "d"], [0x13f3, "G"], [0x13f4, "B"],
  [0xab75, "i"], [0xab81, "r"], [0xab83, "w"], [0xab93, "z"], [0xaba9, "v"], [0xabaa, "s"], [0xabaf, "c"],
  // Coptic
  [0x2c85, "r"], [0x2c8e, "H"], [0x2c92, "I"], [0x2c94, "K"], [0x2c98, "M"], [0x2c9a, "N"], [0x2c9e, "O"],
  [0x2c9f, "o"], [0x2ca2, "P"], [0x2ca3, "p"], [0x2ca4, "C"], [0x2ca5, "c"], [0x2ca6, "T"], [0x2ca8, "Y"],
  [0x2cac, "X"], [0x2cd0, "L"],
  // Lisu
  [0xa4d0, "B"], [0xa4d1, "P"], [0xa4d2, "d"], [0xa4d3, "D"], [0xa4d4, "T"], [0xa4d6, "G"], [0xa4d7, "K"],
  [0xa4d9, "J"], [0xa4da, "C"], [0xa4dc, "Z"], [0xa4dd, "F"], [0xa4df, "M"], [0xa4e0, "N"], [0xa4e1, "L"],
  [0xa4e2, "S"], [0xa4e3, "R"], [0xa4e6, "V"], [0xa4e7, "H"], [0xa4ea, "W"], [0xa4eb, "X"], [0xa4ec, "Y"],
  [0xa4ee, "A"], [0xa4f0, "E"], [0xa4f2, "l"], [0xa4f3, "O"], [0xa4f4, "U"],
];

const CONFUSABLES = new Map(CONFUSABLE_ENTRIES.map(([code, latin]) => [String.fromCodePoint(code), latin]));
const CONFUSABLE_ALL = new RegExp(
  `[${CONFUSABLE_ENTRIES.map(([code]) => `\\u{${code.toString(16)}}`).join("")}]`,
  "gu",
);

/** The confusable letters and the Latin letter each reads as, for tests and documentation. */
export function confusableLetters(): ReadonlyMap<string, string> {
  return CONFUSABLES;
}

/** One code point's form, computed (see matchForm for the cached lookup). */
function computeForm(char: string): string {
  if (IGNORED.test(char)) return "";
  if (SPACE.test(char)) return " ";
  const decomposed = char.normalize("NFKD");
  if (decomposed === char) return CONFUSABLES.get(char) ?? char;
  let form = "";
  for (const part of decomposed) {
    if (IGNORED.test(part)) continue;
    form += SPACE.test(part) ? " " : (CONFUSABLES.get(part) ?? part);
  }
  return form;
}

let bmpForms: string[] | undefined;

/** Forms of the Basic Multilingual Plane, computed once per process (a few milliseconds). */
function bmp(): string[] {
  if (bmpForms === undefined) {
    const forms: string[] = [];
    for (let code = 0; code < 0x10000; code++) {
      // A lone surrogate is not text: it stays what it is.
      const char = String.fromCharCode(code);
      forms.push(code >= 0xd800 && code <= 0xdfff ? char : computeForm(char));
    }
    bmpForms = forms;
  }
  return bmpForms;
}

/**
 * How one code point reads for matching: "" (ignored), " " (white space),
 * or one or more characters (usually one). Characters outside the Basic
 * Multilingual Plane are computed on each call, not cached, so a text of
 * many distinct ones cannot grow a cache.
 */
export function matchForm(codePoint: number): string {
  if (codePoint < 0x10000) return bmp()[codePoint] as string;
  return computeForm(String.fromCodePoint(codePoint));
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the whole ASCII range is what this tests
const ASCII_ONLY = /^[\u0000-\u007f]*$/;
const ASCII_SPACE_RUNS = /[\t-\r ]+/g;

/**
 * A text in the normal form described above: each code point's form, runs
 * of white space as one space, and composed again (NFC) so that Hangul
 * syllables and other composed letters read as they are written in a
 * pattern. Idempotent.
 */
export function normalizeForMatching(text: string): string {
  if (ASCII_ONLY.test(text)) return text.replace(ASCII_SPACE_RUNS, " ");
  return text
    .normalize("NFKD")
    .replace(IGNORED_ALL, "")
    .replace(CONFUSABLE_ALL, (char) => CONFUSABLES.get(char) ?? char)
    .replace(SPACE_RUNS, " ")
    .normalize("NFC");
}
