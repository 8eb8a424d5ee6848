import type { Detector, Hit, Resume } from "./detectors/scan.js";
import type { OpenReplacement, Renderer } from "./styles.js";

/** Entity, custom detector or deny-list name → values masked. */
export type MaskCounts = Record<string, number>;

/** Anything that went wrong inside masking. Callers fail closed: nothing unmasked is sent. */
export class MaskingError extends Error {
  override readonly name = "MaskingError";
}

/**
 * One logical text channel masked as it arrives (for example the content of
 * `choices[0]` in an SSE stream). The concatenation of everything `push`
 * and `end` return equals `maskText` of the whole text, however the text
 * was cut into chunks.
 */
export interface MaskingStream {
  /** Masked text that can be released now ("" when everything must be held). */
  push(chunk: string): string;
  /** The held tail, masked. The stream cannot be used afterwards. */
  end(): string;
  /** What this stream masked so far. */
  readonly counts: MaskCounts;
  /** Characters currently held back. */
  readonly held: number;
}

/** A detected value, for `Masker.detect`. Offsets are UTF-16 indices into the text. */
export interface DetectedValue {
  name: string;
  start: number;
  end: number;
  value: string;
}

/**
 * Validation tiers. A match of a higher tier outranks an overlapping match
 * of a lower tier, whatever their lengths: a built-in entity is checked
 * (a checksum, a structure, a secret's prefix or key word), a custom
 * pattern or deny-list term only matches text.
 */
export const PATTERN_TIER = 0;
export const VALIDATED_TIER = 1;

/** What a scan needs from its Masker. */
export interface ScanPlan {
  readonly detectors: readonly Detector[];
  /** Each detector's validation tier (PATTERN_TIER or VALIDATED_TIER). */
  readonly tiers: readonly number[];
  /**
   * Lengths are compared up to this many characters (the masker's window):
   * two overlapping matches at least this long count as equally long, and
   * the earlier one wins. It is what keeps a stream's decisions bounded.
   */
  readonly cap: number;
  readonly renderer: Renderer;
  /** Characters before the current position that detectors may look at. */
  readonly context: number;
}

interface OpenMatch {
  replacement: OpenReplacement;
  resume: Resume;
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/** Verdicts of `#challenge`; an outranking rival (a Hit) means the candidate loses. */
const WINS = 0;
const WAIT = 1;
type Verdict = typeof WINS | typeof WAIT | Hit;

/**
 * The masking engine, for whole texts and streams alike. It keeps the text
 * that has not been released (plus a little released text as context for
 * detectors that look back) and repeats one step:
 *
 * 1. Ask every detector for its first match, open match or undecided
 *    position at or after the current position.
 * 2. If the earliest answer is undecided (or nothing was found), release
 *    the text up to there unmasked and stop until more text arrives.
 * 3. Otherwise take the matches that start at the earliest position, best
 *    first (the order below): the first one that no overlapping match of
 *    another detector starting inside it outranks wins. Release the text
 *    before it, emit its replacement, continue after it. When every match
 *    there is outranked, the character there is plain text: continue after
 *    it (the matches that outrank them come next).
 *
 * The order ("outranks"): a validated entity beats a custom pattern or
 * deny-list term (see VALIDATED_TIER); then the longer match, lengths
 * counted up to `cap`; then the earlier start; then the detector's rank.
 * A checksum-valid card inside a custom pattern's match is therefore
 * masked as a card, and a phone number is not cut short by a shorter
 * reading that starts before it. An assignment's value that loses to a
 * match starting inside it is cut there instead of dropped, so the part
 * before the winner is not released (Detector.cuttable). Overlaps are
 * judged between each detector's own readings, one after the other from the
 * current position (`#challenge`), not the shorter readings inside them.
 *
 * Streaming: a match is decided once every rival that starts inside it is
 * decided; an open match (a long secret, an email's domain) waits until it
 * has ended or reached `cap` characters, after which nothing that starts
 * later can outrank it. Its replacement is emitted then, and the text that
 * continues it is dropped (or hashed) as it arrives, until its end is known.
 *
 * Whole-text masking runs the same steps with `final` set, when detectors
 * never answer "undecided"; a stream answers "undecided" wherever the whole
 * text could decide differently (a detector's decision reads through a
 * Cursor, which refuses to guess past the text received). So the two agree
 * for any chunking, and a stream holds back only what could still be part
 * of a match or decide one: at most the longest match that can still be
 * outranked plus the largest `window` of its rivals (Masker.holdback).
 */
export class MaskingScan implements MaskingStream {
  readonly #plan: ScanPlan;
  /** Unreleased text, after `context` characters of released text. */
  #text = "";
  #position = 0;
  /** Offset of `#text` in the whole text. */
  #offset = 0;
  #open: OpenMatch | undefined;
  readonly #counts: MaskCounts = {};
  #state: "active" | "ended" | "failed" = "active";
  readonly #found: DetectedValue[] | undefined;

  constructor(plan: ScanPlan, found?: DetectedValue[]) {
    this.#plan = plan;
    this.#found = found;
  }

  /** Masks a whole text at once. */
  static maskAll(plan: ScanPlan, text: string, found?: DetectedValue[]): { text: string; counts: MaskCounts } {
    const scan = new MaskingScan(plan, found);
    return { text: scan.#guard(() => scan.#last(text)), counts: scan.counts };
  }

  get counts(): MaskCounts {
    return { ...this.#counts };
  }

  get held(): number {
    return this.#text.length - this.#position;
  }

  push(chunk: string): string {
    return this.#guard(() => {
      if (typeof chunk !== "string") throw new MaskingError("a chunk must be a string");
      this.#text += chunk;
      return this.#advance(false);
    });
  }

  end(): string {
    return this.#guard(() => this.#last(""));
  }

  #last(chunk: string): string {
    this.#text += chunk;
    const out = this.#advance(true);
    this.#state = "ended";
    this.#text = "";
    this.#position = 0;
    return out;
  }

  #guard(work: () => string): string {
    if (this.#state !== "active") {
      throw new MaskingError(this.#state === "ended" ? "the masking stream has ended" : "the masking stream failed");
    }
    try {
      return work();
    } catch (error) {
      this.#state = "failed";
      this.#text = "";
      this.#position = 0;
      // The cause is kept for logs; the message never quotes the text.
      throw error instanceof MaskingError ? error : new MaskingError("masking failed", { cause: error });
    }
  }

  #advance(final: boolean): string {
    const text = this.#text;
    const { detectors } = this.#plan;
    // Each detector's answer from some position at or before the current one;
    // still its first answer from the current position while it starts there or later.
    const answers: (Hit | null | undefined)[] = new Array(detectors.length);
    let position = this.#position;
    let out = "";
    scan: for (;;) {
      const open = this.#open;
      if (open !== undefined) {
        const end = open.resume(text, position, final);
        if (end < 0) {
          let safe = -1 - end;
          // Keep a surrogate pair together, so a value hashes the same however it was cut.
          if (safe > position && safe === text.length && isHighSurrogate(text.charCodeAt(safe - 1))) safe--;
          open.replacement.add(text.slice(position, safe));
          position = safe;
          break;
        }
        open.replacement.add(text.slice(position, end));
        out += open.replacement.finish();
        this.#open = undefined;
        position = end;
        continue;
      }

      let first = Number.POSITIVE_INFINITY;
      let undecided = Number.POSITIVE_INFINITY;
      for (let index = 0; index < detectors.length; index++) {
        let answer = answers[index];
        if (answer === undefined || (answer !== null && answer.start < position)) {
          answer = (detectors[index] as Detector).next(text, position, final) ?? null;
          answers[index] = answer;
        }
        if (answer === null) continue;
        if (answer.kind === "pending") undecided = Math.min(undecided, answer.start);
        else first = Math.min(first, answer.start);
      }
      if (undecided <= first) {
        let stop = Math.min(undecided, text.length);
        // Never release half of a surrogate pair, wherever the stop falls (a
        // detector may report "undecided" between the halves): the event
        // would carry a lone surrogate, which is not text.
        if (
          stop > position &&
          isHighSurrogate(text.charCodeAt(stop - 1)) &&
          (stop === text.length ? !final : isLowSurrogate(text.charCodeAt(stop)))
        ) {
          stop--;
        }
        out += text.slice(position, stop);
        position = stop;
        break;
      }
      if (first < position) throw new MaskingError("a detector answered before the current position");

      const candidates: number[] = [];
      for (let index = 0; index < detectors.length; index++) {
        const answer = answers[index];
        if (answer != null && answer.kind !== "pending" && answer.start === first) candidates.push(index);
      }
      // A match still growing may yet outrank the others, or be outranked by
      // a longer one that starts inside it: wait for it.
      if (candidates.some((index) => this.#growing(answers[index] as Hit))) {
        out += text.slice(position, first);
        position = first;
        break;
      }
      candidates.sort((a, b) => this.#compare(answers[a] as Hit, a, answers[b] as Hit, b));
      let winner = -1;
      let won: Hit | undefined;
      for (const index of candidates) {
        const hit = answers[index] as Hit;
        const verdict = this.#challenge(index, hit, answers, text, final);
        if (verdict === WAIT) {
          out += text.slice(position, first);
          position = first;
          break scan;
        }
        if (verdict === WINS) {
          winner = index;
          won = hit;
          break;
        }
        if ((detectors[index] as Detector).cuttable === true && verdict.start > hit.start) {
          winner = index;
          won = { kind: "match", start: hit.start, end: verdict.start, name: hit.name };
          break;
        }
      }
      if (won === undefined) {
        // Every match that starts here is outranked by one that starts later:
        // this character is plain text.
        let next = first + 1;
        if (isHighSurrogate(text.charCodeAt(first)) && isLowSurrogate(text.charCodeAt(next))) next++;
        out += text.slice(position, next);
        position = next;
        continue;
      }
      const detector = detectors[winner] as Detector;
      if (won.end <= won.start) {
        throw new MaskingError(`the ${detector.name} detector answered an empty match`);
      }
      const name = won.name ?? detector.name;
      out += text.slice(position, won.start);
      this.#counts[name] = (this.#counts[name] ?? 0) + 1;
      if (won.kind === "match") {
        const value = text.slice(won.start, won.end);
        out += this.#plan.renderer.replace(name, detector.keepsLastDigits, value);
        this.#found?.push({ name, start: this.#offset + won.start, end: this.#offset + won.end, value });
        position = won.end;
      } else {
        let end = won.end;
        if (end > won.start && end === text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
        const replacement = this.#plan.renderer.open(name);
        replacement.add(text.slice(won.start, end));
        out += replacement.now;
        this.#open = { replacement, resume: won.resume as Resume };
        position = end;
      }
    }
    // Keep a little released text: detectors look back for word boundaries.
    const drop = Math.max(0, position - this.#plan.context);
    if (drop > 0) {
      this.#text = text.slice(drop);
      this.#offset += drop;
    }
    this.#position = position - drop;
    return out;
  }

  /** An open match shorter than the cap: its rank among overlapping matches may still change. */
  #growing(hit: Hit): boolean {
    return hit.kind === "open" && hit.end - hit.start < this.#plan.cap;
  }

  /** Negative when the match `a` (of detector `ai`) outranks `b` (of `bi`): the order described above. */
  #compare(a: Hit, ai: number, b: Hit, bi: number): number {
    const { tiers, cap, detectors } = this.#plan;
    const tier = (tiers[bi] ?? PATTERN_TIER) - (tiers[ai] ?? PATTERN_TIER);
    if (tier !== 0) return tier;
    const length = Math.min(b.end - b.start, cap) - Math.min(a.end - a.start, cap);
    if (length !== 0) return length;
    if (a.start !== b.start) return a.start - b.start;
    return (detectors[ai] as Detector).rank - (detectors[bi] as Detector).rank;
  }

  /**
   * Whether the match `hit` of detector `index` wins against the matches of
   * the other detectors that start inside it (`WINS`), cannot be decided
   * until more text has arrived (`WAIT`), or is outranked by one (returned;
   * for a cuttable match, the outranking rival that starts first).
   */
  #challenge(
    index: number,
    hit: Hit,
    answers: readonly (Hit | null | undefined)[],
    text: string,
    final: boolean,
  ): Verdict {
    const { detectors, tiers, cap } = this.#plan;
    const tier = tiers[index] ?? PATTERN_TIER;
    // A rival starting later could at best tie, and ties go to the earlier start.
    if (tier === VALIDATED_TIER && hit.end - hit.start >= cap) return WINS;
    const cuttable = (detectors[index] as Detector).cuttable === true;
    let outranked: Hit | undefined;
    let limit = hit.end;
    for (let other = 0; other < detectors.length; other++) {
      if (other === index || (tiers[other] ?? PATTERN_TIER) < tier) continue;
      const rival = detectors[other] as Detector;
      // The rival's own readings from the current position, one after the
      // other as it alone would mask them: not the shorter readings inside
      // one of them (the rest of an email's local part), which would only
      // lose to what that one loses to.
      let answer = answers[other] ?? null;
      if (answer !== null && answer.kind !== "pending" && answer.start === hit.start) {
        answer = rival.next(text, answer.end, final) ?? null;
      }
      while (answer !== null && answer.start < limit) {
        if (answer.kind === "pending") return WAIT;
        if (this.#compare(answer, other, hit, index) < 0) {
          if (!cuttable) return answer;
          outranked = answer;
          limit = answer.start;
          break;
        }
        if (this.#growing(answer)) return WAIT;
        answer = rival.next(text, answer.end, final) ?? null;
      }
    }
    return outranked ?? WINS;
  }
}
