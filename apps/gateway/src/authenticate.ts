// Who is calling. This issue knows modelgate API keys; OIDC access tokens
// join them with the identity work, behind the same `Identity`.
import type { IncomingMessage } from "node:http";
import { bearerToken, hashSecret, SECRET_PREFIX } from "@modelgate/core";
import type { ConfigStore } from "./config-store.js";
import { GatewayError } from "./errors.js";

export interface Identity {
  /** Stable id of the subject: the API key's id for service accounts. */
  subjectId: string;
  /** Human-readable name (key name, later the user's email). */
  displayName: string;
  groups: readonly string[];
  authMethod: "api_key";
}

// mg_ + 32 base62 characters, exactly what generateSecret issues. Anything
// else is refused before hashing, so garbage costs nothing.
const API_KEY_SHAPE = new RegExp(`^${SECRET_PREFIX.apiKey}[0-9A-Za-z]{32}$`);

export function authenticate(req: IncomingMessage, store: ConfigStore, now = Date.now()): Identity {
  const header = req.headers.authorization;
  if (!header) throw new GatewayError("unauthenticated", "missing Authorization: Bearer <API key>");
  const token = bearerToken(header);
  if (!token) throw new GatewayError("unauthenticated", "Authorization header must be Bearer <API key>");
  if (!API_KEY_SHAPE.test(token)) throw new GatewayError("unauthenticated", "invalid API key");
  // Looked up by hash: the map holds no secrets, and the hash of a wrong
  // key reveals nothing about a right one.
  const key = store.apiKeyByHash(hashSecret(token), now);
  if (!key) throw new GatewayError("unauthenticated", "invalid, revoked or expired API key");
  return { subjectId: key.id, displayName: key.name, groups: key.groups, authMethod: "api_key" };
}
