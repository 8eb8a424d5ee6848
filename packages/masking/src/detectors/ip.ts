import {
  type CharTest,
  Cursor,
  type Detector,
  decideAt,
  earlier,
  firstPending,
  type Hit,
  isDigit,
  isHex,
  isWord,
  matchHit,
} from "./scan.js";

const DOT = 46;
const COLON = 58;

const isV6Char: CharTest = (code) => isHex(code) || code === COLON || code === DOT;

/** Four octets 0-255 (no leading zeros) at `start`; the index after them, or -1. */
function ipv4At(cursor: Cursor, start: number): number {
  let index = start;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (cursor.at(index) !== DOT) return -1;
      index++;
    }
    const octetStart = index;
    let value = 0;
    while (isDigit(cursor.at(index))) {
      if (index - octetStart === 3) return -1;
      value = value * 10 + cursor.at(index) - 48;
      index++;
    }
    const length = index - octetStart;
    if (length === 0 || value > 255 || (length > 1 && cursor.at(octetStart) === 48)) return -1;
  }
  return index;
}

/**
 * IP_ADDRESS, IPv4: four octets 0-255 without leading zeros, not preceded
 * by a letter, digit, `_` or `.`, not followed by a letter or by `.` and a
 * digit. So `1.2.3` and `1.2.3.4.5` (versions) are not addresses, and
 * `10.0.0.1.` at the end of a sentence is.
 */
export class Ipv4Detector implements Detector {
  readonly name = "IP_ADDRESS";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window = 20;
  readonly #cursor = new Cursor();
  readonly #anchor = /[0-9]+/g;
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number) {
    this.rank = rank;
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    const anchor = this.#anchor;
    anchor.lastIndex = from;
    for (let found = anchor.exec(text); found !== null; found = anchor.exec(text)) {
      const hit = decideAt(cursor, found.index, this.#decide);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    const before = cursor.at(start - 1);
    if (isWord(before) || before === DOT) return undefined;
    const end = ipv4At(cursor, start);
    if (end === -1) return undefined;
    const after = cursor.at(end);
    if (isWord(after) || (after === DOT && isDigit(cursor.at(end + 1)))) return undefined;
    return matchHit(start, end);
  }
}

/** Whether text[start, end) is an IPv6 address (a trailing embedded IPv4 allowed). */
function validIpv6(text: string, start: number, end: number): boolean {
  const address = text.slice(start, end);
  const halves = address.split("::");
  if (halves.length > 2) return false;
  let groups = 0;
  for (const [index, half] of halves.entries()) {
    if (half === "") continue;
    const parts = half.split(":");
    for (const [position, part] of parts.entries()) {
      const last = index === halves.length - 1 && position === parts.length - 1;
      if (last && part.includes(".")) {
        const cursor = new Cursor();
        cursor.text = part;
        if (ipv4At(cursor, 0) !== part.length) return false;
        groups += 2;
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
        groups++;
      } else {
        return false;
      }
    }
  }
  // Compressed forms need two explicit groups: `fe80::1` is an address, `a::b` in C++ is rarer than `::1`.
  return halves.length === 2 ? groups >= 2 && groups <= 7 : groups === 8;
}

/**
 * IP_ADDRESS, IPv6: eight groups of 1-4 hex digits, or fewer with one `::`
 * (at least two explicit groups, so `::1` and `std::` are not matched), an
 * embedded IPv4 allowed at the end. The run of hex digits, colons and dots
 * must not be glued to a letter or `_`, and is read whole (at most 45
 * characters): a trailing `:` or `.` of a sentence is left out, anything
 * else that does not parse means no address. Times (`10:30:00`) and MAC
 * addresses (six groups) are not addresses.
 */
export class Ipv6Detector implements Detector {
  readonly name = "IP_ADDRESS";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window = 48;
  readonly #cursor = new Cursor();
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number) {
    this.rank = rank;
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    let hit: Hit | undefined;
    for (let colon = text.indexOf(":", from); colon !== -1; colon = text.indexOf(":", colon + 1)) {
      // The address starts at most four hex digits before its first colon.
      let start = colon;
      while (start > from && colon - start < 4 && isHex(text.charCodeAt(start - 1))) start--;
      hit = decideAt(cursor, start, this.#decide);
      if (hit !== undefined) break;
    }
    if (final) return hit;
    // A trailing hex word may be the first group of an address.
    return earlier(
      hit,
      firstPending(
        cursor,
        from,
        hit?.start ?? text.length,
        46,
        isV6Char,
        (code, before) => isV6Char(code) && !isWord(before) && before !== COLON && before !== DOT,
        this.#decide,
      ),
    );
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    const before = cursor.at(start - 1);
    if (isWord(before) || before === COLON || before === DOT) return undefined;
    let index = start;
    while (isV6Char(cursor.at(index))) {
      if (index - start === 45) return undefined;
      index++;
    }
    if (isWord(cursor.at(index))) return undefined;
    const text = cursor.text;
    let end = index;
    if (text.charCodeAt(end - 1) === DOT) end--;
    if (text.charCodeAt(end - 1) === COLON && text.charCodeAt(end - 2) !== COLON) end--;
    if (end <= start || !validIpv6(text, start, end)) return undefined;
    return matchHit(start, end);
  }
}
