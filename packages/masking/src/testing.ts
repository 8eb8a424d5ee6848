// Fixtures for tests of the packages that match text in the normal form of
// normalize.ts (this one's deny-lists, the policy engine's prompt rules):
// one table, so both are held to the same obfuscations.

/** One way of writing a phrase that must read as the plain phrase. */
export interface ObfuscatedPhrase {
  /** The class of obfuscation, for test names. */
  kind: string;
  /** The phrase as written. */
  text: string;
  /** Its normal form (normalizeForMatching). */
  normal: string;
}

/**
 * Ways of writing "export all" (and a few others) that must read as it:
 * each class the normal form covers, one or more examples each. Every
 * `normal` is a whole phrase, so matchers that need word boundaries (the
 * deny-list) and ones that do not (a prompt rule) must agree on each.
 */
export const OBFUSCATED_PHRASES: readonly ObfuscatedPhrase[] = [
  { kind: "plain", text: "export all", normal: "export all" },
  { kind: "case (kept: rules fold it with i, deny-lists always)", text: "EXPORT All", normal: "EXPORT All" },
  { kind: "white space: tab", text: "export\tall", normal: "export all" },
  { kind: "white space: line break", text: "export\r\nall", normal: "export all" },
  { kind: "white space: no-break space", text: "export\u00a0all", normal: "export all" },
  { kind: "white space: narrow no-break space", text: "export\u202fall", normal: "export all" },
  { kind: "white space: en quad to hair space", text: "export\u2000\u2005\u200aall", normal: "export all" },
  { kind: "white space: ideographic space", text: "export\u3000all", normal: "export all" },
  { kind: "white space: line and paragraph separators", text: "export\u2028\u2029all", normal: "export all" },
  { kind: "white space: blank Braille pattern", text: "export\u2800all", normal: "export all" },
  { kind: "white space: a run of kinds", text: "export \t\u00a0 \u3000all", normal: "export all" },
  { kind: "zero-width space", text: "ex\u200bport all", normal: "export all" },
  { kind: "zero-width joiner and non-joiner", text: "e\u200dxpo\u200crt a\u200dll", normal: "export all" },
  { kind: "word joiner and soft hyphen", text: "ex\u2060po\u00adrt all", normal: "export all" },
  { kind: "bidi controls", text: "ex\u202eport\u202c a\u2066ll\u2069", normal: "export all" },
  { kind: "byte-order mark", text: "exp\ufeffort all", normal: "export all" },
  { kind: "variation selector", text: "expor\ufe0ft all", normal: "export all" },
  { kind: "tag characters", text: "exp\u{e0041}ort al\u{e007f}l", normal: "export all" },
  { kind: "combining accents", text: "e\u0301xpo\u0300rt a\u0308ll", normal: "export all" },
  { kind: "precomposed accents", text: "éxpört àll", normal: "export all" },
  { kind: "strike-through overlay", text: "e\u0336x\u0336p\u0336o\u0336r\u0336t all", normal: "export all" },
  { kind: "full-width letters", text: "ｅｘｐｏｒｔ ａｌｌ", normal: "export all" },
  { kind: "mathematical letters", text: "𝐞𝐱𝐩𝐨𝐫𝐭 𝒂𝒍𝒍", normal: "export all" },
  { kind: "ligature", text: "ﬁle dump", normal: "file dump" },
  { kind: "Cyrillic look-alikes", text: "\u0435\u0445\u0440\u043ert \u0430ll", normal: "export all" },
  { kind: "Cyrillic capitals", text: "\u0415\u0425\u0420\u041eRT \u0410LL", normal: "EXPORT ALL" },
  { kind: "Greek look-alikes", text: "exp\u03bfrt \u03b1ll", normal: "export all" },
  { kind: "Greek capitals", text: "\u0395XP\u039fRT", normal: "EXPORT" },
  { kind: "Latin small capitals and dotless i", text: "\u1d04\u1d0fnf\u0131dential", normal: "confidential" },
  { kind: "Armenian and Cherokee look-alikes", text: "\u0585ne \u13aall", normal: "one All" },
  { kind: "look-alikes under accents", text: "\u04d3ll", normal: "all" },
  {
    kind: "everything at once",
    text: "\uff25\u200b\u0445\u0440\u043e\u0301rt\u00a0\u2003 \u{1d41a}ll",
    normal: "Export all",
  },
];
