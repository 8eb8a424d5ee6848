import {
  ANY,
  type CharTest,
  Cursor,
  type Detector,
  decideAt,
  earlier,
  extendedHit,
  firstPending,
  type Hit,
  isLetter,
  isUpper,
  pendingHit,
  type Resume,
  runEnd,
} from "./scan.js";

/**
 * SECRET assignments: the value after a key word whose value is a secret
 * (`password=…`, `"token": "…"`, `Authorization: Bearer …`). The value is
 * masked to its very end, punctuation included: `password=hunter2!@#` must
 * not leave `!@#` behind, because a password is made of exactly such
 * characters. Where it ends:
 *
 * - unquoted: at the next white space (`password=a,b;c.` is all value);
 * - quoted (`"`, `'` or a backtick): at the closing quote, a backslash
 *   escaping the next character (`"abc\"def"` is one value), or at the end
 *   of the line;
 * - quoted inside a JSON string (`\"password\": \"…\"` in a raw request
 *   body): at the escaped closing quote `\"`, an escaped backslash and
 *   escaped quote (`\\\"`) being part of the value, or at the end of the
 *   enclosing string or line.
 *
 * The match is the value alone: the key word, quotes and separator before
 * it are context (read back from the value, `lookBehind`), never replaced,
 * and do not count when overlapping matches are compared. So a custom
 * pattern or an email that ends on the key word does not hide the value,
 * and `password: 4111 1111 1111 1111` is a card, not a one-word password
 * followed by twelve digits in clear. Recognising an assignment takes a
 * bounded look from the key word (quotes, separator, the value's first
 * character: `window`); the value itself is an open match of any length.
 */

const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const BACKSLASH = 92;
const EQUALS = 61;
const COLON = 58;
const GREATER = 62;

/**
 * Key words whose value is a secret, lower case, longest first. A key may
 * end a longer name (`DB_PASSWORD`, `aws_secret_access_key`,
 * `Proxy-Authorization`, `session_token`).
 */
const SECRET_KEYS = [
  "authorization",
  "client_secret",
  "refresh_token",
  "access_token",
  "private_key",
  "secret_key",
  "access_key",
  "auth_token",
  "passphrase",
  "password",
  "api_key",
  "api-key",
  "passwd",
  "apikey",
  "secret",
  "token",
  "pwd",
]
  .sort((a, b) => b.length - a.length)
  .map((key) => [...key].map((char) => char.charCodeAt(0)));

/**
 * HTTP authentication schemes (lower case): after one of them and white
 * space, the credential still belongs to an unquoted value
 * (`Authorization: Bearer abc` masks `Bearer abc`).
 */
const SCHEMES = new Set(["bearer", "basic", "digest", "token", "negotiate", "ntlm"]);
const LONGEST_SCHEME = Math.max(...[...SCHEMES].map((scheme) => scheme.length));

const KEY_FIRST = new Set(SECRET_KEYS.map((key) => key[0] ?? 0));
const KEY_LAST = new Set(SECRET_KEYS.map((key) => key.at(-1) ?? 0));
const LONGEST_KEY = Math.max(...SECRET_KEYS.map((key) => key.length));
/** Spaces or tabs allowed on each side of the separator. */
const MAX_SPACES = 8;
/** The most characters from a separator to its value: `=>`, spaces, `\"`. */
const SEPARATOR_REACH = 3 + MAX_SPACES + 2;
/** The most characters from a key word's start to its value: the key, `\"`, spaces, and the separator's reach. */
const KEY_REACH = LONGEST_KEY + 2 + MAX_SPACES + SEPARATOR_REACH;

function lower(code: number): number {
  return isUpper(code) ? code + 32 : code;
}

/** Whether `key` (lower case) is at `start`, in any case. */
function keyAt(key: readonly number[], start: number, at: (index: number) => number): boolean {
  for (let offset = 0; offset < key.length; offset++) {
    if (lower(at(start + offset)) !== key[offset]) return false;
  }
  return true;
}

const isQuote: CharTest = (code) => code === 34 || code === 39 || code === 96;
const isBlank: CharTest = (code) => code === SPACE || code === TAB;
/** White space, ASCII control characters and the end of a finished text (-1): what ends an unquoted value. */
const isWhite: CharTest = (code) =>
  code <= SPACE ||
  code === 127 ||
  code === 0x85 ||
  code === 0xa0 ||
  code === 0x1680 ||
  (code >= 0x2000 && code <= 0x200a) ||
  code === 0x2028 ||
  code === 0x2029 ||
  code === 0x202f ||
  code === 0x205f ||
  code === 0x3000 ||
  code === 0xfeff;
const isValueChar: CharTest = (code) => !isWhite(code);

/** An unquoted value: to the next white space. */
const resumeUnquoted: Resume = (text, from, final) => runEnd(text, from, final, isValueChar);

/**
 * An unquoted value that starts with an authentication scheme, from the
 * white space after the scheme: that white space, then the credential to
 * the next white space. Called again from a safe point, the character
 * before `from` tells which of the two it is in.
 */
const resumeAfterScheme: Resume = (text, from, final) => {
  let index = from;
  if (isBlank(text.charCodeAt(index - 1))) {
    while (index < text.length && isBlank(text.charCodeAt(index))) index++;
    if (index === text.length) return final ? index : -1 - index;
  }
  return resumeUnquoted(text, index, final);
};

/** A quoted value, from its first character: to the closing `quote` (a backslash escapes the next character) or the line's end. */
function quotedUntil(quote: number): Resume {
  return (text, from, final) => {
    for (let index = from; ; ) {
      if (index >= text.length) return final ? text.length : -1 - index;
      const code = text.charCodeAt(index);
      if (code === quote || code === LF || code === CR) return index;
      if (code !== BACKSLASH) {
        index++;
        continue;
      }
      if (index + 1 >= text.length) return final ? text.length : -1 - index;
      const next = text.charCodeAt(index + 1);
      if (next === LF || next === CR) return index + 1;
      index += 2;
    }
  };
}

/**
 * A value quoted with `\"` inside an enclosing string (JSON in JSON), from
 * its first character: the text is read as escape pairs, and the value ends
 * at an escaped quote that the decoded value does not escape itself, at the
 * enclosing string's own (unescaped) quote, or at the line's end. Safe
 * points are left only where no decoded backslash is pending.
 */
function escapedUntil(quote: number): Resume {
  return (text, from, final) => {
    let escaping = false;
    let safe = from;
    for (let index = from; ; ) {
      if (!escaping) safe = index;
      if (index >= text.length) return final ? text.length : -1 - safe;
      const code = text.charCodeAt(index);
      if (code === quote || code === LF || code === CR) return index;
      if (code !== BACKSLASH) {
        escaping = false;
        index++;
        continue;
      }
      if (index + 1 >= text.length) return final ? text.length : -1 - safe;
      const next = text.charCodeAt(index + 1);
      if (next === LF || next === CR) return index + 1;
      if (next === quote) {
        if (!escaping) return index;
        escaping = false;
      } else {
        escaping = next === BACKSLASH ? !escaping : false;
      }
      index += 2;
    }
  };
}

const QUOTED = new Map([34, 39, 96].map((quote) => [quote, quotedUntil(quote)] as const));
const ESCAPED = new Map([34, 39, 96].map((quote) => [quote, escapedUntil(quote)] as const));

function skipBlanks(cursor: Cursor, from: number): number {
  let index = from;
  while (index - from < MAX_SPACES && isBlank(cursor.at(index))) index++;
  return index;
}

/** Where the blank after an authentication scheme at `start` is, or -1. */
function schemeAt(cursor: Cursor, start: number): number {
  let index = start;
  while (index - start <= LONGEST_SCHEME && isLetter(cursor.at(index))) index++;
  if (index === start || index - start > LONGEST_SCHEME || !isBlank(cursor.at(index))) return -1;
  const word = cursor.text.slice(start, index).toLowerCase();
  return SCHEMES.has(word) ? index : -1;
}

/**
 * SECRET assignments: a key word (`password`, `passwd`, `pwd`, `secret`,
 * `token`, `api_key`, `authorization`, …, in any case, possibly ending a
 * longer name), its closing quote if quoted (`"password"`, `\"password\"`),
 * up to 8 spaces, `=` or `:` (also `=>`, `==`, `:=` when white space follows
 * them), up to 8 spaces and the value (see above). Only the value is
 * replaced: `password=[SECRET]`; the match starts at the value.
 */
export class AssignmentDetector implements Detector {
  readonly name = "SECRET";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly cuttable = true;
  readonly lookBehind = KEY_REACH;
  /** From the key word: the key's reach, then a scheme and its blank. */
  readonly window = KEY_REACH + LONGEST_SCHEME + 1;
  readonly #cursor = new Cursor();
  readonly #anchor = /[:=]/g;
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number) {
    this.rank = rank;
  }

  /** The first value that starts at or after `from` (its key word may start before). */
  next(text: string, from: number, final: boolean): Hit | undefined {
    const cursor = this.#cursor;
    cursor.text = text;
    cursor.final = final;
    const anchor = this.#anchor;
    anchor.lastIndex = Math.max(0, from - SEPARATOR_REACH);
    let hit: Hit | undefined;
    for (let found = anchor.exec(text); found !== null; found = anchor.exec(text)) {
      const start = this.#keyBefore(text, found.index);
      if (start === -1) continue;
      const answer = decideAt(cursor, start, this.#decide);
      if (answer === undefined) continue;
      // Undecided: nothing from here (or from `from`, if the key is older) may be released.
      if (answer.kind === "pending") hit = pendingHit(Math.max(start, from));
      else if (answer.start < from) continue;
      else hit = answer;
      break;
    }
    if (final) return hit;
    return earlier(
      hit,
      firstPending(
        cursor,
        Math.max(from, keyTail(text)),
        hit?.start ?? text.length,
        this.window,
        ANY,
        (code) => KEY_FIRST.has(lower(code)),
        this.#decide,
      ),
    );
  }

  /** The start of the key word that the separator at `separator` follows, or -1. */
  #keyBefore(text: string, separator: number): number {
    let end = separator;
    while (end > 0 && separator - end < MAX_SPACES && isBlank(text.charCodeAt(end - 1))) end--;
    if (end > 0 && isQuote(text.charCodeAt(end - 1))) {
      end--;
      if (end > 0 && text.charCodeAt(end - 1) === BACKSLASH) end--;
    }
    // Most separators (`note:`, `x = 1`) follow no key: one character tells.
    if (!KEY_LAST.has(lower(text.charCodeAt(end - 1)))) return -1;
    for (const key of SECRET_KEYS) {
      const start = end - key.length;
      if (start >= 0 && keyAt(key, start, (index) => text.charCodeAt(index))) return start;
    }
    return -1;
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    if (!KEY_FIRST.has(lower(cursor.at(start)))) return undefined;
    for (const key of SECRET_KEYS) {
      if (!keyAt(key, start, (index) => cursor.at(index))) continue;
      const hit = this.#valueAfter(cursor, start + key.length);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  #valueAfter(cursor: Cursor, keyEnd: number): Hit | undefined {
    let index = keyEnd;
    if (cursor.at(index) === BACKSLASH && isQuote(cursor.at(index + 1))) index += 2;
    else if (isQuote(cursor.at(index))) index++;
    index = skipBlanks(cursor, index);
    const separator = cursor.at(index);
    if (separator !== EQUALS && separator !== COLON) return undefined;
    index++;
    // `=>`, `==`, `:=` count as separators when white space follows;
    // otherwise (`password==x`) the characters are the value's own.
    let tail = index;
    while (tail - index < 2 && (cursor.at(tail) === EQUALS || cursor.at(tail) === GREATER)) tail++;
    if (tail > index && isBlank(cursor.at(tail))) index = tail;
    index = skipBlanks(cursor, index);
    const opening = cursor.at(index);
    if (isQuote(opening)) {
      const first = cursor.at(index + 1);
      if (first === opening || first === LF || first === CR || first === -1) return undefined;
      return extendedHit(cursor.text, index + 1, index + 1, cursor.final, QUOTED.get(opening) as Resume);
    }
    if (opening === BACKSLASH && isQuote(cursor.at(index + 1))) {
      const quote = cursor.at(index + 1);
      const first = cursor.at(index + 2);
      if (first === quote || first === LF || first === CR || first === -1) return undefined;
      if (first === BACKSLASH && cursor.at(index + 3) === quote) return undefined;
      return extendedHit(cursor.text, index + 2, index + 2, cursor.final, ESCAPED.get(quote) as Resume);
    }
    if (!isValueChar(opening)) return undefined;
    const scheme = schemeAt(cursor, index);
    if (scheme !== -1) return extendedHit(cursor.text, index, scheme + 1, cursor.final, resumeAfterScheme);
    return extendedHit(cursor.text, index, index + 1, cursor.final, resumeUnquoted);
  }
}

const isKeyChar: CharTest = (code) => isLetter(code) || code === 95 || code === 45;
const isAfterKey: CharTest = (code) =>
  isBlank(code) || isQuote(code) || code === COLON || code === EQUALS || code === GREATER || code === BACKSLASH;

/**
 * Where an undecided assignment can start: the end of a text that is still
 * undecided is a key (or the start of one) followed by quotes, spaces and a
 * separator, so only the last letters before those can begin it.
 */
function keyTail(text: string): number {
  let index = text.length;
  const floor = Math.max(0, index - 2 * MAX_SPACES - 8);
  while (index > floor && isAfterKey(text.charCodeAt(index - 1))) index--;
  const keyEnd = index;
  while (index > 0 && keyEnd - index < LONGEST_KEY && isKeyChar(text.charCodeAt(index - 1))) index--;
  return index;
}
