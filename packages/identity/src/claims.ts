import type { JWTPayload } from "jose";
import { TokenError } from "./errors.js";

// Bounds on what a token may make us carry into policy decisions, audit rows
// and logs. IdPs that emit more groups than this usually switch to an
// overage claim (Entra) anyway, which we do not follow.
const MAX_GROUPS = 256;
const MAX_GROUP_LENGTH = 256;
const MAX_SUBJECT_LENGTH = 256;
// RFC 5321 allows 64 + 1 + 255 characters.
const MAX_EMAIL_LENGTH = 320;
const MAX_TOKEN_ID_LENGTH = 256;

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads a claim by name or dotted path. A name that exists literally at the
 * top level wins, because namespaced claims are URLs full of dots
 * ("https://example.com/groups"); otherwise the path is walked through nested
 * objects ("realm_access.roles"). Only own properties are followed, so a path
 * like "constructor.name" finds nothing.
 */
export function readClaim(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let current: unknown = payload;
  for (const segment of path.split(".")) {
    if (!isObject(current) || !Object.hasOwn(current, segment)) return undefined;
    current = current[segment];
  }
  return current;
}

/**
 * The union of the groups in every listed claim, in the order the claims are
 * listed (so the first claim's groups come first), duplicates collapsed. Each
 * claim may be an array of strings or a single string; other members are
 * ignored, and a claim that is absent or of another type adds no groups
 * (policies are default-deny, so fewer groups never grant more). Too many
 * groups in the merged set, or one too long in any claim, refuse the token
 * rather than silently dropping some.
 */
export function groupsFrom(payload: JWTPayload, paths: readonly string[]): string[] {
  const groups = new Set<string>();
  for (const path of paths) {
    const value = readClaim(payload, path);
    const candidates = typeof value === "string" ? [value] : Array.isArray(value) ? value : [];
    for (const candidate of candidates) {
      if (typeof candidate !== "string" || candidate === "") continue;
      if (candidate.length > MAX_GROUP_LENGTH) throw new TokenError("token_claims_invalid");
      groups.add(candidate);
    }
  }
  if (groups.size > MAX_GROUPS) throw new TokenError("token_claims_invalid");
  return [...groups];
}

/** A required identifier claim: a non-empty string of bounded length. */
export function requiredIdentifier(value: unknown): string {
  if (typeof value !== "string" || value === "" || value.length > MAX_SUBJECT_LENGTH) {
    throw new TokenError("token_claims_invalid");
  }
  return value;
}

/** Enough of an address to tell it from a user id: something@domain. */
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+$/;

/** The email when it is a plausible one; anything else is left out, not refused. */
export function optionalEmail(value: unknown): string | undefined {
  return typeof value === "string" && value.length <= MAX_EMAIL_LENGTH && EMAIL_SHAPE.test(value) ? value : undefined;
}

/** A display name, never used to decide anything: trimmed, without control characters, at most 256 characters. */
export function optionalName(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const name = value.replace(/\p{Cc}/gu, " ").trim();
  return name === "" ? undefined : name.slice(0, 256).toWellFormed();
}

export function optionalTokenId(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" && value.length <= MAX_TOKEN_ID_LENGTH ? value : undefined;
}
