/**
 * Just enough of a parser for JavaScript regular expressions (Unicode mode)
 * to do three things with a custom detector's pattern:
 *
 * - bound it: every unbounded repetition (`+`, `*`, `{n,}`) gets an upper
 *   limit, so a match never needs more than a known number of characters
 *   and a stream never holds more than that;
 * - measure it: the most characters a match attempt can read from its start
 *   (lookaheads and `\b` peeks included), and how far lookbehinds look back;
 * - derive its "live tail" pattern: a pattern that matches at a position
 *   exactly when some way of matching from there would read past the end of
 *   the text seen so far, i.e. when more text could change the answer.
 *
 * Patterns are first compiled by the engine itself, so this parser only
 * sees valid syntax. Backreferences and modifier groups are refused: a
 * backreference can depend on text arbitrarily far back.
 */

export type RegexNode =
  /** One character: a literal, an escape, a class or `.`; `width` is its most UTF-16 code units. */
  | { type: "atom"; source: string; width: 1 | 2 }
  | { type: "seq"; items: RegexNode[] }
  | { type: "alt"; options: RegexNode[] }
  | { type: "repeat"; body: RegexNode; min: number; max: number; lazy: boolean }
  /** `^`, `$`, `\b`, `\B`; `peeks` when it looks at the next character. */
  | { type: "assert"; source: string; peeks: boolean }
  | { type: "look"; behind: boolean; negative: boolean; body: RegexNode };

export class UnsupportedPattern extends Error {}

const HIGH_SURROGATE = (code: number) => code >= 0xd800 && code <= 0xdbff;

class Parser {
  readonly #source: string;
  #index = 0;

  constructor(source: string) {
    this.#source = source;
  }

  parse(): RegexNode {
    const node = this.#alternation();
    if (this.#index !== this.#source.length) throw new UnsupportedPattern("unexpected )");
    return node;
  }

  #alternation(): RegexNode {
    const options = [this.#sequence()];
    while (this.#source[this.#index] === "|") {
      this.#index++;
      options.push(this.#sequence());
    }
    return options.length === 1 ? (options[0] as RegexNode) : { type: "alt", options };
  }

  #sequence(): RegexNode {
    const items: RegexNode[] = [];
    const source = this.#source;
    while (this.#index < source.length && source[this.#index] !== "|" && source[this.#index] !== ")") {
      items.push(this.#term());
    }
    return items.length === 1 ? (items[0] as RegexNode) : { type: "seq", items };
  }

  #term(): RegexNode {
    const source = this.#source;
    const char = source[this.#index];
    if (char === "^" || char === "$") {
      this.#index++;
      return { type: "assert", source: char, peeks: char === "$" };
    }
    if (char === "\\" && (source[this.#index + 1] === "b" || source[this.#index + 1] === "B")) {
      this.#index += 2;
      return { type: "assert", source: source.slice(this.#index - 2, this.#index), peeks: true };
    }
    if (char === "(") {
      for (const [opener, behind, negative] of [
        ["(?=", false, false],
        ["(?!", false, true],
        ["(?<=", true, false],
        ["(?<!", true, true],
      ] as const) {
        if (source.startsWith(opener, this.#index)) {
          this.#index += opener.length;
          const body = this.#alternation();
          this.#close();
          return { type: "look", behind, negative, body };
        }
      }
      if (source.startsWith("(?:", this.#index)) {
        this.#index += 3;
      } else if (source.startsWith("(?<", this.#index)) {
        this.#index = source.indexOf(">", this.#index) + 1;
      } else if (source.startsWith("(?", this.#index)) {
        throw new UnsupportedPattern("modifier groups are not supported");
      } else {
        this.#index++;
      }
      const body = this.#alternation();
      this.#close();
      return this.#quantified(body);
    }
    return this.#quantified(this.#atom());
  }

  #close(): void {
    if (this.#source[this.#index] !== ")") throw new UnsupportedPattern("missing )");
    this.#index++;
  }

  #atom(): RegexNode {
    const source = this.#source;
    const start = this.#index;
    const char = source[start];
    if (char === "[") return this.#characterClass();
    if (char === ".") {
      this.#index++;
      return { type: "atom", source: ".", width: 2 };
    }
    if (char === "\\") return this.#escape();
    const code = source.codePointAt(start) ?? 0;
    const length = code > 0xffff ? 2 : 1;
    this.#index += length;
    return { type: "atom", source: source.slice(start, start + length), width: length };
  }

  #escape(): RegexNode {
    const source = this.#source;
    const start = this.#index;
    const kind = source[start + 1] ?? "";
    let length = 2;
    let width: 1 | 2 = 1;
    if ("DWS".includes(kind)) {
      width = 2;
    } else if (kind === "p" || kind === "P") {
      length = source.indexOf("}", start) + 1 - start;
      width = 2;
    } else if (kind === "k" || (kind >= "1" && kind <= "9")) {
      throw new UnsupportedPattern("backreferences are not supported");
    } else if (kind === "c") {
      length = 3;
    } else if (kind === "x") {
      length = 4;
    } else if (kind === "u") {
      [length, width] = unicodeEscape(source, start);
    }
    this.#index += length;
    return { type: "atom", source: source.slice(start, start + length), width };
  }

  #characterClass(): RegexNode {
    const source = this.#source;
    const start = this.#index;
    let index = start + 1;
    let wide = source[index] === "^";
    while (index < source.length && source[index] !== "]") {
      if (source[index] === "\\") {
        const kind = source[index + 1] ?? "";
        if (kind === "p" || kind === "P") {
          wide = true;
          index = source.indexOf("}", index) + 1;
        } else if (kind === "u") {
          const [length, width] = unicodeEscape(source, index);
          if (width === 2) wide = true;
          index += length;
        } else {
          if ("DWS".includes(kind)) wide = true;
          index += kind === "c" ? 3 : kind === "x" ? 4 : 2;
        }
      } else {
        const code = source.codePointAt(index) ?? 0;
        if (code > 0xffff) wide = true;
        index += code > 0xffff ? 2 : 1;
      }
    }
    this.#index = index + 1;
    return { type: "atom", source: source.slice(start, index + 1), width: wide ? 2 : 1 };
  }

  #quantified(body: RegexNode): RegexNode {
    const source = this.#source;
    const char = source[this.#index];
    let min: number;
    let max: number;
    if (char === "*") {
      [min, max] = [0, Number.POSITIVE_INFINITY];
      this.#index++;
    } else if (char === "+") {
      [min, max] = [1, Number.POSITIVE_INFINITY];
      this.#index++;
    } else if (char === "?") {
      [min, max] = [0, 1];
      this.#index++;
    } else if (char === "{") {
      const close = source.indexOf("}", this.#index);
      const [low = "", high] = source.slice(this.#index + 1, close).split(",");
      min = Number(low);
      max = high === undefined ? min : high === "" ? Number.POSITIVE_INFINITY : Number(high);
      this.#index = close + 1;
    } else {
      return body;
    }
    const lazy = source[this.#index] === "?";
    if (lazy) this.#index++;
    return { type: "repeat", body, min, max, lazy };
  }
}

/** Length in the source and width in the text of a `\u` escape at `start`. */
function unicodeEscape(source: string, start: number): [number, 1 | 2] {
  if (source[start + 2] === "{") {
    const close = source.indexOf("}", start);
    return [close + 1 - start, Number.parseInt(source.slice(start + 3, close), 16) > 0xffff ? 2 : 1];
  }
  const code = Number.parseInt(source.slice(start + 2, start + 6), 16);
  // A surrogate pair written as two escapes is one character in Unicode mode.
  if (HIGH_SURROGATE(code) && /^\\u[dD][c-fC-F][0-9a-fA-F]{2}/.test(source.slice(start + 6, start + 12))) {
    return [12, 2];
  }
  return [6, 1];
}

export function parsePattern(source: string): RegexNode {
  return new Parser(source).parse();
}

/** Sizes of a node, in UTF-16 code units, with unbounded repetitions limited to `cap`. */
export interface Extent {
  min: number;
  max: number;
  /** The furthest a match attempt starting at the node reads, peeks included. */
  reach: number;
}

function repeatLimit(node: { min: number; max: number }, cap: number): number {
  return node.max === Number.POSITIVE_INFINITY ? Math.max(node.min, cap) : node.max;
}

export function extentOf(node: RegexNode, cap: number): Extent {
  switch (node.type) {
    case "atom":
      return { min: 1, max: node.width, reach: node.width };
    case "assert":
      // A peek reads one character, which may be a surrogate pair.
      return { min: 0, max: 0, reach: node.peeks ? 2 : 0 };
    case "look":
      return { min: 0, max: 0, reach: node.behind ? 0 : extentOf(node.body, cap).reach };
    case "alt": {
      const extents = node.options.map((option) => extentOf(option, cap));
      return {
        min: Math.min(...extents.map((extent) => extent.min)),
        max: Math.max(...extents.map((extent) => extent.max)),
        reach: Math.max(...extents.map((extent) => extent.reach)),
      };
    }
    case "seq": {
      let min = 0;
      let max = 0;
      let reach = 0;
      for (const item of node.items) {
        const extent = extentOf(item, cap);
        reach = Math.max(reach, max + extent.reach);
        min += extent.min;
        max += extent.max;
      }
      return { min, max, reach };
    }
    case "repeat": {
      const limit = repeatLimit(node, cap);
      const body = extentOf(node.body, cap);
      return {
        min: node.min * body.min,
        max: limit * body.max,
        reach: limit === 0 ? 0 : (limit - 1) * body.max + body.reach,
      };
    }
  }
}

/** How far back any lookbehind (or `^` in multiline mode) can look. */
export function lookBehindOf(node: RegexNode, cap: number): number {
  switch (node.type) {
    case "atom":
      return 0;
    case "assert":
      return 2;
    case "look":
      return Math.max(node.behind ? extentOf(node.body, cap).max : 0, lookBehindOf(node.body, cap));
    case "alt":
      return Math.max(0, ...node.options.map((option) => lookBehindOf(option, cap)));
    case "seq":
      return Math.max(0, ...node.items.map((item) => lookBehindOf(item, cap)));
    case "repeat":
      return lookBehindOf(node.body, cap);
  }
}

/** The node as pattern source, repetitions bounded by `cap`, groups non-capturing. */
export function emit(node: RegexNode, cap: number): string {
  switch (node.type) {
    case "atom":
    case "assert":
      return node.source;
    case "seq":
      return node.items.map((item) => emit(item, cap)).join("");
    case "alt":
      return `(?:${node.options.map((option) => emit(option, cap)).join("|")})`;
    case "look":
      return `(?${node.behind ? "<" : ""}${node.negative ? "!" : "="}${emit(node.body, cap)})`;
    case "repeat": {
      const body = node.body.type === "atom" ? node.body.source : `(?:${emit(node.body, cap)})`;
      return `${body}{${node.min},${repeatLimit(node, cap)}}${node.lazy ? "?" : ""}`;
    }
  }
}

/** Matches only at the end of the text. */
const END = "(?![\\s\\S])";
/** Never matches. */
const NEVER = "(?!)";

/**
 * The live-tail pattern of a node: it matches from a position, up to the
 * end of the text, exactly when some way of matching the node from that
 * position reads (or peeks) at the end, so that more text could change
 * whether or how the node matches there. A way that completes the node
 * without touching the end is not live: what follows it is the caller's
 * business (see the sequence case).
 */
export function liveTail(node: RegexNode, cap: number): string {
  switch (node.type) {
    case "atom":
      return END;
    case "assert":
      return node.peeks ? END : NEVER;
    case "look":
      return node.behind ? NEVER : `(?=${liveTail(node.body, cap)})`;
    case "alt":
      return `(?:${node.options.map((option) => liveTail(option, cap)).join("|")})`;
    case "seq":
      return liveSequence(node.items, 0, cap);
    case "repeat": {
      const limit = repeatLimit(node, cap);
      if (limit === 0) return NEVER;
      const body = node.body.type === "atom" ? node.body.source : `(?:${emit(node.body, cap)})`;
      // Any number of complete rounds, then one that reads at the end.
      return `${body}{0,${limit - 1}}${liveTail(node.body, cap)}`;
    }
  }
}

function liveSequence(items: readonly RegexNode[], index: number, cap: number): string {
  const item = items[index];
  if (item === undefined) return NEVER;
  if (index === items.length - 1) return liveTail(item, cap);
  return `(?:${liveTail(item, cap)}|${emit(item, cap)}${liveSequence(items, index + 1, cap)})`;
}
