import { randomBytes } from "node:crypto";
import { AssignmentDetector } from "./detectors/assignment.js";
import { compilePattern, RegexDetector } from "./detectors/custom.js";
import { DenyListDetector } from "./detectors/deny-list.js";
import { EmailDetector } from "./detectors/email.js";
import { Ipv4Detector, Ipv6Detector } from "./detectors/ip.js";
import { CardDetector, IbanDetector, PhoneDetector, SsnDetector } from "./detectors/numbers.js";
import type { Detector } from "./detectors/scan.js";
import { PemDetector, TokenDetector } from "./detectors/secrets.js";
import { ENTITY_TYPES, type EntityType, MASK_NAME, type MaskingProfile } from "./profile.js";
import {
  type DetectedValue,
  type MaskCounts,
  MaskingError,
  MaskingScan,
  type MaskingStream,
  PATTERN_TIER,
  type ScanPlan,
  VALIDATED_TIER,
} from "./stream.js";
import { createRenderer } from "./styles.js";

export { type DetectedValue, type MaskCounts, MaskingError, type MaskingStream };

/**
 * The options of a masker for one session: a fresh hash key when the
 * profile's style is `hash` (pseudonyms stable within the session,
 * unlinkable across sessions), none otherwise. Only the hash style reads the
 * key, and drawing one was half the cost of setting up masking for a
 * request (a system call per request on the data path; docs/benchmarks.md).
 */
export function sessionMaskerOptions(profile: Pick<MaskingProfile, "style">): MaskerOptions {
  return profile.style === "hash" ? { hashKey: randomBytes(32) } : {};
}

export interface MaskerOptions {
  /** Per-session secret for the `hash` style (required for it): pseudonyms are stable with one key only. */
  hashKey?: Uint8Array;
  /**
   * The window: most characters one detector's decision may need (the
   * limit that unbounded repetitions in custom patterns are fitted into),
   * and the length up to which overlapping matches are compared (default
   * 64, at least 48 so that every built-in format fits). A stream holds
   * back at most about twice this: see `Masker.holdback`.
   */
  maxHoldback?: number;
}

export const DEFAULT_MAX_HOLDBACK = 64;
const MIN_HOLDBACK = 48;
const MAX_HOLDBACK = 1024;

/**
 * The detector priority: which of two overlapping matches of the same tier
 * and length that start at the same place wins (see stream.ts for the whole
 * order). Secrets first (the most harmful to leak), then the entities in
 * order of how specific their validation is; custom detectors and
 * deny-lists after the built-ins, in profile order.
 */
const ENTITY_RANK: Record<EntityType, number> = {
  SECRET: 0,
  CREDIT_CARD: 1,
  US_SSN: 2,
  IBAN: 3,
  EMAIL: 4,
  IP_ADDRESS: 5,
  PHONE: 6,
};
const CUSTOM_RANK = 100;
const DENY_RANK = 1000;

function builtIns(entity: EntityType, window: number): Detector[] {
  const rank = ENTITY_RANK[entity];
  switch (entity) {
    case "EMAIL":
      return [new EmailDetector(rank, window)];
    case "PHONE":
      return [new PhoneDetector(rank)];
    case "CREDIT_CARD":
      return [new CardDetector(rank)];
    case "US_SSN":
      return [new SsnDetector(rank)];
    case "IBAN":
      return [new IbanDetector(rank)];
    case "IP_ADDRESS":
      return [new Ipv4Detector(rank), new Ipv6Detector(rank)];
    case "SECRET":
      return [new PemDetector(rank), new TokenDetector(rank, window), new AssignmentDetector(rank)];
  }
}

function fail(message: string, cause?: unknown): never {
  throw new MaskingError(message, cause === undefined ? undefined : { cause });
}

function buildPlan(profile: MaskingProfile, options: MaskerOptions): ScanPlan {
  const window = options.maxHoldback ?? DEFAULT_MAX_HOLDBACK;
  if (!Number.isInteger(window) || window < MIN_HOLDBACK || window > MAX_HOLDBACK) {
    fail(`maxHoldback must be an integer from ${MIN_HOLDBACK} to ${MAX_HOLDBACK}`);
  }
  if (!Array.isArray(profile.entities) || !Array.isArray(profile.custom) || !Array.isArray(profile.denyList)) {
    fail("a masking profile needs entities, custom and denyList lists");
  }
  const detectors: Detector[] = [];
  for (const entity of new Set(profile.entities)) {
    if (!(ENTITY_TYPES as readonly string[]).includes(entity)) fail(`unknown entity ${JSON.stringify(entity)}`);
    detectors.push(...builtIns(entity, window));
  }
  const validated = detectors.length;
  for (const [index, { name, pattern, flags = "" }] of profile.custom.entries()) {
    if (!MASK_NAME.test(name)) fail(`custom detector ${index}: the name must match ${MASK_NAME.source}`);
    if (!/^[ims]*$/.test(flags) || new Set(flags).size !== flags.length) {
      fail(`custom detector ${name}: only the flags i, m and s are allowed, each once`);
    }
    try {
      detectors.push(new RegexDetector(name, CUSTOM_RANK + index, compilePattern(pattern, flags, window)));
    } catch (error) {
      fail(`custom detector ${name}: ${error instanceof Error ? error.message : "cannot be compiled"}`, error);
    }
  }
  for (const [index, { name, terms }] of profile.denyList.entries()) {
    if (!MASK_NAME.test(name)) fail(`deny-list ${index}: the name must match ${MASK_NAME.source}`);
    if (!Array.isArray(terms) || terms.some((term) => typeof term !== "string")) {
      fail(`deny-list ${name}: terms must be strings`);
    }
  }
  const denied = new DenyListDetector(DENY_RANK, profile.denyList);
  if (!denied.empty) detectors.push(denied);
  if (profile.style === "hash" && !(options.hashKey instanceof Uint8Array && options.hashKey.length > 0)) {
    fail("the hash style needs a hashKey");
  }
  if (!["label", "partial", "hash"].includes(profile.style)) fail(`unknown style ${JSON.stringify(profile.style)}`);
  return {
    detectors,
    tiers: detectors.map((_, index) => (index < validated ? VALIDATED_TIER : PATTERN_TIER)),
    cap: window,
    renderer: createRenderer(profile.style, options.hashKey),
    context: Math.max(2, ...detectors.map((detector) => detector.lookBehind)),
  };
}

/**
 * The most characters a stream of this plan holds back. A detector's own
 * decision needs at most its `window`; a match that a rival starting inside
 * it could still outrank waits for that rival's decision, so it adds the
 * longest such match: up to `cap` for a validated entity (a longer one
 * cannot be outranked by a later start), a pattern's own window for a custom
 * pattern or deny-list term (any validated match inside it outranks it).
 */
function holdbackOf(plan: ScanPlan): number {
  const windows = plan.detectors.map((detector) => detector.window);
  const window = Math.max(0, ...windows);
  if (plan.detectors.length < 2) return window;
  const zone = Math.max(
    ...plan.detectors.map((detector, index) => (plan.tiers[index] === VALIDATED_TIER ? plan.cap : detector.window)),
  );
  return zone + window;
}

/**
 * Masks text under one masking profile. Built once per profile (and, for
 * the `hash` style, per session key); `maskText` and `createStream` can be
 * called any number of times, and masking a text whole or streaming it in
 * any chunks gives the same result.
 */
export class Masker {
  readonly profile: MaskingProfile;
  /** The most characters a stream of this masker can hold back. */
  readonly holdback: number;
  readonly #plan: ScanPlan;

  /** Throws MaskingError for a profile the engine cannot apply. */
  constructor(profile: MaskingProfile, options: MaskerOptions = {}) {
    this.#plan = buildPlan(profile, options);
    this.profile = profile;
    this.holdback = holdbackOf(this.#plan);
  }

  maskText(text: string): { text: string; counts: MaskCounts } {
    if (typeof text !== "string") throw new MaskingError("the text to mask must be a string");
    return MaskingScan.maskAll(this.#plan, text);
  }

  /** One logical text channel (for example `choices[0]`'s content in an SSE stream). */
  createStream(): MaskingStream {
    return new MaskingScan(this.#plan);
  }

  /** The values `maskText` replaces, in order. */
  detect(text: string): DetectedValue[] {
    const found: DetectedValue[] = [];
    MaskingScan.maskAll(this.#plan, text, found);
    return found;
  }
}
