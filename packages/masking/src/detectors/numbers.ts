import {
  ANY,
  type CharTest,
  Cursor,
  type Detector,
  decideAt,
  earlier,
  firstPending,
  type Hit,
  isDigit,
  isUpper,
  isWord,
  matchHit,
} from "./scan.js";

/**
 * Detectors of numbers: cards, phone numbers, SSNs, IBANs. Each decides at
 * the start of a run of digits (or `+`, `(`, a country code), reading
 * through a Cursor so that a number cut off by the end of a stream's text
 * is undecided rather than judged on its first half. A number "chain" is
 * digit groups joined by single separators; a detector never matches part
 * of a longer chain, so a date, a version or a card is not taken for a
 * phone number.
 */

const SPACE = 32;
const DASH = 45;
const DOT = 46;
const PLUS = 43;
const OPEN_PAREN = 40;
const CLOSE_PAREN = 41;

const isSeparator: CharTest = (code) => code === SPACE || code === DASH || code === DOT;

/** Digit-run anchors: each run of digits (with a leading `+` or `(`) is one candidate. */
const NUMBER_START = /[+(]?[0-9]+/g;

/** The shared search: candidates at digit runs, decided left to right; undecided tails found too. */
abstract class NumberDetector implements Detector {
  abstract readonly name: string;
  readonly rank: number;
  readonly keepsLastDigits: boolean = false;
  readonly lookBehind: number = 2;
  abstract readonly window: number;
  readonly #cursor = new Cursor();
  readonly #anchor = new RegExp(NUMBER_START.source, "g");
  readonly #decide = (cursor: Cursor, start: number) => this.decide(cursor, start);

  constructor(rank: number) {
    this.rank = rank;
  }

  abstract decide(cursor: Cursor, start: number): Hit | undefined;

  /** The characters a match can start with. */
  startsWith(code: number): boolean {
    return isDigit(code);
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    const anchor = this.#anchor;
    anchor.lastIndex = from;
    let hit: Hit | undefined;
    for (let found = anchor.exec(text); found !== null; found = anchor.exec(text)) {
      const start = found.index;
      // `+1` and `(415` are candidates at the sign and at the digits.
      hit = this.startsWith(text.charCodeAt(start)) ? decideAt(cursor, start, this.#decide) : undefined;
      if (hit === undefined && start + 1 < text.length && !isDigit(text.charCodeAt(start))) {
        hit = decideAt(cursor, start + 1, this.#decide);
      }
      if (hit !== undefined) break;
    }
    if (final) return hit;
    // A trailing `+` or `(` has no digit yet for the anchor to find.
    return earlier(
      hit,
      firstPending(cursor, from, hit?.start ?? text.length, 2, ANY, (code) => this.startsWith(code), this.#decide),
    );
  }
}

function luhn(digits: readonly number[], count: number): boolean {
  let sum = 0;
  for (let index = count - 1, double = false; index >= 0; index--, double = !double) {
    let digit = digits[index] ?? 0;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/**
 * Group layouts of a card number: one run, 4-4-4-…-(1..4), or 4-6-(4|5)
 * (Amex, Diners). `end`: the groups so far can end a number; `more`: another
 * group may follow.
 */
function cardLayout(groups: readonly number[]): { end: boolean; more: boolean } {
  const count = groups.length;
  const last = groups[count - 1] ?? 0;
  if (groups.slice(0, -1).every((length) => length === 4) && (count === 1 || last <= 4)) {
    return { end: true, more: last === 4 };
  }
  if (groups[0] === 4 && groups[1] === 6) {
    if (count === 2) return { end: false, more: true };
    if (count === 3) return { end: last === 4 || last === 5, more: false };
  }
  return { end: false, more: false };
}

/**
 * CREDIT_CARD: 13-19 digits, either one run or in groups (4-4-4-4…, 4-6-5)
 * separated by single spaces or dashes (the same one throughout), that pass
 * the Luhn check. Not preceded by a letter or digit. When a group ends
 * several possible numbers (`4111 1111 1111 1111 2024`), the longest that
 * passes Luhn is the card. A Luhn-invalid number is left alone, and so are
 * the digits of an IBAN-shaped chain (see inIbanChain).
 */
export class CardDetector extends NumberDetector {
  readonly name = "CREDIT_CARD";
  override readonly keepsLastDigits = true;
  override readonly lookBehind = IBAN_LOOK_BEHIND;
  readonly window = 40;

  decide(cursor: Cursor, start: number): Hit | undefined {
    if (isWord(cursor.at(start - 1)) || !isDigit(cursor.at(start))) return undefined;
    if (inIbanChain(cursor, start)) return undefined;
    const digits: number[] = [];
    const groups: number[] = [];
    let separator = -1;
    let best = -1;
    let index = start;
    for (;;) {
      const groupStart = index;
      let code = cursor.at(index);
      while (isDigit(code)) {
        digits.push(code - 48);
        if (digits.length > 19) return best === -1 ? undefined : matchHit(start, best);
        index++;
        code = cursor.at(index);
      }
      groups.push(index - groupStart);
      // A letter glued to the digits: no card ends here, and the chain ends.
      if (isWord(code)) break;
      const layout = cardLayout(groups);
      if (layout.end && digits.length >= 13 && luhn(digits, digits.length)) best = index;
      if (!layout.more || digits.length >= 19) break;
      if (!((code === SPACE || code === DASH) && (separator === -1 || code === separator))) break;
      if (!isDigit(cursor.at(index + 1))) break;
      separator = code;
      index++;
    }
    return best === -1 ? undefined : matchHit(start, best);
  }
}

/**
 * PHONE, in three forms, each a whole number (not preceded by a letter,
 * digit, `+`, `.` or `-`; not followed by a letter or digit, nor continued
 * by its own separator and more digits):
 *
 * - E.164: `+` and 8-15 digits in groups separated by one of ` `, `-`, `.`,
 *   `(`, `)`, ` (`, `) ` and similar (`+1 (415) 555-0100`, `+44 (0)20 7946 0958`);
 * - North American: `(415) 555-0100`, `415-555-0100`, `415.555.0100`,
 *   `415 555 0100`, optionally after `1 ` or `1-`; the area code starts
 *   with 2-9 and the two separators after the parenthesis are the same;
 * - trunk-prefixed national numbers: `0` plus 1-4 digits, then 1-4 more
 *   groups of 2-8 digits with the same separator, 9-12 digits in all
 *   (`020 7946 0958`, `030 12345678`, `01 23 45 67 89`).
 *
 * Dates (`2024-01-15`, `15.01.2024`: 8 digits), versions and plain digit
 * runs match none of these, nor do the digits of an IBAN-shaped chain.
 */
export class PhoneDetector extends NumberDetector {
  readonly name = "PHONE";
  override readonly keepsLastDigits = true;
  override readonly lookBehind = IBAN_LOOK_BEHIND;
  readonly window = 48;

  override startsWith(code: number): boolean {
    return isDigit(code) || code === PLUS || code === OPEN_PAREN;
  }

  decide(cursor: Cursor, start: number): Hit | undefined {
    const before = cursor.at(start - 1);
    if (isWord(before) || before === PLUS || before === DOT || before === DASH) return undefined;
    if (inIbanChain(cursor, start)) return undefined;
    const first = cursor.at(start);
    if (first === PLUS) return this.#international(cursor, start);
    if (first === 48) return this.#trunk(cursor, start);
    if (first === OPEN_PAREN || isDigit(first)) return this.#northAmerican(cursor, start);
    return undefined;
  }

  /** The number ends at `end`: no letter or digit glued to it, and not continued with its own separator. */
  #endsAt(cursor: Cursor, end: number, separator: number): boolean {
    const code = cursor.at(end);
    if (isWord(code)) return false;
    return !(code === separator && isDigit(cursor.at(end + 1)));
  }

  #international(cursor: Cursor, start: number): Hit | undefined {
    let index = start + 1;
    let digits = 0;
    if (!isDigit(cursor.at(index))) return undefined;
    for (;;) {
      while (isDigit(cursor.at(index))) {
        if (++digits > 15) return undefined;
        index++;
      }
      const gap = separatorLength(cursor, index);
      if (gap === 0) break;
      index += gap;
    }
    if (digits < 8 || isWord(cursor.at(index))) return undefined;
    return matchHit(start, index);
  }

  #northAmerican(cursor: Cursor, start: number): Hit | undefined {
    let index = start;
    if (cursor.at(index) === 49) {
      const gap = cursor.at(index + 1);
      if (gap !== SPACE && gap !== DASH && gap !== DOT) return undefined;
      index += 2;
    }
    let separator: number;
    if (cursor.at(index) === OPEN_PAREN) {
      if (!digitsAt(cursor, index + 1, 3, true) || cursor.at(index + 4) !== CLOSE_PAREN) return undefined;
      index += 5;
      if (cursor.at(index) === SPACE) index++;
      if (!digitsAt(cursor, index, 3, false)) return undefined;
      index += 3;
      separator = cursor.at(index);
      if (!isSeparator(separator)) return undefined;
    } else {
      if (!digitsAt(cursor, index, 3, true)) return undefined;
      index += 3;
      separator = cursor.at(index);
      if (!isSeparator(separator)) return undefined;
      if (!digitsAt(cursor, index + 1, 3, false)) return undefined;
      index += 4;
      if (cursor.at(index) !== separator) return undefined;
    }
    if (!digitsAt(cursor, index + 1, 4, false)) return undefined;
    index += 5;
    if (!this.#endsAt(cursor, index, separator)) return undefined;
    return matchHit(start, index);
  }

  #trunk(cursor: Cursor, start: number): Hit | undefined {
    let index = start;
    let digits = 0;
    let groups = 0;
    let separator = -1;
    for (;;) {
      const groupStart = index;
      while (isDigit(cursor.at(index))) {
        if (++digits > 12) return undefined;
        index++;
      }
      const length = index - groupStart;
      if (groups === 0 ? length < 2 || length > 5 : length < 2 || length > 8) return undefined;
      // `00` starts an international number, never an area code.
      if (groups === 0 && cursor.at(start + 1) === 48) return undefined;
      groups++;
      const code = cursor.at(index);
      if (!isSeparator(code) || (separator !== -1 && code !== separator) || !isDigit(cursor.at(index + 1))) break;
      separator = code;
      index++;
    }
    if (groups < 2 || digits < 9 || !this.#endsAt(cursor, index, separator)) return undefined;
    return matchHit(start, index);
  }
}

/** `count` digits at `start`; the first one 2-9 when `area`. */
function digitsAt(cursor: Cursor, start: number, count: number, area: boolean): boolean {
  for (let index = 0; index < count; index++) {
    const code = cursor.at(start + index);
    if (!isDigit(code) || (area && index === 0 && code < 50)) return false;
  }
  return true;
}

/** Length of an E.164 group separator at `index` that a digit follows, else 0. */
function separatorLength(cursor: Cursor, index: number): number {
  const first = cursor.at(index);
  if (first === OPEN_PAREN) return isDigit(cursor.at(index + 1)) ? 1 : 0;
  if (isSeparator(first) || first === CLOSE_PAREN) {
    const second = cursor.at(index + 1);
    if (isDigit(second)) return 1;
    const pair = first === CLOSE_PAREN ? isSeparator(second) : first === SPACE && second === OPEN_PAREN;
    if (pair && isDigit(cursor.at(index + 2))) return 2;
  }
  return 0;
}

/** Area numbers never issued: 000, 666, 900-999. */
function validSsn(area: number, group: number, serial: number): boolean {
  return area !== 0 && area !== 666 && area < 900 && group !== 0 && serial !== 0;
}

/**
 * US_SSN: `AAA-GG-SSSS` or `AAA GG SSSS` (one separator throughout), not
 * part of a longer chain, without the never-issued area numbers 000, 666
 * and 900-999, group 00 or serial 0000.
 */
export class SsnDetector extends NumberDetector {
  readonly name = "US_SSN";
  readonly window = 16;

  decide(cursor: Cursor, start: number): Hit | undefined {
    if (isWord(cursor.at(start - 1))) return undefined;
    let value = 0;
    for (let offset = 0; offset < 11; offset++) {
      const code = cursor.at(start + offset);
      if (offset === 3) {
        if (code !== DASH && code !== SPACE) return undefined;
      } else if (offset === 6) {
        if (code !== cursor.at(start + 3)) return undefined;
      } else if (isDigit(code)) {
        value = value * 10 + code - 48;
      } else {
        return undefined;
      }
    }
    const separator = cursor.at(start + 3);
    // Not the tail of a longer chain such as `1-123-45-6789`.
    if (cursor.at(start - 1) === separator && isDigit(cursor.at(start - 2))) return undefined;
    const after = cursor.at(start + 11);
    if (isWord(after) || (after === separator && isDigit(cursor.at(start + 12)))) return undefined;
    if (!validSsn(Math.floor(value / 1e6), Math.floor(value / 1e4) % 100, value % 1e4)) return undefined;
    return matchHit(start, start + 11);
  }
}

const isIbanChar: CharTest = (code) => isUpper(code) || isDigit(code);

/** Characters before a number that inIbanChain reads: seven groups of four and their spaces, and one more. */
const IBAN_LOOK_BEHIND = 8 * 5 + 1;

/**
 * Whether the number at `start` continues an IBAN-shaped chain that began
 * before it: a country code and two check digits (not glued to a word),
 * then groups of four upper-case letters or digits separated by single
 * spaces, the number starting one of them, the chain reaching at least 15
 * characters, at most 34, and not glued to a word at that group's end
 * (the IBAN detector's grouped form, whatever the mod-97 check says).
 *
 * Such digits are the bank and account codes of one identifier. When the
 * check digits are wrong, the chain is not an IBAN (a typo, an example), and
 * a run of its digits that passes Luhn by chance (one in ten) is not a card
 * either: the chain is left alone whole, as a Luhn-invalid number is, rather
 * than masked in part under a wrong label.
 */
function inIbanChain(cursor: Cursor, start: number): boolean {
  let characters = 0;
  let group = start;
  // Back over whole groups to the country code.
  for (;;) {
    if (cursor.at(group - 1) !== SPACE || characters === 32) return false;
    group -= 5;
    characters += 4;
    for (let offset = 0; offset < 4; offset++) {
      if (!isIbanChar(cursor.at(group + offset))) return false;
    }
    const prefix =
      isUpper(cursor.at(group)) &&
      isUpper(cursor.at(group + 1)) &&
      isDigit(cursor.at(group + 2)) &&
      isDigit(cursor.at(group + 3));
    if (prefix && !isWord(cursor.at(group - 1))) break;
  }
  // On over the groups from the number.
  for (let index = start; ; index++) {
    let length = 0;
    while (isIbanChar(cursor.at(index))) {
      if (++length > 4) return false;
      index++;
    }
    characters += length;
    if (characters > 34 || isWord(cursor.at(index))) return false;
    if (characters >= 15) return true;
    if (length < 4 || cursor.at(index) !== SPACE || !isIbanChar(cursor.at(index + 1))) return false;
  }
}
const isIbanOrSpace: CharTest = (code) => isIbanChar(code) || code === SPACE;

/** ISO 13616 check: the rearranged number, letters as 10-35, mod 97 is 1. */
function ibanValid(text: string, start: number, end: number): boolean {
  let remainder = 0;
  const add = (code: number) => {
    if (isDigit(code)) remainder = (remainder * 10 + code - 48) % 97;
    else remainder = (remainder * 100 + code - 55) % 97;
  };
  for (let index = start + 4; index < end; index++) {
    const code = text.charCodeAt(index);
    if (code !== SPACE) add(code);
  }
  for (let index = start; index < start + 4; index++) add(text.charCodeAt(index));
  return remainder === 1;
}

const IBAN_START = /[A-Z]{2}[0-9]{2}/g;

/**
 * IBAN: a country code, two check digits and 11-30 letters or digits
 * (upper case), either in one run or in groups of four separated by single
 * spaces (the last group 1-4), with a correct mod-97 check. Not glued to
 * letters or digits on either side. In grouped form, the longest valid
 * number ending at a group end wins.
 */
export class IbanDetector implements Detector {
  readonly name = "IBAN";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window = 48;
  readonly #cursor = new Cursor();
  readonly #anchor = new RegExp(IBAN_START.source, "g");
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number) {
    this.rank = rank;
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    const anchor = this.#anchor;
    let hit: Hit | undefined;
    for (let search = from; ; ) {
      anchor.lastIndex = search;
      const found = anchor.exec(text);
      if (found === null) break;
      hit = decideAt(cursor, found.index, this.#decide);
      if (hit !== undefined) break;
      search = found.index + 1;
    }
    if (final) return hit;
    return earlier(hit, firstPending(cursor, from, hit?.start ?? text.length, 4, isIbanOrSpace, isUpper, this.#decide));
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    if (isWord(cursor.at(start - 1))) return undefined;
    if (!isUpper(cursor.at(start)) || !isUpper(cursor.at(start + 1))) return undefined;
    if (!isDigit(cursor.at(start + 2)) || !isDigit(cursor.at(start + 3))) return undefined;
    let index = start + 4;
    if (cursor.at(index) !== SPACE) {
      // One run: all of it is the number.
      while (isIbanChar(cursor.at(index))) {
        if (index - start >= 34) return undefined;
        index++;
      }
      const length = index - start;
      if (length < 15 || isWord(cursor.at(index))) return undefined;
      return ibanValid(cursor.text, start, index) ? matchHit(start, index) : undefined;
    }
    let characters = 4;
    let best = -1;
    for (;;) {
      if (cursor.at(index) !== SPACE || !isIbanChar(cursor.at(index + 1))) break;
      index++;
      let length = 0;
      while (isIbanChar(cursor.at(index))) {
        if (++length > 4) return best === -1 ? undefined : matchHit(start, best);
        index++;
      }
      characters += length;
      if (characters > 34) break;
      const glued = isWord(cursor.at(index));
      if (!glued && characters >= 15 && ibanValid(cursor.text, start, index)) best = index;
      if (glued || length < 4) break;
    }
    return best === -1 ? undefined : matchHit(start, best);
  }
}
