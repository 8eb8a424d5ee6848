/** The built-in detectors, in the order profiles and counts list them. */
export const ENTITY_TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET"] as const;
export type EntityType = (typeof ENTITY_TYPES)[number];

/** `label`: `[EMAIL]`; `partial`: cards and phones keep their last 4 digits; `hash`: `<EMAIL_3f9a>`. */
export type MaskingStyle = "label" | "partial" | "hash";

export interface CustomDetector {
  /** Count key and label: `^[A-Z][A-Z0-9_]{0,31}$`. */
  name: string;
  /** A JavaScript regular expression, compiled with `flags` + "u". */
  pattern: string;
  /** A subset of "ims". */
  flags?: string;
}

export interface DenyList {
  name: string;
  /** Literal terms, matched case-insensitively as whole words. */
  terms: string[];
}

export interface MaskingProfile {
  entities: EntityType[];
  custom: CustomDetector[];
  denyList: DenyList[];
  style: MaskingStyle;
  /** JSON paths for the response adapters; the engine masks whatever text it is given. */
  fields: string[];
  onError: "block" | "pass";
  maskPromptsInAudit: boolean;
}

/** A custom detector's or deny-list's name. */
export const MASK_NAME = /^[A-Z][A-Z0-9_]{0,31}$/;

/** Strongest first: a label says least about the value, a partial mask most. */
const STYLE_STRENGTH: Record<MaskingStyle, number> = { label: 3, hash: 2, partial: 1 };

function unique<T>(items: Iterable<T>, key: (item: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const item of items) {
    const id = key(item);
    if (!seen.has(id)) seen.set(id, item);
  }
  return [...seen.values()];
}

/**
 * The union of several grants' profiles, so that masking is never weakened
 * by a second policy: every entity, custom detector, deny-list term and
 * field of each; the strongest style (label > hash > partial); `block` if
 * any blocks; audit masking if any asks for it. Deny-lists with the same
 * name are merged into one list with the union of their terms. Undefined
 * for no profiles.
 */
export function mergeProfiles(profiles: readonly MaskingProfile[]): MaskingProfile | undefined {
  const [first] = profiles;
  if (first === undefined) return undefined;
  const entities = new Set(profiles.flatMap((profile) => profile.entities));
  const terms = new Map<string, string[]>();
  for (const list of profiles.flatMap((profile) => profile.denyList)) {
    terms.set(list.name, [...(terms.get(list.name) ?? []), ...list.terms]);
  }
  let style = first.style;
  for (const profile of profiles) {
    if (STYLE_STRENGTH[profile.style] > STYLE_STRENGTH[style]) style = profile.style;
  }
  return {
    entities: ENTITY_TYPES.filter((entity) => entities.has(entity)),
    custom: unique(
      profiles.flatMap((profile) => profile.custom),
      (detector) => JSON.stringify([detector.name, detector.pattern, normalizeFlags(detector.flags)]),
    ),
    denyList: [...terms].map(([name, list]) => ({ name, terms: [...new Set(list)] })),
    style,
    // An empty list means "the protocol's defaults", which no explicit list
    // may narrow: callers resolve each profile's fields (resolveFields)
    // before merging, and an empty one left here keeps the merge empty.
    fields: profiles.some((profile) => profile.fields.length === 0)
      ? []
      : [...new Set(profiles.flatMap((profile) => profile.fields))],
    onError: profiles.some((profile) => profile.onError === "block") ? "block" : "pass",
    maskPromptsInAudit: profiles.some((profile) => profile.maskPromptsInAudit),
  };
}

/** Flags in a canonical order, so "mi" and "im" are the same detector. */
function normalizeFlags(flags: string | undefined): string {
  return [...(flags ?? "")].sort().join("");
}

/**
 * The profile with its fields made explicit for a protocol: a profile that
 * names none gets the protocol's defaults. Resolve before merging, so a
 * second policy's explicit fields add to the first's defaults instead of
 * replacing them. (`http` has no defaults: empty there means every string.)
 */
export function resolveFields(profile: MaskingProfile, defaults: readonly string[]): MaskingProfile {
  return profile.fields.length > 0 || defaults.length === 0 ? profile : { ...profile, fields: [...defaults] };
}
