import { ConfigError } from "@modelgate/core";
import { type JWTPayload, jwtVerify } from "jose";
import { groupsFrom, optionalEmail, optionalName, optionalTokenId, readClaim, requiredIdentifier } from "./claims.js";
import { describeError, TokenError, type TokenErrorCode } from "./errors.js";
import { TrustedIssuer } from "./issuer.js";
import { KeySetUnavailableError } from "./jwks.js";
import type { OidcIssuerConfig, OidcLogger, OidcVerifierOptions, VerifiedToken } from "./options.js";
import { ALLOWED_ALGORITHMS, decodeUnverified } from "./token-shape.js";

const DEFAULTS = {
  clockToleranceSeconds: 30,
  jwksCooldownMs: 30_000,
  jwksCacheMaxAgeMs: 600_000,
  httpTimeoutMs: 5_000,
  discoveryRetryInitialMs: 1_000,
  discoveryRetryMaxMs: 60_000,
} as const;

const ALGORITHMS = [...ALLOWED_ALGORITHMS];

/**
 * Verifies OIDC access tokens (JWTs) from a fixed set of trusted issuers,
 * for the gateway and the control plane alike.
 *
 * The order of checks matters: shape and algorithm first (free), then the
 * issuer by the unverified `iss` (a table lookup), and only then the key
 * lookup, which can cost a JWKS fetch. So garbage and tokens from strangers
 * never reach an IdP.
 */
export class OidcVerifier {
  readonly #issuers: ReadonlyMap<string, TrustedIssuer>;
  readonly #clockToleranceSeconds: number;
  readonly #logger: OidcLogger | undefined;

  constructor(options: OidcVerifierOptions) {
    const allowInsecure = options.allowInsecureRequests ?? false;
    this.#clockToleranceSeconds = nonNegative(
      "clockToleranceSeconds",
      options.clockToleranceSeconds,
      DEFAULTS.clockToleranceSeconds,
    );
    this.#logger = options.logger;
    const settings = {
      allowInsecureRequests: allowInsecure,
      jwksCooldownMs: nonNegative("jwksCooldownMs", options.jwksCooldownMs, DEFAULTS.jwksCooldownMs),
      jwksCacheMaxAgeMs: nonNegative("jwksCacheMaxAgeMs", options.jwksCacheMaxAgeMs, DEFAULTS.jwksCacheMaxAgeMs),
      httpTimeoutMs: nonNegative("httpTimeoutMs", options.httpTimeoutMs, DEFAULTS.httpTimeoutMs),
      retryInitialMs: nonNegative(
        "discoveryRetryInitialMs",
        options.discoveryRetryInitialMs,
        DEFAULTS.discoveryRetryInitialMs,
      ),
      retryMaxMs: nonNegative("discoveryRetryMaxMs", options.discoveryRetryMaxMs, DEFAULTS.discoveryRetryMaxMs),
      logger: options.logger,
    };
    if (options.issuers.length === 0) throw new ConfigError("OIDC: at least one issuer is required");
    const issuers = new Map<string, TrustedIssuer>();
    for (const config of options.issuers) {
      checkIssuerConfig(config, allowInsecure);
      if (issuers.has(config.issuer)) throw new ConfigError(`OIDC: issuer ${config.issuer} is configured twice`);
      issuers.set(config.issuer, new TrustedIssuer(config, settings));
    }
    this.#issuers = issuers;
  }

  /**
   * Discovers every issuer, in parallel. Never rejects: an issuer that
   * cannot be discovered is logged and retried in the background, and its
   * tokens are answered with `identity_provider_unavailable` meanwhile.
   */
  async start(): Promise<void> {
    await Promise.all([...this.#issuers.values()].map((issuer) => issuer.start()));
  }

  /** Verifies an access token. Rejects only with a `TokenError`. */
  async verify(token: string): Promise<VerifiedToken> {
    try {
      return await this.#verify(token);
    } catch (error) {
      throw this.#refusal(error);
    }
  }

  status(): { issuer: string; discovered: boolean }[] {
    return [...this.#issuers.values()].map((trusted) => ({
      issuer: trusted.config.issuer,
      discovered: trusted.discovered,
    }));
  }

  /** Stops background discovery retries. */
  close(): void {
    for (const issuer of this.#issuers.values()) issuer.close();
  }

  async #verify(token: string): Promise<VerifiedToken> {
    const { payload: unverified } = decodeUnverified(token);
    const trusted = typeof unverified.iss === "string" ? this.#issuers.get(unverified.iss) : undefined;
    if (!trusted) throw new TokenError("token_issuer_untrusted");
    const keys = trusted.keys;
    if (!keys) throw new TokenError("identity_provider_unavailable");
    const { config } = trusted;
    const { payload } = await jwtVerify(token, keys.getKey, {
      issuer: config.issuer,
      audience: config.audience,
      algorithms: ALGORITHMS,
      clockTolerance: this.#clockToleranceSeconds,
      requiredClaims: ["exp"],
    });
    return verifiedToken(config, payload);
  }

  #refusal(error: unknown): TokenError {
    if (error instanceof TokenError) return error;
    if (error instanceof KeySetUnavailableError) return new TokenError("identity_provider_unavailable");
    const code = joseRefusal(error);
    if (code) return new TokenError(code);
    // A bug or a jose failure we did not foresee: refuse the token, and say
    // so in the log without the token or its claims.
    this.#logger?.warn({ err: describeError(error) }, "unexpected error while verifying an access token");
    return new TokenError("token_malformed");
  }
}

/**
 * An address the IdP itself marks unverified (`false`, or the string some
 * IdPs send) may have been typed in by the user, so it must not match
 * email-based policies. Tokens that say nothing are taken as the IdP's word:
 * many access tokens (Entra ID, Okta) carry no `email_verified`.
 */
function emailUnverified(payload: JWTPayload): boolean {
  const verified = payload.email_verified;
  return verified !== undefined && verified !== true && verified !== "true";
}

/** Claims only ID tokens carry: an ID token is proof of a login to a client, not a grant to call an API. */
const ID_TOKEN_CLAIMS = ["nonce", "at_hash", "c_hash", "s_hash"];

function verifiedToken(config: OidcIssuerConfig, payload: JWTPayload): VerifiedToken {
  if (typeof payload.exp !== "number") throw new TokenError("token_claims_invalid");
  if (ID_TOKEN_CLAIMS.some((claim) => claim in payload)) throw new TokenError("token_claims_invalid");
  const unverified = emailUnverified(payload);
  // With the email as the user claim, an unverified one names nobody.
  if (unverified && config.userClaim === "email") throw new TokenError("token_claims_invalid");
  return {
    authMethod: "oidc",
    issuer: config.issuer,
    subject: requiredIdentifier(readClaim(payload, config.userClaim)),
    sub: requiredIdentifier(payload.sub),
    email: unverified ? undefined : optionalEmail(payload.email),
    name: optionalName(payload.name),
    groups: groupsFrom(payload, groupsClaims(config)),
    tokenId: optionalTokenId(payload.jti),
    expiresAt: payload.exp * 1000,
  };
}

/** The refusal a jose error stands for; undefined when it is not one we expect. */
function joseRefusal(error: unknown): TokenErrorCode | undefined {
  const { code, claim } = (error ?? {}) as { code?: unknown; claim?: unknown };
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return "token_expired";
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (claim === "nbf") return "token_not_yet_valid";
      if (claim === "aud") return "token_audience_invalid";
      if (claim === "iss") return "token_issuer_untrusted";
      return "token_claims_invalid";
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return "token_signature_invalid";
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return "token_algorithm_refused";
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return "token_key_unknown";
    case "ERR_JWKS_TIMEOUT":
      return "identity_provider_unavailable";
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
    // Unrecognised `crit` header parameters.
    case "ERR_JOSE_NOT_SUPPORTED":
      return "token_malformed";
    default:
      return undefined;
  }
}

function checkIssuerConfig(config: OidcIssuerConfig, allowInsecure: boolean): void {
  const url = URL.parse(config.issuer);
  if (!url) throw new ConfigError(`OIDC: issuer ${JSON.stringify(config.issuer)} is not an absolute URL`);
  if (url.protocol === "http:" && !allowInsecure) {
    throw new ConfigError(`OIDC: issuer ${config.issuer} uses http; allow insecure requests only for development`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError(`OIDC: issuer ${config.issuer} must be an https URL`);
  }
  const audiences = Array.isArray(config.audience) ? config.audience : [config.audience];
  if (audiences.length === 0 || audiences.some((audience) => typeof audience !== "string" || audience === "")) {
    throw new ConfigError(`OIDC: issuer ${config.issuer} needs at least one non-empty audience`);
  }
  if (typeof config.userClaim !== "string" || config.userClaim === "") {
    throw new ConfigError(`OIDC: issuer ${config.issuer} needs a non-empty userClaim`);
  }
  const claims: unknown[] = Array.isArray(config.groupsClaim) ? config.groupsClaim : [config.groupsClaim];
  if (claims.length === 0 || claims.some((claim) => typeof claim !== "string" || claim === "")) {
    throw new ConfigError(`OIDC: issuer ${config.issuer} needs a non-empty groupsClaim`);
  }
  if (new Set(claims).size !== claims.length) {
    throw new ConfigError(`OIDC: issuer ${config.issuer} lists a groupsClaim twice`);
  }
}

function groupsClaims(config: OidcIssuerConfig): readonly string[] {
  return typeof config.groupsClaim === "string" ? [config.groupsClaim] : config.groupsClaim;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new ConfigError(`OIDC: ${name} must be a non-negative number`);
  return value;
}
