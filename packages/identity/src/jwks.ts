import { createRemoteJWKSet, customFetch, type FetchImplementation, type JWTVerifyGetKey } from "jose";
import { describeError } from "./errors.js";
import type { OidcLogger } from "./options.js";

/** The issuer's keys could not be obtained; the token was not judged (503). */
export class KeySetUnavailableError extends Error {
  override name = "KeySetUnavailableError";
}

export interface IssuerKeySetOptions {
  issuer: string;
  jwksUri: URL;
  cooldownMs: number;
  cacheMaxAgeMs: number;
  timeoutMs: number;
  logger: OidcLogger | undefined;
}

export interface IssuerKeySet {
  /** Key resolver for jose's `jwtVerify`. */
  getKey: JWTVerifyGetKey;
  /** Loads the key set ahead of the first token; failures are logged, not thrown. */
  prefetch(): Promise<void>;
}

/**
 * The issuer's JWKS, cached by jose's remote key set: fetched when first
 * needed, again after `cacheMaxAgeMs`, and when a token names an unknown
 * `kid` but at most once per `cooldownMs` (counted from the last successful
 * fetch; concurrent misses share one request). So a flood of tokens with
 * made-up kids costs the IdP one request per cooldown.
 *
 * jose only counts successful fetches towards the cooldown: while the IdP
 * fails, every miss would fetch again. The fetch below closes that gap by
 * refusing to fetch for `cooldownMs` after a failure, so a struggling IdP is
 * not hit harder than a healthy one. Keys already cached keep verifying
 * meanwhile (until `cacheMaxAgeMs` runs out).
 */
export function createIssuerKeySet(options: IssuerKeySetOptions): IssuerKeySet {
  const { issuer, jwksUri, cooldownMs, logger } = options;
  let failedAt = Number.NEGATIVE_INFINITY;

  const fetchKeys: FetchImplementation = async (url, init) => {
    if (Date.now() - failedAt < cooldownMs) {
      throw new KeySetUnavailableError("JWKS fetch suppressed after a recent failure");
    }
    let response: Response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      failedAt = Date.now();
      logger?.warn({ issuer, jwksUri: url, err: describeError(error) }, "JWKS fetch failed");
      throw error;
    }
    if (response.status !== 200) {
      failedAt = Date.now();
      await response.body?.cancel();
      logger?.warn({ issuer, jwksUri: url, status: response.status }, "JWKS fetch failed");
    } else {
      logger?.info({ issuer, jwksUri: url }, "JWKS fetched");
    }
    return response;
  };

  const remote = createRemoteJWKSet(jwksUri, {
    cooldownDuration: cooldownMs,
    cacheMaxAge: options.cacheMaxAgeMs,
    timeoutDuration: Math.round(options.timeoutMs),
    [customFetch]: fetchKeys,
  });

  return {
    async getKey(header, token) {
      try {
        return await remote(header, token);
      } catch (error) {
        // A miss is the token's fault; anything else (network, timeout,
        // non-200, unparsable set) is the IdP's, and must not read as a
        // forged token.
        if (isKeyMiss(error)) throw error;
        throw new KeySetUnavailableError("the JWKS could not be obtained", { cause: error });
      }
    },
    async prefetch() {
      try {
        await remote.reload();
      } catch {
        // Logged by fetchKeys; the next token retries after the cooldown.
      }
    },
  };
}

function isKeyMiss(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS";
}
