export { oidcOptionsFromEnv } from "./env.js";
export { TokenError, type TokenErrorCode } from "./errors.js";
export type { OidcIssuerConfig, OidcLogger, OidcVerifierOptions, VerifiedToken } from "./options.js";
export { looksLikeJwt, MAX_TOKEN_LENGTH } from "./token-shape.js";
export { OidcVerifier } from "./verifier.js";
