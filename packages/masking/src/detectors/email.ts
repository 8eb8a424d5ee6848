import {
  type CharTest,
  Cursor,
  type Detector,
  decideAt,
  earlier,
  extendedHit,
  firstPending,
  type Hit,
  isAlnum,
  isLetter,
  runEnd,
} from "./scan.js";

const AT = 64;
const DOT = 46;

/** Local-part characters: letters, digits and `._%+-` (the dot never first, last or doubled). */
const isLocal: CharTest = (code) =>
  isAlnum(code) || code === 46 || code === 95 || code === 37 || code === 43 || code === 45;
const isLocalStart: CharTest = (code) => code !== DOT && isLocal(code);
const isLocalOrAt: CharTest = (code) => code === AT || isLocal(code);
const isLabel: CharTest = (code) => isAlnum(code) || code === 45;
const isDot: CharTest = (code) => code === DOT;
const resumeDomain = (text: string, from: number, final: boolean) => runEnd(text, from, final, isLabel, isDot);

/**
 * EMAIL: `local@label.label…`. The local part is 1 to `window - 8`
 * characters of letters, digits and `._%+-` (not starting or ending with a
 * dot, no two dots in a row); the domain is labels of letters, digits and
 * `-` joined by single dots, and it counts once a label after the first is
 * complete and made of at least two letters (a TLD: `example.com`, not
 * `1.2` or `localhost`). The match then runs to the end of the domain, so
 * `a@b.example.co.uk` is one match and a sentence's final dot is not part of
 * it. No word boundary is needed before the local part, so a local part
 * longer than the limit is masked from its last `window - 8` characters.
 *
 * Bounded decision: when `window` characters from the start have been read
 * after the `@` without a decision, the candidate is masked anyway (to the
 * end of its domain): an address-like run that long is not released on a
 * guess, and a stream never holds more than `window` characters for it.
 */
export class EmailDetector implements Detector {
  readonly name = "EMAIL";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 0;
  readonly window: number;
  readonly #localMax: number;
  readonly #cursor = new Cursor();
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number, window: number) {
    this.rank = rank;
    this.window = window;
    this.#localMax = window - 8;
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    let hit: Hit | undefined;
    for (let at = text.indexOf("@", from); at !== -1; at = text.indexOf("@", at + 1)) {
      const start = this.#localStart(text, from, at);
      if (start === -1) continue;
      hit = decideAt(cursor, start, this.#decide);
      if (hit !== undefined) break;
    }
    if (final) return hit;
    // Before any `@`, a trailing word is undecided: it may be a local part.
    return earlier(
      hit,
      firstPending(cursor, from, hit?.start ?? text.length, this.#localMax, isLocalOrAt, isLocalStart, this.#decide),
    );
  }

  /**
   * The leftmost start of a valid local part ending at `at`: the earliest
   * position from which the characters up to `at` form one, or -1.
   */
  #localStart(text: string, from: number, at: number): number {
    if (at === 0 || text.charCodeAt(at - 1) === DOT) return -1;
    let start = at;
    const limit = Math.max(from, at - this.#localMax);
    while (start > limit) {
      const code = text.charCodeAt(start - 1);
      if (!isLocal(code) || (code === DOT && text.charCodeAt(start) === DOT)) break;
      start--;
    }
    while (start < at && text.charCodeAt(start) === DOT) start++;
    return start < at ? start : -1;
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    if (!isLocalStart(cursor.at(start))) return undefined;
    let index = start;
    let previous = -1;
    for (;;) {
      const code = cursor.at(index);
      if (code === AT) break;
      if (index - start >= this.#localMax || !isLocal(code) || (code === DOT && previous === DOT)) return undefined;
      previous = code;
      index++;
    }
    if (previous === DOT) return undefined;
    const limit = start + this.window;
    index++;
    // Domain labels; decided at the first complete all-letter label after the first.
    for (let labels = 0; ; labels++) {
      const labelStart = index;
      let letters = true;
      let code: number;
      for (;;) {
        if (index >= limit) return this.#commit(cursor, start, index);
        code = cursor.at(index);
        if (!isLabel(code)) break;
        if (!isLetter(code)) letters = false;
        index++;
      }
      if (index === labelStart) return undefined;
      if (labels >= 1 && letters && index - labelStart >= 2) {
        return extendedHit(cursor.text, start, index, cursor.final, resumeDomain);
      }
      if (code !== DOT) return undefined;
      if (index + 1 >= limit) return this.#commit(cursor, start, index);
      if (!isLabel(cursor.at(index + 1))) return undefined;
      index++;
    }
  }

  /** Undecided after `window` characters: masked to the end of the domain-like run. */
  #commit(cursor: Cursor, start: number, index: number): Hit {
    return extendedHit(cursor.text, start, index, cursor.final, resumeDomain);
  }
}
