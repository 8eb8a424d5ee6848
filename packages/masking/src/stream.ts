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

/** What a scan needs from its Masker. */
export interface ScanPlan {
  readonly detectors: readonly Detector[];
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

/**
 * The masking engine, for whole texts and streams alike. It keeps the text
 * that has not been released (plus a little released text as context for
 * detectors that look back) and repeats one step:
 *
 * 1. Ask every detector for its first match, open match or undecided
 *    position at or after the current position.
 * 2. If the earliest answer is undecided (or nothing was found), release
 *    the text up to there unmasked and stop until more text arrives.
 * 3. Otherwise the earliest match wins; among matches that start at the
 *    same place the longest, then the detector with the lowest rank. An
 *    open match wins only once no rival starting there could outgrow it.
 *    Release the text before it, emit its replacement, continue after it.
 *    An open match (a long secret) is emitted as soon as it wins; the text
 *    that continues it is then dropped (or hashed) as it arrives, until its
 *    end is known.
 *
 * Whole-text masking runs the same steps with `final` set, when detectors
 * never answer "undecided"; a stream answers "undecided" wherever the whole
 * text could decide differently (a detector's decision reads through a
 * Cursor, which refuses to guess past the text received). So the two agree
 * for any chunking, and a stream holds back only what could still be part
 * of a match: at most the largest `window` of its detectors.
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
    const { detectors, renderer } = this.#plan;
    // Each detector's answer from some position at or before the current one;
    // still its first answer from the current position while it starts there or later.
    const answers: (Hit | null | undefined)[] = new Array(detectors.length);
    let position = this.#position;
    let out = "";
    for (;;) {
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

      let winner = -1;
      for (let index = 0; index < detectors.length; index++) {
        const answer = answers[index];
        if (answer == null || answer.kind === "pending" || answer.start !== first) continue;
        const best = answers[winner];
        if (
          best == null ||
          answer.end > best.end ||
          (answer.end === best.end && (detectors[index] as Detector).rank < (detectors[winner] as Detector).rank)
        ) {
          winner = index;
        }
      }
      if (answers.some((answer, index) => index !== winner && answer?.kind === "open" && answer.start === first)) {
        // A rival still growing might end up longer: wait for it.
        out += text.slice(position, first);
        position = first;
        break;
      }

      const hit = answers[winner] as Hit;
      const detector = detectors[winner] as Detector;
      if (hit.end <= hit.start || hit.valueStart < hit.start || hit.valueStart >= hit.end) {
        throw new MaskingError(`the ${detector.name} detector answered an empty match`);
      }
      const name = hit.name ?? detector.name;
      out += text.slice(position, hit.valueStart);
      this.#counts[name] = (this.#counts[name] ?? 0) + 1;
      if (hit.kind === "match") {
        const value = text.slice(hit.valueStart, hit.end);
        out += renderer.replace(name, detector.keepsLastDigits, value);
        this.#found?.push({
          name,
          start: this.#offset + hit.valueStart,
          end: this.#offset + hit.end,
          value,
        });
        position = hit.end;
      } else {
        let end = hit.end;
        if (end > hit.valueStart && end === text.length && isHighSurrogate(text.charCodeAt(end - 1))) end--;
        const replacement = renderer.open(name);
        replacement.add(text.slice(hit.valueStart, end));
        out += replacement.now;
        this.#open = { replacement, resume: hit.resume as Resume };
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
}
