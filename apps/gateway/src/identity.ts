// Who is calling: a service account with a modelgate API key, or a person
// (or workload) with an OIDC access token. Both end up as one `Identity`
// that the policy decision, the agent and the audit record see; the
// credential itself goes no further than this module.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { bearerToken, hashSecret, SECRET_PREFIX } from "@modelgate/core";
import { looksLikeJwt, MAX_TOKEN_LENGTH, type OidcVerifier, TokenError } from "@modelgate/identity";
import type { Subject } from "@modelgate/policy";
import type { ConfigStore } from "./config-store.js";
import { errorDialectFor, GatewayError } from "./errors.js";

export interface Identity {
  /** The OIDC user claim, or the API key's id for a service account. */
  subjectId: string;
  /** Human-readable: the API key's name; for a token its `name`, else its email, else the subject. */
  displayName: string;
  email: string | undefined;
  groups: readonly string[];
  authMethod: "api_key" | "oidc";
  /** The token's `jti`, or the API key's id. */
  tokenId: string | undefined;
  /** The token's issuer; undefined for API keys. */
  issuer: string | undefined;
}

// mg_ + 32 base62 characters, exactly what generateSecret issues. Anything
// else is refused before hashing, so garbage costs nothing.
const API_KEY_SHAPE = new RegExp(`^${SECRET_PREFIX.apiKey}[0-9A-Za-z]{32}$`);

const WWW_AUTHENTICATE = "www-authenticate";

/** Room for `Bearer` and spaces around a credential of the largest accepted size. */
const MAX_AUTHORIZATION_LENGTH = MAX_TOKEN_LENGTH + 64;

/**
 * Headers other clients put an API key in (Anthropic's `x-api-key`, Azure
 * OpenAI's `api-key`). The gateway reads them as the credential only where
 * that client's API is served: `x-api-key` on Anthropic's Messages API,
 * whose SDK sends nothing else. Elsewhere they only matter when they
 * disagree with `Authorization`. None is ever forwarded.
 */
const OTHER_CREDENTIAL_HEADERS = new Set(["x-api-key", "api-key"]);

export class Authenticator {
  readonly #store: ConfigStore;
  readonly #oidc: OidcVerifier | undefined;

  constructor(store: ConfigStore, oidc: OidcVerifier | undefined) {
    this.#store = store;
    this.#oidc = oidc;
  }

  async authenticate(req: IncomingMessage, now = Date.now()): Promise<Identity> {
    const { authorization, others, apiKeys } = credentialHeaders(req.rawHeaders);
    // Node keeps the first of several Authorization headers and drops the
    // rest; a proxy in front may keep the last. Two credentials are refused,
    // never resolved by whichever one a component happens to read.
    if (authorization.length > 1) throw ambiguous("the request carries more than one Authorization header");
    const header = authorization[0];
    if (!header && apiKeys.length > 0 && errorDialectFor(req.url ?? "/") === "anthropic") {
      // Anthropic's SDK sends its key as x-api-key only. Read here by the
      // same rules as Authorization: one header, one credential.
      if (apiKeys.length > 1) throw ambiguous("the request carries more than one x-api-key header");
      if (others.some((value) => value.trim() !== apiKeys[0]?.trim())) {
        throw ambiguous("the request carries different credentials in x-api-key and api-key");
      }
      return this.#credential((apiKeys[0] as string).trim(), now);
    }
    if (!header) {
      throw unauthenticated(
        "unauthenticated",
        others.length > 0
          ? "send the credential as Authorization: Bearer <credential>; x-api-key is read only on /v1/messages, api-key nowhere"
          : "missing Authorization: Bearer <API key or access token>",
      );
    }
    if (header.length > MAX_AUTHORIZATION_LENGTH) {
      throw unauthenticated("token_malformed", `the bearer token is larger than ${MAX_TOKEN_LENGTH} bytes`);
    }
    const token = bearerToken(header);
    if (!token) throw unauthenticated("unauthenticated", "the Authorization header must be Bearer <credential>");
    if (token.length > MAX_TOKEN_LENGTH) {
      throw unauthenticated("token_malformed", `the bearer token is larger than ${MAX_TOKEN_LENGTH} bytes`);
    }
    if (others.some((value) => value.trim() !== token)) {
      throw ambiguous("the request carries different credentials in Authorization and in x-api-key or api-key");
    }
    return this.#credential(token, now);
  }

  /** A credential read from one header: a modelgate API key or an access token. */
  async #credential(token: string, now: number): Promise<Identity> {
    if (token.length > MAX_TOKEN_LENGTH) {
      throw unauthenticated("token_malformed", `the bearer token is larger than ${MAX_TOKEN_LENGTH} bytes`);
    }
    if (token.startsWith(SECRET_PREFIX.apiKey)) return this.#apiKey(token, now);
    if (looksLikeJwt(token)) {
      if (this.#oidc) return this.#accessToken(this.#oidc, token);
      throw unauthenticated("unauthenticated", "access tokens are not accepted here; use a modelgate API key");
    }
    throw unauthenticated("unauthenticated", "the credential is neither a modelgate API key nor an access token");
  }

  #apiKey(token: string, now: number): Identity {
    if (!API_KEY_SHAPE.test(token)) throw unauthenticated("unauthenticated", "invalid API key");
    // Looked up by hash: the map holds no secrets, and the hash of a wrong
    // key reveals nothing about a right one.
    const key = this.#store.apiKeyByHash(hashSecret(token), now);
    if (!key) throw unauthenticated("unauthenticated", "invalid, revoked or expired API key");
    return {
      subjectId: key.id,
      displayName: key.name,
      email: undefined,
      groups: key.groups,
      authMethod: "api_key",
      tokenId: key.id,
      issuer: undefined,
    };
  }

  async #accessToken(oidc: OidcVerifier, token: string): Promise<Identity> {
    try {
      const verified = await oidc.verify(token);
      return {
        subjectId: verified.subject,
        displayName: verified.name ?? verified.email ?? verified.subject,
        email: verified.email,
        groups: verified.groups,
        authMethod: "oidc",
        tokenId: verified.tokenId,
        issuer: verified.issuer,
      };
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      if (error.status === 503) {
        throw new GatewayError("identity_provider_unavailable", "the identity provider cannot be reached; retry later");
      }
      throw unauthenticated(error.code, error.message);
    }
  }
}

function unauthenticated(code: GatewayError["code"], message: string): GatewayError {
  // RFC 6750: tell the client it was the token, not the request.
  const description = message.replace(/["\\]/g, "");
  return new GatewayError(code, message, null, {
    [WWW_AUTHENTICATE]: `Bearer error="invalid_token", error_description="${description}"`,
  });
}

/** A request whose credential is ambiguous is malformed, not merely unauthenticated (RFC 6750 §3.1). */
function ambiguous(message: string): GatewayError {
  return new GatewayError("invalid_request", message, null, {
    [WWW_AUTHENTICATE]: `Bearer error="invalid_request", error_description="${message}"`,
  });
}

/**
 * Every credential header as sent, from the raw header list: Node's parsed
 * `headers` keep only the first `Authorization` and join repeated others.
 */
function credentialHeaders(rawHeaders: readonly string[]): {
  authorization: string[];
  /** Every non-blank x-api-key and api-key header. */
  others: string[];
  /** The x-api-key headers among them. */
  apiKeys: string[];
} {
  const authorization: string[] = [];
  const others: string[] = [];
  const apiKeys: string[] = [];
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = (rawHeaders[index] as string).toLowerCase();
    const value = rawHeaders[index + 1] as string;
    if (name === "authorization") authorization.push(value);
    // A blank one carries no credential, so it cannot disagree.
    else if (OTHER_CREDENTIAL_HEADERS.has(name) && value.trim() !== "") {
      if (name === "x-api-key") apiKeys.push(value);
      else others.push(value);
    }
  }
  return { authorization, others: [...apiKeys, ...others], apiKeys };
}

/** What the policy engine matches: groups, the user (or key) and the email. */
export function subjectOf(identity: Identity): Subject {
  return {
    userId: identity.subjectId,
    email: identity.email,
    groups: identity.groups,
    apiKeyId: identity.authMethod === "api_key" ? identity.subjectId : undefined,
  };
}

/**
 * A fixed-length, non-reversible key for per-subject state shared through
 * Redis (rate-limit buckets): no emails or user ids in another system.
 */
export function subjectKey(identity: Identity): string {
  return createHash("sha256")
    .update(`${identity.authMethod}\n${identity.issuer ?? ""}\n${identity.subjectId}`)
    .digest("base64url")
    .slice(0, 22);
}
