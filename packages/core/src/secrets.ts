import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** Prefixes make leaked credentials easy to grep for and to tell apart. */
export const SECRET_PREFIX = {
  apiKey: "mg_",
  agentToken: "mgagent_",
} as const;

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** 32 base62 characters carry about 190 bits of entropy. */
const SECRET_BODY_LENGTH = 32;
/** How many characters of a secret are kept in clear to identify it in lists. */
const DISPLAY_PREFIX_BODY_CHARS = 4;

/**
 * A new random credential: `prefix` followed by 32 base62 characters.
 * Rejection sampling keeps every character uniformly distributed.
 */
export function generateSecret(prefix: string): string {
  let body = "";
  while (body.length < SECRET_BODY_LENGTH) {
    for (const byte of randomBytes(SECRET_BODY_LENGTH * 2)) {
      // 248 = 62 * 4: bytes at or above it would bias the first characters.
      if (byte < 248 && body.length < SECRET_BODY_LENGTH) body += BASE62[byte % 62];
    }
  }
  return prefix + body;
}

/**
 * The stored form of a credential. Our secrets are long and random, so a fast
 * hash is enough (there is nothing to brute-force) and lets the gateway look a
 * presented key up by its hash without a slow KDF on every request.
 */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** The first characters of a secret, safe to show in listings and logs. */
export function secretDisplayPrefix(secret: string, prefix: string): string {
  return secret.slice(0, prefix.length + DISPLAY_PREFIX_BODY_CHARS);
}

/**
 * Compares two secrets in time independent of where they differ. Hashing
 * first gives equal-length inputs, so not even the length leaks.
 */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

/** Compares a presented secret with a stored SHA-256 hex digest in constant time. */
export function secretMatchesHash(presented: string, storedHashHex: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = Buffer.from(storedHashHex, "hex");
  return b.length === a.length && timingSafeEqual(a, b);
}
