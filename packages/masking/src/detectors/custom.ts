import { emit, extentOf, liveTail, lookBehindOf, parsePattern, UnsupportedPattern } from "./regex-syntax.js";
import { type Detector, type Hit, matchHit, pendingHit } from "./scan.js";

/** The most characters any one pattern may need, however it is written. */
const MAX_PATTERN_REACH = 1024;
/** How far back a pattern's lookbehinds may look (a stream keeps that much released text). */
const MAX_LOOK_BEHIND = 64;

export interface CompiledPattern {
  /** The pattern with every unbounded repetition bounded, groups non-capturing. */
  source: string;
  /** Its live-tail pattern (see regex-syntax.ts). */
  live: string;
  /** Flags without `g` and `u`. */
  flags: string;
  /** The most characters one match attempt reads: the stream's hold-back for it. */
  reach: number;
  lookBehind: number;
}

/**
 * Bounds a pattern so that no match attempt reads more than `budget`
 * characters: unbounded repetitions (`+`, `*`, `{n,}`) get the largest
 * common upper limit that keeps the pattern within it. A pattern whose
 * fixed parts alone need more (a long literal) keeps them, up to
 * MAX_PATTERN_REACH; its repetitions are then bounded to their minimum.
 * Throws UnsupportedPattern (or the engine's SyntaxError) for a pattern that
 * cannot be used.
 */
export function compilePattern(pattern: string, flags: string, budget: number): CompiledPattern {
  // The engine's own parser first: what reaches ours is valid syntax.
  new RegExp(pattern, `${flags}u`);
  const tree = parsePattern(pattern);
  const reachAt = (cap: number) => extentOf(tree, cap).reach;
  const floor = reachAt(1);
  if (floor > MAX_PATTERN_REACH) {
    throw new UnsupportedPattern(`can need more than ${MAX_PATTERN_REACH} characters for one match`);
  }
  const limit = Math.max(budget, floor);
  let cap = 1;
  for (let high = budget; cap < high; ) {
    const middle = Math.ceil((cap + high) / 2);
    if (reachAt(middle) <= limit) cap = middle;
    else high = middle - 1;
  }
  if (extentOf(tree, cap).min === 0) throw new UnsupportedPattern("can match empty text");
  const lookBehind = lookBehindOf(tree, cap);
  if (lookBehind > MAX_LOOK_BEHIND) {
    throw new UnsupportedPattern(`looks more than ${MAX_LOOK_BEHIND} characters back`);
  }
  return { source: emit(tree, cap), live: liveTail(tree, cap), flags, reach: reachAt(cap), lookBehind };
}

/**
 * Why a custom pattern cannot be used by the masking engine, or undefined
 * when it can: for the control plane to refuse it when a policy is written
 * (the safety check against slow patterns is separate).
 */
export function checkMaskingPattern(pattern: string, flags = "", budget = 64): string | undefined {
  try {
    compilePattern(pattern, flags, budget);
    return undefined;
  } catch (error) {
    if (error instanceof UnsupportedPattern || error instanceof SyntaxError) return error.message;
    throw error;
  }
}

/**
 * A custom detector: a policy's regular expression, bounded by
 * compilePattern. In a stream, a match counts once no earlier position is
 * still live (see
 * liveTail): the tail from a live position could still start a match, or
 * change the one found there.
 */
export class RegexDetector implements Detector {
  readonly name: string;
  readonly rank: number;
  readonly keepsLastDigits = false;
  readonly lookBehind: number;
  readonly window: number;
  readonly #pattern: RegExp;
  readonly #live: RegExp;

  constructor(name: string, rank: number, compiled: CompiledPattern) {
    this.name = name;
    this.rank = rank;
    this.lookBehind = compiled.lookBehind;
    this.window = compiled.reach;
    this.#pattern = new RegExp(compiled.source, `${compiled.flags}gu`);
    this.#live = new RegExp(compiled.live, `${compiled.flags}gu`);
    // The engine compiles a pattern when first run; a pattern too large to
    // compile must fail here, when the Masker is built, not mid-response.
    this.#pattern.exec("");
    this.#live.exec("");
  }

  next(text: string, from: number, final: boolean): Hit | undefined {
    const pattern = this.#pattern;
    pattern.lastIndex = from;
    const found = pattern.exec(text);
    const match = found === null ? undefined : matchHit(found.index, found.index + found[0].length);
    if (final) return match;
    const live = this.#live;
    live.lastIndex = Math.max(from, text.length - this.window);
    const tail = live.exec(text);
    const pendingAt = tail === null ? text.length : Math.max(tail.index, from);
    if (match !== undefined && match.start < pendingAt) return match;
    return pendingAt < text.length ? pendingHit(pendingAt) : undefined;
  }
}
