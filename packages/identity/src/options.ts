/** One trusted identity provider. */
export interface OidcIssuerConfig {
  /** The issuer exactly as the discovery document and the tokens' `iss` spell it. */
  issuer: string;
  /** Accepted `aud` values; a token must name at least one of them. */
  audience: string | string[];
  /**
   * Where the groups are: a top-level name ("groups", "roles"), a dotted path
   * ("realm_access.roles") or a namespaced claim ("https://example.com/groups"),
   * or several of these, whose groups are merged (first claim's first). A
   * claim that is absent from a token adds no groups.
   */
  groupsClaim: string | readonly string[];
  /** The claim that identifies the user, usually "sub". */
  userClaim: string;
}

/** The subset of a pino logger the verifier uses. */
export interface OidcLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface OidcVerifierOptions {
  issuers: OidcIssuerConfig[];
  /** Allow http:// issuers and JWKS URIs. Development and tests only; default false. */
  allowInsecureRequests?: boolean;
  /** Accepted clock skew for `exp` and `nbf`, in seconds; default 30. */
  clockToleranceSeconds?: number;
  /**
   * Minimum interval between JWKS fetches caused by tokens whose `kid` is not
   * in the cached set, and after a failed fetch; default 30 000 ms.
   */
  jwksCooldownMs?: number;
  /** How long a fetched JWKS is used before it is fetched again; default 600 000 ms. */
  jwksCacheMaxAgeMs?: number;
  /** Timeout of discovery and JWKS requests; default 5 000 ms. */
  httpTimeoutMs?: number;
  /** First delay before discovery of an unreachable issuer is retried; default 1 000 ms. */
  discoveryRetryInitialMs?: number;
  /** Longest delay between discovery retries; default 60 000 ms. */
  discoveryRetryMaxMs?: number;
  logger?: OidcLogger;
}

/** What a verified access token says about its bearer. */
export interface VerifiedToken {
  authMethod: "oidc";
  issuer: string;
  /** The value of the issuer's `userClaim`. */
  subject: string;
  /** The raw `sub` claim. */
  sub: string;
  email: string | undefined;
  /** The `name` claim, when the token has a usable one: how people call this caller (audit, usage). */
  name: string | undefined;
  /** From the issuer's `groupsClaim` (merged when it lists several); empty when none is present. */
  groups: string[];
  /** The `jti` claim, when present. */
  tokenId: string | undefined;
  /** `exp` in Unix milliseconds. */
  expiresAt: number;
}
