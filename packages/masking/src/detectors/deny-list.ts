import { Cursor, type Detector, decideAt, type Hit, matchHit } from "./scan.js";

/** First-character kinds: terms starting with it must start a word, or may start anywhere. */
const WORD_START = 1;
const ANYWHERE = 2;

/** A deny-list term's token for "a run of white space". */
const SPACE_RUN = -1;
/** White space in a term matches 1 to this many white-space characters in the text. */
export const MAX_SPACE_RUN = 8;

let foldTable: Uint16Array | undefined;
let unfoldTable: Map<number, number[]> | undefined;
let wordTable: Uint8Array | undefined;

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

/** Every code unit that folds to a given one (`k` ← `K`, the Kelvin sign). */
function unfolds(): Map<number, number[]> {
  if (unfoldTable === undefined) {
    unfoldTable = new Map();
    const fold = folds();
    for (let code = 0; code < 65536; code++) {
      const folded = fold[code] ?? code;
      if (folded === code) continue;
      const units = unfoldTable.get(folded);
      if (units === undefined) unfoldTable.set(folded, [code]);
      else units.push(code);
    }
  }
  return unfoldTable;
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
const isSpace = (code: number) =>
  code === 32 ||
  (code >= 9 && code <= 13) ||
  code === 0xa0 ||
  code === 0x2028 ||
  code === 0x2029 ||
  code === 0x3000 ||
  (code >= 0x2000 && code <= 0x200a) ||
  code === 0x1680 ||
  code === 0x202f ||
  code === 0x205f ||
  code === 0xfeff;

interface Term {
  /** Folded code units, SPACE_RUN for white space. */
  tokens: number[];
  /** Which list (index in the profile): its name labels the match, and the first list wins ties. */
  list: number;
  /** The term starts (ends) with a letter, digit or `_`, so the text must not continue the word there. */
  wordStart: boolean;
  wordEnd: boolean;
}

/**
 * All deny-lists of a profile in one detector: literal terms matched
 * case-insensitively (per UTF-16 unit, by its lower case), white space in
 * a term matching 1-8 white-space characters, and whole words only: a term
 * that starts (ends) with a letter, digit or `_` must not have one before
 * (after) it in the text. At one position the longest matching term wins,
 * then the earlier list. Matches carry the list's name.
 *
 * Candidates are found by one regular expression for the first characters
 * of all terms (at word starts where the terms need one), and checked
 * against the terms in a bucket keyed by their first two tokens, so
 * thousands of terms cost about what a few do.
 */
export class DenyListDetector implements Detector {
  readonly name: string;
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window: number;
  readonly #names: readonly string[];
  /** By folded first unit (or minus the code point of an astral first character): WORD_START and/or ANYWHERE. */
  readonly #first = new Map<number, number>();
  /** Where a term can start: its first character in any case, at a word start if every such term needs one. */
  readonly #candidates: RegExp;
  /** One-token terms by their token; longer ones by their first two tokens. */
  readonly #single = new Map<number, Term[]>();
  readonly #pairs = new Map<number, Term[]>();
  readonly #fold = folds();
  readonly #word = words();
  readonly #cursor = new Cursor();
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number, lists: readonly { name: string; terms: readonly string[] }[]) {
    this.rank = rank;
    this.#names = lists.map((list) => list.name);
    this.name = this.#names[0] ?? "DENY_LIST";
    let longest = 0;
    for (const [list, { terms }] of lists.entries()) {
      for (const raw of new Set(terms)) {
        const term = this.#term(raw.trim(), list);
        if (term === undefined) continue;
        const [first = 0, second] = term.tokens;
        // A term starting with a surrogate pair is found by its code point: the search runs in Unicode mode.
        const point = raw.trim().codePointAt(0) ?? 0;
        const key = point > 0xffff ? -point : first;
        this.#first.set(key, (this.#first.get(key) ?? 0) | (term.wordStart ? WORD_START : ANYWHERE));
        const bucket = second === undefined ? this.#single : this.#pairs;
        const bucketKey = second === undefined ? first : pairKey(first, second);
        const terms = bucket.get(bucketKey);
        if (terms === undefined) bucket.set(bucketKey, [term]);
        else terms.push(term);
        // A white-space run reads one character past its longest form.
        const reach = term.tokens.reduce((sum, token) => sum + (token === SPACE_RUN ? MAX_SPACE_RUN + 1 : 1), 0);
        longest = Math.max(longest, reach);
      }
    }
    // The term, and the character (perhaps a surrogate pair) after it that says whether a word goes on.
    this.window = Math.max(2, longest) + 2;
    this.#candidates = candidatePattern(this.#first);
  }

  /** Whether any list has a term. */
  get empty(): boolean {
    return this.#single.size === 0 && this.#pairs.size === 0;
  }

  #term(text: string, list: number): Term | undefined {
    if (text === "") return undefined;
    const tokens: number[] = [];
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      if (isSpace(code)) {
        if (tokens.at(-1) !== SPACE_RUN) tokens.push(SPACE_RUN);
      } else {
        tokens.push(this.#fold[code] ?? code);
      }
    }
    return {
      tokens,
      list,
      wordStart: wordAt(text, 0, this.#word),
      wordEnd: wordAt(text, lastCharStart(text), this.#word),
    };
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
    const first = this.#fold[cursor.at(start)] ?? 0;
    const afterFirst = cursor.at(start + 1);
    const second = isSpace(afterFirst) ? SPACE_RUN : (this.#fold[afterFirst] ?? afterFirst);
    const longer = afterFirst === -1 ? undefined : this.#pairs.get(pairKey(first, second));
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
    let index = start;
    for (const token of term.tokens) {
      if (token === SPACE_RUN) {
        let run = 0;
        while (isSpace(cursor.at(index))) {
          if (++run > MAX_SPACE_RUN) return -1;
          index++;
        }
        if (run === 0) return -1;
      } else {
        const code = cursor.at(index);
        if (code === -1 || (this.#fold[code] ?? code) !== token) return -1;
        index++;
      }
    }
    if (term.wordEnd && this.#wordAfter(cursor, index)) return -1;
    return index;
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
 * by the regular-expression engine rather than character by character.
 */
function candidatePattern(first: ReadonlyMap<number, number>): RegExp {
  const unfold = unfolds();
  const units = (folded: number) => (folded < 0 ? [-folded] : [folded, ...(unfold.get(folded) ?? [])]);
  const wordStart: number[] = [];
  const anywhere: number[] = [];
  for (const [folded, kinds] of first) (kinds & ANYWHERE ? anywhere : wordStart).push(...units(folded));
  const set = (codes: number[]) => `[${codes.map((code) => `\\u{${code.toString(16)}}`).join("")}]`;
  const options = [];
  if (wordStart.length > 0) options.push(`(?<![\\p{L}\\p{N}_])${set(wordStart)}`);
  if (anywhere.length > 0) options.push(set(anywhere));
  return new RegExp(options.length > 0 ? options.join("|") : "(?!)", "gu");
}

function pairKey(first: number, second: number): number {
  return first * 65537 + second + 1;
}

/** Index of the last character (a surrogate pair counts as one). */
function lastCharStart(text: string): number {
  const last = text.length - 1;
  const code = text.charCodeAt(last);
  return code >= 0xdc00 && code <= 0xdfff && last > 0 ? last - 1 : last;
}

function wordAt(text: string, index: number, table: Uint8Array): boolean {
  const code = text.charCodeAt(index);
  if (code >= 0xd800 && code <= 0xdfff) return ASTRAL_WORD.test(String.fromCodePoint(text.codePointAt(index) ?? 0));
  return table[code] === 1;
}
