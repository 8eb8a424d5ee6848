import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from "jose";
import { TokenError } from "./errors.js";

/**
 * Longer tokens are refused before any parsing. Real access tokens stay well
 * below 8 KiB (HTTP servers commonly cap a header at 8–16 KiB), and base64
 * and JSON decoding of attacker-sized input is work we need not do.
 */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/**
 * Asymmetric algorithms only. Symmetric ones (HS*) would let anyone holding
 * the verification key mint tokens, and accepting them is how the classic
 * "HS256 signed with the RSA public key" confusion works; `none` is no
 * signature at all. EdDSA is left out because the common IdPs do not issue it.
 */
export const ALLOWED_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
];

const ALLOWED = new Set(ALLOWED_ALGORITHMS);

// Three base64url segments; the signature may be empty so that `alg: none`
// tokens reach the verifier and are refused with a precise code.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
// Five segments: header, encrypted key (empty for direct encryption), IV,
// ciphertext, tag (RFC 7516 §7.1).
const COMPACT_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

// Fixed sentences: refusals never carry anything taken from the token.
const TOO_LARGE = `the access token is larger than ${MAX_TOKEN_LENGTH} bytes`;
const ENCRYPTED = "encrypted tokens (JWE) are not accepted; send a signed access token (JWS)";

/**
 * A cheap test for "this bearer credential is meant to be a JWT", for callers
 * that accept both API keys and access tokens. It says nothing about validity:
 * encrypted (JWE) tokens count too, so that the verifier refuses them as
 * such rather than the caller as "not a credential" at all.
 */
export function looksLikeJwt(token: string): boolean {
  return typeof token === "string" && (COMPACT_JWS.test(token) || COMPACT_JWE.test(token));
}

export interface UnverifiedToken {
  header: ProtectedHeaderParameters;
  payload: JWTPayload;
}

/**
 * Decodes header and payload without checking the signature, to pick the
 * issuer configuration and refuse bad algorithms before any key lookup (a
 * lookup can cause a JWKS fetch). Nothing decoded here is trusted further.
 */
export function decodeUnverified(token: string): UnverifiedToken {
  if (typeof token !== "string") throw new TokenError("token_malformed");
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenError("token_malformed", TOO_LARGE);
  if (COMPACT_JWE.test(token)) throw new TokenError("token_malformed", ENCRYPTED);
  if (!COMPACT_JWS.test(token)) throw new TokenError("token_malformed");
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new TokenError("token_malformed");
  }
  // The algorithm is judged before the payload is even decoded: an `alg: none`
  // token is refused as such whatever it carries.
  if (typeof header.alg !== "string" || !ALLOWED.has(header.alg)) throw new TokenError("token_algorithm_refused");
  try {
    return { header, payload: decodeJwt(token) };
  } catch {
    throw new TokenError("token_malformed");
  }
}
