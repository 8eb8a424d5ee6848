// The admit stage: how many requests one subject may have in flight at once
// on this gateway. Everything a request holds from here on (a body in memory,
// a place in the audit buffer, an agent slot) is bounded per subject by this
// count, so one caller, however many sockets it opens, cannot take what the
// others need.
import { GatewayError } from "./errors.js";

/** Default per subject: far above what one person or notebook needs, far below what exhausts a gateway. */
export const DEFAULT_MAX_IN_FLIGHT_PER_SUBJECT = 64;

export class InFlightLimiter {
  readonly #max: number;
  readonly #counts = new Map<string, number>();

  constructor(maxPerSubject: number) {
    if (!Number.isInteger(maxPerSubject) || maxPerSubject < 1) {
      throw new RangeError("maxPerSubject must be a positive integer");
    }
    this.#max = maxPerSubject;
  }

  /**
   * Takes one of the subject's places, or throws 429 `too_many_in_flight`.
   * The returned function gives it back; calling it more than once is harmless.
   */
  acquire(subjectKey: string): () => void {
    const held = this.#counts.get(subjectKey) ?? 0;
    if (held >= this.#max) {
      throw new GatewayError(
        "too_many_in_flight",
        `you already have ${this.#max} requests in flight on this gateway; wait for one to finish`,
        null,
        { "retry-after": "1" },
      );
    }
    this.#counts.set(subjectKey, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#counts.get(subjectKey) ?? 1) - 1;
      // Entries of idle subjects are removed: the map holds only callers
      // with requests in flight, so it cannot grow with the number of keys.
      if (left <= 0) this.#counts.delete(subjectKey);
      else this.#counts.set(subjectKey, left);
    };
  }

  /** Requests in flight for a subject (tests, metrics). */
  inFlight(subjectKey: string): number {
    return this.#counts.get(subjectKey) ?? 0;
  }

  /** Subjects with at least one request in flight. */
  get subjects(): number {
    return this.#counts.size;
  }
}
