/**
 * What every detector shares: the shape of its answers, the cursor that
 * makes streaming and whole-text decisions identical, and small character
 * tests.
 *
 * A detector answers one question: "from position `from`, what is the first
 * thing you see?" Its answer is one of
 *
 * - a **match**: a value to mask, fully known;
 * - an **open** match: a value to mask whose start and replacement are
 *   known but which may go on (a long token, a private-key block); the
 *   `resume` function finds its end as more text arrives;
 * - **pending**: from here on, the answer depends on text that has not
 *   arrived yet, so nothing from here may be released.
 *
 * Whole-text masking asks with `final` set: the text ends where it ends, and
 * there are no pending or open answers.
 */

type HitKind = "match" | "open" | "pending";

/**
 * Continues an open match over `text` from `from` (the end known so far):
 * returns the match's end when it is known, otherwise `-1 - safe`, where
 * everything before `safe` belongs to the match and `safe` is where to go on
 * when more text has arrived.
 */
export type Resume = (text: string, from: number, final: boolean) => number;

export interface Hit {
  kind: HitKind;
  /**
   * Where the match (or the undecided text) begins: the replaced value,
   * which is also what overlaps are judged by (an assignment's match is its
   * value; `password=` before it is context, never replaced).
   */
  start: number;
  /** Where the match ends; for an open match, the end known so far. */
  end: number;
  resume?: Resume;
  /** Count key and label when not the detector's name (a deny-list's name). */
  name?: string;
}

export interface Detector {
  /** Count key and label: the entity or the custom detector's or deny-list's name. */
  readonly name: string;
  /** Breaks ties between overlapping matches of the same tier and length at the same start: lower wins. */
  readonly rank: number;
  /**
   * A match cut short before its end is still a match of this detector (an
   * assignment's value: `password=abc` is as much a secret as
   * `password=abcdef`). When such a match loses to one that starts inside
   * its value, the engine keeps the part before the winner (see stream.ts).
   */
  readonly cuttable?: boolean;
  /** `partial` style keeps this entity's last four digits (cards, phones). */
  readonly keepsLastDigits: boolean;
  /** Characters before a candidate the detector looks at (left context a stream must keep). */
  readonly lookBehind: number;
  /** The most characters a decision can need from a candidate's start: a stream's hold-back bound. */
  readonly window: number;
  /** The first match, open match or undecided position at or after `from` (see above). */
  next(text: string, from: number, final: boolean): Hit | undefined;
}

export function matchHit(start: number, end: number): Hit {
  return { kind: "match", start, end };
}

export function pendingHit(start: number): Hit {
  return { kind: "pending", start, end: start };
}

/**
 * A match whose end is what `extent` (a `Resume` run at `from`) says: a
 * match when it ends within the text, an open match when it may go on.
 */
export function extendedHit(text: string, start: number, from: number, final: boolean, resume: Resume): Hit {
  const end = resume(text, from, final);
  if (end >= 0) return matchHit(start, end);
  return { kind: "open", start, end: -1 - end, resume };
}

/** Thrown by `Cursor.at` when a decision needs a character that has not arrived. */
const NEED_MORE = Object.freeze({ needMore: true });

/**
 * Reads characters for a detector's decision. Past the end of a finished
 * text it returns -1; past the end of a stream's text so far it throws
 * NEED_MORE, so the same decision code either decides exactly as it would
 * on the whole text or reports that it cannot decide yet. This is what makes
 * streamed and whole-text masking agree by construction.
 */
export class Cursor {
  text = "";
  final = true;

  at(index: number): number {
    if (index < this.text.length) return index < 0 ? -1 : this.text.charCodeAt(index);
    if (this.final) return -1;
    throw NEED_MORE;
  }
}

/** Runs `decide` at `start`; a NEED_MORE becomes a pending hit there. */
export function decideAt(cursor: Cursor, start: number, decide: (cursor: Cursor, start: number) => Hit | undefined) {
  try {
    return decide(cursor, start);
  } catch (error) {
    if (error === NEED_MORE) return pendingHit(start);
    throw error;
  }
}

/**
 * The first position in [from, limit) where `decide` cannot decide yet.
 * Only the last `window` characters can be undecided, and only within the
 * trailing run of `alphabet` characters (an undecided start reads every
 * character up to the end); of those, only positions `candidate` accepts
 * are tried.
 */
export function firstPending(
  cursor: Cursor,
  from: number,
  limit: number,
  window: number,
  alphabet: CharTest,
  candidate: (code: number, before: number) => boolean,
  decide: (cursor: Cursor, start: number) => Hit | undefined,
): Hit | undefined {
  const text = cursor.text;
  const floor = Math.max(from, text.length - window);
  let start = text.length;
  while (start > floor && alphabet(text.charCodeAt(start - 1))) start--;
  for (; start < limit; start++) {
    if (!candidate(text.charCodeAt(start), start > 0 ? text.charCodeAt(start - 1) : -1)) continue;
    try {
      decide(cursor, start);
    } catch (error) {
      if (error === NEED_MORE) return pendingHit(start);
      throw error;
    }
  }
  return undefined;
}

/** The earlier of a hit and a pending position before it (which wins ties: it blocks the hit). */
export function earlier(hit: Hit | undefined, pending: Hit | undefined): Hit | undefined {
  if (pending === undefined) return hit;
  if (hit === undefined || pending.start <= hit.start) return pending;
  return hit;
}

/**
 * A run of `core` characters that a `joiner` may continue when a core
 * character follows it (the dots of a domain or of a JWT, but not a
 * sentence's final dot). `from` follows a core character. Returns the
 * run's end, or `-1 - safe` while it may go on.
 */
export function runEnd(text: string, from: number, final: boolean, core: CharTest, joiner: CharTest = NONE): number {
  const end = text.length;
  let index = from;
  for (;;) {
    if (index >= end) return final ? end : -1 - end;
    const code = text.charCodeAt(index);
    if (core(code)) {
      index++;
      continue;
    }
    if (joiner(code)) {
      if (index + 1 >= end) return final ? index : -1 - index;
      if (core(text.charCodeAt(index + 1))) {
        index += 2;
        continue;
      }
    }
    return index;
  }
}

export type CharTest = (code: number) => boolean;

const NONE: CharTest = () => false;
export const ANY: CharTest = () => true;
export const isDigit: CharTest = (code) => code >= 48 && code <= 57;
export const isUpper: CharTest = (code) => code >= 65 && code <= 90;
const isLower: CharTest = (code) => code >= 97 && code <= 122;
export const isLetter: CharTest = (code) => isUpper(code) || isLower(code);
export const isAlnum: CharTest = (code) => isDigit(code) || isLetter(code);
/** ASCII letters, digits and `_`: what makes a number or token part of a longer word. */
export const isWord: CharTest = (code) => isAlnum(code) || code === 95;
export const isHex: CharTest = (code) => isDigit(code) || (code >= 65 && code <= 70) || (code >= 97 && code <= 102);

/** Whether `text` holds `literal` at `start`, read through the cursor (so a partial literal at the end is undecided). */
export function literalAt(cursor: Cursor, start: number, literal: string): boolean {
  for (let index = 0; index < literal.length; index++) {
    if (cursor.at(start + index) !== literal.charCodeAt(index)) return false;
  }
  return true;
}
