/**
 * Why an access token was refused. The codes are stable: the gateway and the
 * control plane return them to clients and count them in metrics, so a
 * rename is a breaking change.
 */
export type TokenErrorCode =
  | "token_malformed"
  | "token_expired"
  | "token_not_yet_valid"
  | "token_audience_invalid"
  | "token_issuer_untrusted"
  | "token_signature_invalid"
  | "token_algorithm_refused"
  | "token_key_unknown"
  | "token_claims_invalid"
  | "identity_provider_unavailable";

// Messages are shown to callers, so they describe the rule that failed and
// never echo anything taken from the token.
const MESSAGES: Record<TokenErrorCode, string> = {
  token_malformed: "the access token is not a well-formed signed JWT",
  token_expired: "the access token has expired",
  token_not_yet_valid: "the access token is not valid yet",
  token_audience_invalid: "the access token was issued for another audience",
  token_issuer_untrusted: "the access token was issued by an untrusted issuer",
  token_signature_invalid: "the access token signature is invalid",
  token_algorithm_refused: "the access token uses a signing algorithm that is not accepted",
  token_key_unknown: "the access token was signed with a key the issuer does not publish",
  token_claims_invalid: "the access token claims are missing, of the wrong type or too large",
  identity_provider_unavailable: "the identity provider cannot be reached; retry later",
};

/**
 * The only error `OidcVerifier.verify` throws. `status` is 503 when the token
 * could not be checked (the caller may retry) and 401 when it was checked and
 * refused.
 */
export class TokenError extends Error {
  override name = "TokenError";
  readonly code: TokenErrorCode;
  readonly status: 401 | 503;

  /**
   * `detail` replaces the code's general message with a more precise one. It
   * must be a fixed sentence of this package, never text taken from a token.
   */
  constructor(code: TokenErrorCode, detail?: string) {
    // No `cause`: jose errors carry the decoded claims, and a TokenError is
    // meant to be logged and returned freely.
    super(detail ?? MESSAGES[code]);
    this.code = code;
    this.status = code === "identity_provider_unavailable" ? 503 : 401;
  }
}

/**
 * The parts of an unexpected error that are safe to log. Whole error objects
 * are not logged: jose's claim errors carry the decoded token payload.
 */
export function describeError(error: unknown): { name: string; message: string; code?: string } {
  if (!(error instanceof Error)) return { name: typeof error, message: String(error) };
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
  return {
    name: error.name,
    message: error.message + cause,
    ...(typeof code === "string" ? { code } : {}),
  };
}
