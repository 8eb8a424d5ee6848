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
  isDigit,
  isUpper,
  literalAt,
  matchHit,
  type Resume,
  runEnd,
} from "./scan.js";

/**
 * SECRET detectors. Secrets can be long (a JWT is hundreds of characters, a
 * private-key block thousands), so none of them waits for the whole value:
 * each is recognised by a bounded prefix (a marker, a token prefix and its
 * first characters), and from then on it is an open match that runs to the
 * end of its token (or to the END marker of a key block). A stream emits the
 * replacement once the secret has ended or reached the masker's window (see
 * stream.ts) and drops the rest as it arrives; whole-text masking replaces
 * the same span. Assignments (`password=…`) are in assignment.ts.
 */

const DOT = 46;

const isTokenChar: CharTest = (code) => isAlnum(code) || code === 95 || code === 45;
const isBase64Url = isTokenChar;
const isUnderscoreAlnum: CharTest = (code) => isAlnum(code) || code === 95;
const isDashAlnum: CharTest = (code) => isAlnum(code) || code === 45;
const isDot: CharTest = (code) => code === DOT;
const isTokenOrDot: CharTest = (code) => isTokenChar(code) || code === DOT;

const resumeRun =
  (core: CharTest, joiner?: CharTest): Resume =>
  (text, from, final) =>
    runEnd(text, from, final, core, joiner);

interface TokenKind {
  /** The literal the token starts with. */
  prefix: string;
  /** Characters of the body, and how many must follow the prefix for it to count. */
  body: CharTest;
  minimum: number;
  /** Exactly `minimum` characters, not glued to more letters or digits (AWS ids); else it runs on. */
  exact: boolean;
  resume: Resume;
}

function kind(prefix: string, body: CharTest, minimum: number, exact = false): TokenKind {
  return { prefix, body, minimum, exact, resume: resumeRun(body) };
}

const isUpperOrDigit: CharTest = (code) => isUpper(code) || isDigit(code);

const TOKEN_KINDS: readonly TokenKind[] = [
  kind("AKIA", isUpperOrDigit, 16, true),
  kind("ASIA", isUpperOrDigit, 16, true),
  ...["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].map((prefix) => kind(prefix, isAlnum, 36)),
  kind("github_pat_", isUnderscoreAlnum, 22),
  ...["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"].map((prefix) => kind(prefix, isDashAlnum, 10)),
  kind("sk-", isTokenChar, 20),
  kind("mgagent_", isAlnum, 32),
  kind("mg_", isAlnum, 32),
];
const resumeJwt = resumeRun(isBase64Url, isDot);

const TOKEN_ANCHOR = /A[KS]IA|gh[pousr]_|github_pat_|xox[baprs]-|sk-|mgagent_|mg_|eyJ/g;
/** First characters of the prefixes above: the only places a trailing partial prefix can start. */
const TOKEN_FIRST = new Set([..."Agxsme"].map((char) => char.charCodeAt(0)));

/**
 * SECRET tokens, each not glued to a preceding letter, digit, `_` or `-`:
 *
 * - AWS access key ids: `AKIA` or `ASIA` and 16 upper-case letters or digits;
 * - GitHub: `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` and 36+ letters or digits,
 *   `github_pat_` and 22+ letters, digits or `_`;
 * - Slack: `xoxb-`/`xoxa-`/`xoxp-`/`xoxr-`/`xoxs-` and 10+ letters, digits or `-`;
 * - OpenAI-style: `sk-` and 20+ letters, digits, `_` or `-` (`sk-proj-…` too);
 * - modelgate: `mg_` and `mgagent_` with 32+ letters or digits;
 * - JWTs: `eyJ` (base64 of `{"`), 8+ base64url characters, `.eyJ`, to the end
 *   of the dotted token; a header run that reaches `window - 4` characters
 *   without its dot is masked anyway (base64 JSON that long is a credential,
 *   and the decision must not wait for it).
 *
 * Each token runs to the end of its characters (a JWT through its dots),
 * however long.
 */
export class TokenDetector implements Detector {
  readonly name = "SECRET";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window: number;
  readonly #cursor = new Cursor();
  readonly #anchor = new RegExp(TOKEN_ANCHOR.source, "g");
  readonly #decide = (cursor: Cursor, start: number) => this.#decideAt(cursor, start);

  constructor(rank: number, window: number) {
    this.rank = rank;
    this.window = window;
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
    return earlier(
      hit,
      firstPending(
        cursor,
        from,
        hit?.start ?? text.length,
        this.window,
        isTokenOrDot,
        (code, before) => TOKEN_FIRST.has(code) && !isTokenChar(before),
        this.#decide,
      ),
    );
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    if (isTokenChar(cursor.at(start - 1))) return undefined;
    if (literalAt(cursor, start, "eyJ")) return this.#jwt(cursor, start);
    for (const kind of TOKEN_KINDS) {
      if (cursor.at(start) !== kind.prefix.charCodeAt(0) || !literalAt(cursor, start, kind.prefix)) continue;
      const bodyStart = start + kind.prefix.length;
      for (let index = bodyStart; index < bodyStart + kind.minimum; index++) {
        if (!kind.body(cursor.at(index))) return undefined;
      }
      const end = bodyStart + kind.minimum;
      if (kind.exact) return isAlnum(cursor.at(end)) ? undefined : matchHit(start, end);
      return extendedHit(cursor.text, start, end, cursor.final, kind.resume);
    }
    return undefined;
  }

  #jwt(cursor: Cursor, start: number): Hit | undefined {
    const cap = start + this.window - 4;
    let index = start + 3;
    for (;;) {
      if (index >= cap) return extendedHit(cursor.text, start, index, cursor.final, resumeJwt);
      if (!isBase64Url(cursor.at(index))) break;
      index++;
    }
    if (index - start < 11 || cursor.at(index) !== DOT || !literalAt(cursor, index + 1, "eyJ")) return undefined;
    return extendedHit(cursor.text, start, index + 4, cursor.final, resumeJwt);
  }
}

const PEM_BEGIN = "-----BEGIN ";
const PEM_END = "-----END ";
const DASHES = "-----";
/** Upper-case letters, digits and spaces: the label of a PEM marker. */
const isPemLabel: CharTest = (code) => isUpper(code) || isDigit(code) || code === 32;
const PEM_LABEL_MAX = 40;
const isPemChar: CharTest = (code) => isPemLabel(code) || code === 45;

/** The end of a key block's END marker from `from` on (see Resume); the text's end if there is none. */
const resumePem: Resume = (text, from, final) => {
  const end = text.length;
  for (let search = from; ; ) {
    const marker = text.indexOf(PEM_END, search);
    if (marker === -1) {
      if (final) return end;
      // Hold back a tail that may be the start of the marker.
      for (let start = Math.max(search, end - PEM_END.length + 1); start < end; start++) {
        if (PEM_END.startsWith(text.slice(start))) return -1 - start;
      }
      return -1 - end;
    }
    let index = marker + PEM_END.length;
    while (index < end && index - marker - PEM_END.length < PEM_LABEL_MAX && isPemLabel(text.charCodeAt(index))) {
      index++;
    }
    const rest = text.slice(index, index + DASHES.length);
    if (rest === DASHES) return index + DASHES.length;
    const undecided = DASHES.startsWith(rest) && index + DASHES.length > end;
    if (undecided && !final && index - marker - PEM_END.length < PEM_LABEL_MAX) return -1 - marker;
    search = marker + 1;
  }
};

/**
 * SECRET, private-key blocks: `-----BEGIN … PRIVATE KEY-----` (RSA, EC,
 * OPENSSH, ENCRYPTED, PGP `… PRIVATE KEY BLOCK`, or none) through the next
 * `-----END …-----` marker, or to the end of the text when there is none:
 * a block cut off by the end of a response is still a secret.
 */
export class PemDetector implements Detector {
  readonly name = "SECRET";
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind = 2;
  readonly window = PEM_BEGIN.length + PEM_LABEL_MAX + DASHES.length + 1;
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
    for (let found = text.indexOf(PEM_BEGIN, from); found !== -1; found = text.indexOf(PEM_BEGIN, found + 1)) {
      hit = decideAt(cursor, found, this.#decide);
      if (hit !== undefined) break;
    }
    if (final) return hit;
    return earlier(
      hit,
      firstPending(
        cursor,
        from,
        hit?.start ?? text.length,
        this.window,
        isPemChar,
        (code, before) => code === 45 && before !== 45,
        this.#decide,
      ),
    );
  }

  #decideAt(cursor: Cursor, start: number): Hit | undefined {
    if (cursor.at(start - 1) === 45 || !literalAt(cursor, start, PEM_BEGIN)) return undefined;
    const labelStart = start + PEM_BEGIN.length;
    let index = labelStart;
    while (isPemLabel(cursor.at(index))) {
      if (index - labelStart === PEM_LABEL_MAX) return undefined;
      index++;
    }
    const label = cursor.text.slice(labelStart, index);
    if (!/(^| )PRIVATE KEY( BLOCK)?$/.test(label) || !literalAt(cursor, index, DASHES)) return undefined;
    return extendedHit(cursor.text, start, index + DASHES.length, cursor.final, resumePem);
  }
}
