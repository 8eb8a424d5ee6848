import { matchForm } from "../normalize.js";
import { Cursor, type Detector, decideAt, type Hit, matchHit } from "./scan.js";

/** First-character kinds: terms starting with it must start a word, or may start anywhere. */
const WORD_START = 1;
const ANYWHERE = 2;

/** A deny-list term's token for "a run of white space". */
const SPACE_RUN = -1;
/** What the reader answers past the end of a finished text, and after too many ignored characters. */
const END = -2;
const GAP = -3;
const SPACE = 32;
/** White space in a term matches 1 to this many white-space characters in the text. */
const MAX_SPACE_RUN = 8;
/**
 * Ignored characters (invisible ones, combining marks) a term tolerates
 * before each of its characters and after its last one, in UTF-16 units:
 * enough for a zero-width space, an emoji selector or a few accents per
 * letter, and a bound on how far a stream must look ahead.
 */
const MAX_GAP = 4;
/** The most UTF-16 units one token of a term can take in the text: its ignored characters and itself. */
const STEP = MAX_GAP + 4;

let foldTable: Uint16Array | undefined;
let wordTable: Uint8Array | undefined;
let formTable: string[] | undefined;
let firstUnitIndex: Map<number, number[]> | undefined;

/**
 * Case folding of UTF-16 code units: each unit's lower case when that is
 * one unit (so indices stay aligned), else the unit itself. Computed once
 * per process.
 */
function folds(): Uint16Array {
  if (foldTable === undefined) {
    foldTable = new Uint16Array(65536);
    for (let code = 0; code < 65536; code++) {
      const lower = String.fromCharCode(code).toLowerCase();
      foldTable[code] = lower.length === 1 ? lower.charCodeAt(0) : code;
    }
  }
  return foldTable;
}

function foldUnits(form: string): string {
  const fold = folds();
  let folded = "";
  for (let index = 0; index < form.length; index++) {
    const code = form.charCodeAt(index);
    folded += String.fromCharCode(fold[code] ?? code);
  }
  return folded;
}

/**
 * What a code point reads as to a deny-list: its match form (the normal
 * form prompt rules read, see normalize.ts), case-folded. Cached for the
 * Basic Multilingual Plane.
 */
function foldedForm(codePoint: number): string {
  if (codePoint >= 0x10000) return foldUnits(matchForm(codePoint));
  if (formTable === undefined) {
    // Filled in order, so the engine keeps it a packed array of strings.
    const table: string[] = [];
    for (let code = 0; code < 0x10000; code++) table.push(foldUnits(matchForm(code)));
    formTable = table;
  }
  return formTable[codePoint] as string;
}

/** BMP code points by the first unit of their folded form (`k` ← `K`, `ｋ`, the Kelvin sign, `𝐤` is astral). */
function firstUnits(): Map<number, number[]> {
  if (firstUnitIndex === undefined) {
    firstUnitIndex = new Map();
    for (let code = 0; code < 0x10000; code++) {
      if (code >= 0xd800 && code <= 0xdfff) continue;
      const form = foldedForm(code);
      if (form === "" || form.charCodeAt(0) === SPACE) continue;
      const first = form.charCodeAt(0);
      const codes = firstUnitIndex.get(first);
      if (codes === undefined) firstUnitIndex.set(first, [code]);
      else codes.push(code);
    }
  }
  return firstUnitIndex;
}

/** Letters, digits and `_` of the Basic Multilingual Plane; surrogates are looked up by code point. */
function words(): Uint8Array {
  if (wordTable === undefined) {
    wordTable = new Uint8Array(65536);
    const word = /^[\p{L}\p{N}_]$/u;
    for (let code = 0; code < 65536; code++) {
      if (code < 0xd800 || code > 0xdfff) wordTable[code] = word.test(String.fromCharCode(code)) ? 1 : 0;
    }
  }
  return wordTable;
}

const ASTRAL_WORD = /^[\p{L}\p{N}]$/u;

interface Term {
  /** Folded units of the term's normal form, SPACE_RUN for white space. */
  tokens: number[];
  /** Which list (index in the profile): its name labels the match, and the first list wins ties. */
  list: number;
  /** The term starts (ends) with a letter, digit or `_`, so the text must not continue the word there. */
  wordStart: boolean;
  wordEnd: boolean;
}

/**
 * Reads a text as folded forms, unit by unit, from a start position, through
 * a cursor (so a stream reports "undecided" where the whole text might
 * decide otherwise). `index` is where the next code point starts; `form` is
 * the form of the last code point read and `offset` the next unit in it.
 */
class FormReader {
  cursor = new Cursor();
  index = 0;
  form = "";
  offset = 0;
  /** UTF-16 units of the code point last looked at. */
  width = 0;

  reset(cursor: Cursor, start: number): void {
    this.cursor = cursor;
    this.index = start;
    this.form = "";
    this.offset = 0;
  }

  /** The folded form of the code point at `index` (undefined past the end of a finished text); sets `width`. */
  formAt(index: number): string | undefined {
    const code = this.cursor.at(index);
    if (code === -1) return undefined;
    if (code >= 0xd800 && code <= 0xdbff) {
      const low = this.cursor.at(index + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        this.width = 2;
        return foldedForm((code - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000);
      }
    }
    this.width = 1;
    return foldedForm(code);
  }

  /**
   * The next unit without taking it: a folded code unit (SPACE for white
   * space), END past the end of a finished text, or GAP when more than
   * MAX_GAP units of ignored characters come first. Reading the next code
   * point moves `index` past it (and past the ignored ones before it).
   */
  peek(): number {
    if (this.offset < this.form.length) return this.form.charCodeAt(this.offset);
    let gap = 0;
    for (;;) {
      const form = this.formAt(this.index);
      if (form === undefined) return END;
      this.index += this.width;
      if (form !== "") {
        this.form = form;
        this.offset = 0;
        return form.charCodeAt(0);
      }
      gap += this.width;
      if (gap > MAX_GAP) return GAP;
    }
  }

  /** Past the ignored characters (up to MAX_GAP units) after the last code point read; returns where they end. */
  skipIgnored(): number {
    let gap = 0;
    for (;;) {
      const form = this.formAt(this.index);
      if (form !== "" || gap + this.width > MAX_GAP) return this.index;
      gap += this.width;
      this.index += this.width;
    }
  }
}

/**
 * All deny-lists of a profile in one detector: literal terms matched in
 * the normal form prompt rules read (normalize.ts: invisible characters
 * and combining marks ignored, full-width and other compatibility forms
 * and Latin look-alike letters read as plain letters), ignoring case, white
 * space in a term matching 1-8 white-space characters, and whole words
 * only: a term that starts (ends) with a letter, digit or `_` must not have
 * one before (after) it in the text. Up to MAX_GAP units of ignored
 * characters may come before each character of a term and after its last
 * one (they are masked with it). At one position the longest matching term
 * wins, then the earlier list. Matches carry the list's name, and their
 * offsets are those of the text as given, so the original span is masked.
 *
 * Candidates are found by one regular expression for the characters that
 * read as the first character of a term (at word starts where the terms
 * need one), and checked against the terms in a bucket keyed by their
 * first two tokens, so thousands of terms cost about what a few do.
 */
export class DenyListDetector implements Detector {
  readonly name: string;
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window: number;
  readonly #names: readonly string[];
  /** By folded first unit: WORD_START and/or ANYWHERE. */
  readonly #first = new Map<number, number>();
  /** Where a term can start: a character that reads as its first character, at a word start if every such term needs one. */
  readonly #candidates: RegExp;
  /** One-token terms by their token; longer ones by their first two tokens. */
  readonly #single = new Map<number, Term[]>();
  readonly #pairs = new Map<number, Term[]>();
  readonly #word = words();
  readonly #cursor = new Cursor();
  readonly #reader = new FormReader();
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number, lists: readonly { name: string; terms: readonly string[] }[]) {
    this.rank = rank;
    this.#names = lists.map((list) => list.name);
    this.name = this.#names[0] ?? "DENY_LIST";
    let longest = 0;
    for (const [list, { terms }] of lists.entries()) {
      for (const raw of new Set(terms)) {
        const term = this.#term(raw, list);
        if (term === undefined) continue;
        const [first = 0, second] = term.tokens;
        this.#first.set(first, (this.#first.get(first) ?? 0) | (term.wordStart ? WORD_START : ANYWHERE));
        const bucket = second === undefined ? this.#single : this.#pairs;
        const bucketKey = second === undefined ? first : pairKey(first, second);
        const terms = bucket.get(bucketKey);
        if (terms === undefined) bucket.set(bucketKey, [term]);
        else terms.push(term);
        // Each token reads at most STEP units; a white-space run reads one
        // character past its longest form; after the term come its
        // ignored characters and the character that says whether a word
        // goes on.
        const reach =
          term.tokens.reduce((sum, token) => sum + (token === SPACE_RUN ? (MAX_SPACE_RUN + 1) * STEP : STEP), 0) +
          MAX_GAP +
          4;
        longest = Math.max(longest, reach);
      }
    }
    this.window = Math.max(2, longest) + 2;
    this.#candidates = candidatePattern(this.#first);
  }

  /** Whether any list has a term. */
  get empty(): boolean {
    return this.#single.size === 0 && this.#pairs.size === 0;
  }

  #term(text: string, list: number): Term | undefined {
    const tokens: number[] = [];
    for (const char of text) {
      const form = foldedForm(char.codePointAt(0) ?? 0);
      for (let index = 0; index < form.length; index++) {
        const unit = form.charCodeAt(index);
        if (unit !== SPACE) tokens.push(unit);
        else if (tokens.length > 0 && tokens.at(-1) !== SPACE_RUN) tokens.push(SPACE_RUN);
      }
    }
    while (tokens.at(-1) === SPACE_RUN) tokens.pop();
    if (tokens.length === 0) return undefined;
    return { tokens, list, wordStart: this.#wordToken(tokens, 0), wordEnd: this.#wordToken(tokens, tokens.length - 1) };
  }

  /** Whether the character of the token at `index` (a surrogate pair read whole) is a letter, digit or `_`. */
  #wordToken(tokens: readonly number[], index: number): boolean {
    const unit = tokens[index] ?? 0;
    if (unit >= 0xd800 && unit <= 0xdbff) return ASTRAL_WORD.test(String.fromCharCode(unit, tokens[index + 1] ?? 0));
    if (unit >= 0xdc00 && unit <= 0xdfff) return ASTRAL_WORD.test(String.fromCharCode(tokens[index - 1] ?? 0, unit));
    return this.#word[unit] === 1;
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    const candidates = this.#candidates;
    candidates.lastIndex = from;
    // Every candidate is tried in order, the undecided ones at the end included.
    for (let found = candidates.exec(text); found !== null; found = candidates.exec(text)) {
      const hit = decideAt(cursor, found.index, this.#decide);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    const reader = this.#reader;
    reader.reset(cursor, start);
    // A match starts at a character that reads as something: never at an ignored one.
    const lead = reader.formAt(start);
    if (lead === undefined || lead === "" || lead.charCodeAt(0) === SPACE) return undefined;
    reader.index = start + reader.width;
    reader.form = lead;
    reader.offset = 1;
    const first = lead.charCodeAt(0);
    const after = reader.peek();
    const second = after === SPACE ? SPACE_RUN : after;
    const longer = after < 0 ? undefined : this.#pairs.get(pairKey(first, second));
    const glued = this.#wordBefore(cursor, start);
    let best: Term | undefined;
    let bestEnd = -1;
    for (const terms of [this.#single.get(first), longer]) {
      for (const term of terms ?? []) {
        if (term.wordStart && glued) continue;
        const end = this.#matchEnd(cursor, start, term);
        if (end > bestEnd || (end === bestEnd && best !== undefined && term.list < best.list)) {
          best = term;
          bestEnd = end;
        }
      }
    }
    if (best === undefined || bestEnd === -1) return undefined;
    return { ...matchHit(start, bestEnd), name: this.#names[best.list] };
  }

  /** Where `term` ends when it matches at `start`, else -1. */
  #matchEnd(cursor: Cursor, start: number, term: Term): number {
    const reader = this.#reader;
    reader.reset(cursor, start);
    for (const token of term.tokens) {
      if (token === SPACE_RUN) {
        let run = 0;
        while (reader.peek() === SPACE) {
          if (++run > MAX_SPACE_RUN) return -1;
          reader.offset++;
        }
        if (run === 0) return -1;
      } else {
        if (reader.peek() !== token) return -1;
        reader.offset++;
      }
    }
    // A match ends where a character ends, never inside what one reads as ("ﬁ" is not "f").
    if (reader.offset < reader.form.length) return -1;
    const end = reader.skipIgnored();
    if (term.wordEnd && this.#wordAfter(cursor, end)) return -1;
    return end;
  }

  #wordBefore(cursor: Cursor, start: number): boolean {
    const code = cursor.at(start - 1);
    if (code >= 0xdc00 && code <= 0xdfff) {
      const high = cursor.at(start - 2);
      return high !== -1 && ASTRAL_WORD.test(String.fromCharCode(high, code));
    }
    return code !== -1 && this.#word[code] === 1;
  }

  #wordAfter(cursor: Cursor, index: number): boolean {
    const code = cursor.at(index);
    if (code >= 0xd800 && code <= 0xdbff) {
      const low = cursor.at(index + 1);
      return low !== -1 && ASTRAL_WORD.test(String.fromCharCode(code, low));
    }
    return code !== -1 && this.#word[code] === 1;
  }
}

/**
 * One pattern for the places a term can start, so that a text is searched
 * by the regular-expression engine rather than character by character:
 * every character whose folded form starts with a term's first token, and
 * any character outside the Basic Multilingual Plane (mathematical letters
 * such as "𝐏" read as Latin ones; they are rare enough to check one by one).
 */
function candidatePattern(first: ReadonlyMap<number, number>): RegExp {
  const index = firstUnits();
  const wordStart: number[] = [];
  const anywhere: number[] = [];
  for (const [folded, kinds] of first) (kinds & ANYWHERE ? anywhere : wordStart).push(...(index.get(folded) ?? []));
  const set = (codes: number[], extra = "") => `[${codes.map((code) => `\\u{${code.toString(16)}}`).join("")}${extra}]`;
  if (first.size === 0) return /(?!)/gu;
  const options = [];
  if (wordStart.length > 0) options.push(`(?<![\\p{L}\\p{N}_])${set(wordStart)}`);
  options.push(set(anywhere, "\\u{10000}-\\u{10FFFF}"));
  return new RegExp(options.join("|"), "gu");
}

function pairKey(first: number, second: number): number {
  return first * 65537 + second + 1;
}
