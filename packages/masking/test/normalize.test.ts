import fc from "fast-check";
import { confusableLetters, Masker, type MaskingProfile, matchForm, normalizeForMatching } from "../src/index.js";
import { OBFUSCATED_PHRASES } from "../src/testing.js";

const profile = (terms: string[]): MaskingProfile => ({
  entities: [],
  custom: [],
  denyList: [{ name: "TERM", terms }],
  style: "label",
  fields: [],
  onError: "block",
  maskPromptsInAudit: false,
});

/** The forms of each code point joined, runs of white space as one, composed: what normalizeForMatching must equal. */
function byForms(text: string): string {
  let joined = "";
  for (const char of text) joined += matchForm(char.codePointAt(0) ?? 0);
  return joined.replace(/ +/g, " ").normalize("NFC");
}

describe("normalizeForMatching", () => {
  it.each(OBFUSCATED_PHRASES.map((phrase) => [phrase.kind, phrase]))(
    "reads %s as the plain phrase",
    (_kind, phrase) => {
      expect(normalizeForMatching(phrase.text)).toBe(phrase.normal);
    },
  );

  it("keeps ASCII apart from white space, and letters of other scripts that do not imitate Latin", () => {
    expect(normalizeForMatching("Hello, World! I 0 l 1 | rn")).toBe("Hello, World! I 0 l 1 | rn");
    expect(normalizeForMatching("东京 пароль שלום")).toBe("东京 пapoль שלום");
    expect(normalizeForMatching("한국어 비밀")).toBe("한국어 비밀");
  });

  it("composes again what was decomposed, and reads conjoining jamo as the syllable", () => {
    expect(normalizeForMatching("\u1107\u1175\u1106\u1175\u11af")).toBe("비밀");
  });

  it("is idempotent and equals the code point forms joined", () => {
    const interesting = fc.constantFrom(
      ..."aAeEoOsSkK ſKıİé\u0301\u200b\u00a0\u2003\u3000\t\n\ufeff\u{e0041}ｅ𝐞ﬁ\u0435\u03bf\u13aa\u1107\u1175\u11af가¨ﷺ\ud800",
    );
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.array(interesting, { maxLength: 30 }).map((chars) => chars.join("")),
    );
    fc.assert(
      fc.property(text, (value) => {
        const normal = normalizeForMatching(value);
        expect(normalizeForMatching(normal)).toBe(normal);
        expect(byForms(value)).toBe(normal);
      }),
      { numRuns: 2000 },
    );
  });

  it("maps look-alikes of the TS #39 table to one ASCII letter, never ASCII itself, and after NFKD", () => {
    for (const [letter, latin] of confusableLetters()) {
      expect(letter.codePointAt(0)).toBeGreaterThan(0x7f);
      expect(letter.normalize("NFKD")).toBe(letter);
      expect(latin).toMatch(/^[A-Za-z]$/);
      expect(matchForm(letter.codePointAt(0) ?? 0)).toBe(latin);
    }
    expect(confusableLetters().size).toBeGreaterThan(150);
  });
});

describe("deny-lists read the same normal form", () => {
  it.each(OBFUSCATED_PHRASES.map((phrase) => [phrase.kind, phrase]))(
    "match a term written as %s, masking the original span",
    (_kind, phrase) => {
      const masker = new Masker(profile([phrase.normal]));
      const text = `before ${phrase.text} after`;
      expect(masker.maskText(text).text).toBe("before [TERM] after");
      // And a term written obfuscated matches the plain text.
      expect(new Masker(profile([phrase.text])).maskText(`before ${phrase.normal} after`).text).toBe(
        "before [TERM] after",
      );
    },
  );

  it("report the offsets of the original text", () => {
    const masker = new Masker(profile(["export all"]));
    const text = "x e\u0301xpo\u200brt\u00a0\u00a0all y";
    expect(masker.detect(text)).toEqual([{ name: "TERM", start: 2, end: text.length - 2, value: text.slice(2, -2) }]);
  });

  it("keep whole words: trailing accents belong to the word, a letter after them continues it", () => {
    const masker = new Masker(profile(["cafe"]));
    expect(masker.maskText("un cafe\u0301 noir").text).toBe("un [TERM] noir");
    expect(masker.maskText("cafe\u0301s").text).toBe("cafe\u0301s");
    expect(masker.maskText("ﬁle").text).toBe("ﬁle");
  });

  it("tolerate a bounded number of ignored characters between letters", () => {
    const masker = new Masker(profile(["secret"]));
    expect(masker.maskText(`s${"\u200b".repeat(4)}ecret`).text).toBe("[TERM]");
    expect(masker.maskText(`s${"\u200b".repeat(5)}ecret`).text).toBe(`s${"\u200b".repeat(5)}ecret`);
  });
});
