// The route stage: what a request is for, decided from its method and path
// alone, before a byte of its body is read. A caller with no grant that
// could admit it is refused here, so a key without grants cannot make the
// gateway hold a body (or anything else) for it.
import { resolveRuntimePath, UnsafePathError } from "@modelgate/core";
import {
  type ConnectionProtocol,
  classifyNativeRequest,
  classifyOpenAiRoute,
  OPERATIONS,
  type PolicySet,
  type RequestKind,
  type Subject,
} from "@modelgate/policy";
import type { Protocol } from "@modelgate/protocol";
import type { ConfigStore, ConnectionConfig } from "./config-store.js";
import { GatewayError } from "./errors.js";

/** OpenAI routes whose body names the model. */
export const MODEL_ROUTES: ReadonlySet<string> = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  // Anthropic's Messages API, for Anthropic's clients (vLLM and Ollama serve it).
  "/v1/messages",
  // OpenAI's Responses API (vLLM and Ollama serve it).
  "/v1/responses",
  // vLLM's rerank and score (embeddings: they generate nothing).
  "/v1/rerank",
  "/v1/score",
]);

export const MODELS_LIST_ROUTE = "/v1/models";

/** `GET /v1/models/{id}`: one model of the list; the id may hold slashes, sent as they are or as `%2F`. */
const MODEL_ROUTE_PREFIX = `${MODELS_LIST_ROUTE}/`;

export type Route =
  /**
   * `GET /v1/models` (no `id`) or `/v1/models/{id}` (one of them): the
   * models the caller may list, answered by the gateway.
   */
  | { type: "models"; id?: string }
  /** An OpenAI route; the connection follows from the model the body names. */
  | { type: "openai"; kind: RequestKind; pathname: string; path: string }
  /** `/c/{connection}/<path>`: the connection's own API. */
  | { type: "native"; kind: RequestKind; connection: ConnectionConfig; path: string; name: string };

const PROTOCOL_NAMES: Record<Extract<Protocol, string>, ConnectionProtocol> = {
  PROTOCOL_OPENAI: "openai",
  PROTOCOL_OLLAMA: "ollama",
  PROTOCOL_TGI: "tgi",
  PROTOCOL_HTTP: "http",
  // An unknown protocol gets no parsing: everything on it is `raw`.
  PROTOCOL_UNSPECIFIED: "http",
};

export function protocolOf(connection: ConnectionConfig): ConnectionProtocol {
  return PROTOCOL_NAMES[connection.protocol as Extract<Protocol, string>];
}

/**
 * Resolves the request line to a route the subject may have a grant for,
 * or throws the refusal. Refusals read the same for what does not exist and
 * what the caller may not use: no existence oracle.
 */
export function routeRequest(
  store: Pick<ConfigStore, "connectionByName" | "policies">,
  method: string,
  rawUrl: string,
  subject: Subject,
): Route {
  const queryStart = rawUrl.indexOf("?");
  const pathname = queryStart === -1 ? rawUrl : rawUrl.slice(0, queryStart);
  if (pathname === MODELS_LIST_ROUTE) {
    if (method !== "GET") throw new GatewayError("method_not_allowed", `${MODELS_LIST_ROUTE} accepts GET only`);
    return { type: "models" };
  }
  if (pathname.startsWith(MODEL_ROUTE_PREFIX) && pathname.length > MODEL_ROUTE_PREFIX.length) {
    if (method !== "GET") throw new GatewayError("method_not_allowed", `${MODELS_LIST_ROUTE}/{id} accepts GET only`);
    return { type: "models", id: decodedModelId(pathname.slice(MODEL_ROUTE_PREFIX.length)) };
  }
  if (pathname.startsWith("/c/")) return routeNative(store, method, rawUrl, pathname, queryStart, subject);
  if (MODEL_ROUTES.has(pathname)) return routeOpenAi(store.policies, method, rawUrl, pathname, subject);
  throw new GatewayError("not_found", `no route for ${method} ${pathname}`);
}

function routeNative(
  store: Pick<ConfigStore, "connectionByName" | "policies">,
  method: string,
  rawUrl: string,
  pathname: string,
  queryStart: number,
  subject: Subject,
): Route {
  const rest = pathname.slice(3);
  const slash = rest.indexOf("/");
  const name = slash === -1 ? rest : rest.slice(0, slash);
  const connection = store.connectionByName(name);
  // A connection that does not exist and one the caller has no grant on
  // get the same answer, before anything else about the request (its
  // path, its body) is looked at.
  if (!connection || !store.policies.mayUse(subject, connection.name)) {
    throw new GatewayError("model_not_allowed", `connection "${name}" does not exist or is not available to you`);
  }
  const runtimePathOnly = slash === -1 ? "/" : rest.slice(slash);
  const path = runtimePathOnly + (queryStart === -1 ? "" : rawUrl.slice(queryStart));
  try {
    // The agent checks again; refusing here spares the tunnel a round trip.
    resolveRuntimePath("", path);
  } catch (error) {
    if (error instanceof UnsafePathError) throw new GatewayError("invalid_request", `refused path: ${error.message}`);
    throw error;
  }
  const kind = classifyNativeRequest(protocolOf(connection), method, runtimePathOnly);
  return { type: "native", kind, connection, path, name };
}

function routeOpenAi(policies: PolicySet, method: string, rawUrl: string, pathname: string, subject: Subject): Route {
  if (method !== "POST") throw new GatewayError("method_not_allowed", `${pathname} accepts POST only`);
  const kind = classifyOpenAiRoute(pathname);
  if (!kind) throw new GatewayError("not_found", `no route for ${method} ${pathname}`);
  // The model is in the body; without a grant of this operation on any
  // model the answer cannot be yes, so the body is not worth reading.
  if (policies.broadestGrant(subject, kind.operation) === undefined) {
    // The caller's own policies may be named to the caller; others' never.
    if (OPERATIONS.some((operation) => policies.broadestGrant(subject, operation) !== undefined)) {
      throw new GatewayError("operation_not_allowed", `none of your policies allows ${kind.operation} (${pathname})`);
    }
    throw new GatewayError("model_not_allowed", `no model is available to you for ${pathname}`, "model");
  }
  return { type: "openai", kind, pathname, path: rawUrl };
}

/**
 * The model id of `/v1/models/{id}`. The `openai` SDK encodes the id as one
 * path segment (`llama%2Fdemo-chat`); curl users write the slash. The id is
 * only ever compared with the listed ids, never forwarded, so decoding it
 * cannot reach anything else; one that is not valid percent-encoding is
 * read as "", which names no model.
 */
function decodedModelId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return "";
  }
}
