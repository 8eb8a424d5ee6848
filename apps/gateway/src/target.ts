// The target stage: with the body read, the model it names and so, on the
// OpenAI routes, the connection. Runs after the route stage, which already
// refused what needs no body to refuse.
import type { BodyFormat, RequestKind, Subject } from "@modelgate/policy";
import type { ConfigStore, ConnectionConfig } from "./config-store.js";
import { GatewayError } from "./errors.js";
import { type JsonEdit, parseJsonObject } from "./http-body.js";
import type { Route } from "./route.js";

/** A request resolved to a connection and model, ready for the policy decision. */
export interface TargetedRequest {
  connection: ConnectionConfig;
  /** Path and query on the runtime. */
  path: string;
  kind: RequestKind;
  body: Buffer;
  /** The parsed body, for formats the policy engine reads. */
  json: Record<string, unknown> | undefined;
  /** The model as the runtime knows it, when the request names one. */
  model: string | undefined;
  /** Edits routing needs (the model without our connection prefix). */
  edits: JsonEdit[];
  /** How refusals name the target: never more than the caller sent. */
  displayTarget: string;
}

/** Formats whose body names the model in a top-level `model` field. */
const FORMATS_WITH_MODEL = new Set<BodyFormat>([
  "openai.chat",
  "openai.completions",
  "openai.embeddings",
  "ollama.generate",
  "ollama.chat",
  "ollama.embed",
  "anthropic.messages",
  "openai.responses",
  "vllm.score",
  "vllm.tokenize",
]);

export function resolveTarget(
  store: Pick<ConfigStore, "route" | "policies">,
  route: Exclude<Route, { type: "models" }>,
  body: Buffer,
  subject: Subject,
  maxJsonDepth: number,
): TargetedRequest {
  return route.type === "native"
    ? targetNative(route, body, maxJsonDepth)
    : targetOpenAi(store, route, body, subject, maxJsonDepth);
}

function targetNative(route: Extract<Route, { type: "native" }>, body: Buffer, maxJsonDepth: number): TargetedRequest {
  const { connection, kind, name } = route;
  // The policy reads what it limits (tokens, temperature, prompt) from the
  // body; a body it cannot read is refused, never waved through.
  const json = kind.format === "none" ? undefined : parseJsonObject(body, maxJsonDepth);
  let model: string | undefined;
  if (json && FORMATS_WITH_MODEL.has(kind.format)) {
    model = typeof json.model === "string" && json.model !== "" ? json.model : undefined;
    if (model === undefined) {
      if (connection.models.length !== 1) {
        throw new GatewayError("invalid_request", "you must provide a model parameter", "model");
      }
      model = connection.models[0];
    }
  } else if (kind.format === "tgi.generate" && connection.models.length === 1) {
    // A TGI server runs exactly one model and its native API does not name it.
    model = connection.models[0];
  }
  if (model !== undefined && connection.models.length > 0 && !connection.models.includes(model)) {
    throw new GatewayError(
      "model_not_allowed",
      `the model "${connection.name}/${model}" does not exist or is not available to you`,
      "model",
    );
  }
  return {
    connection,
    path: route.path,
    kind,
    body,
    json,
    model,
    edits: [],
    displayTarget: model === undefined ? `connection "${name}"` : `the model "${connection.name}/${model}"`,
  };
}

function targetOpenAi(
  store: Pick<ConfigStore, "route" | "policies">,
  route: Extract<Route, { type: "openai" }>,
  body: Buffer,
  subject: Subject,
  maxJsonDepth: number,
): TargetedRequest {
  const json = parseJsonObject(body, maxJsonDepth);
  const requested = json.model;
  if (typeof requested !== "string" || requested === "") {
    throw new GatewayError("invalid_request", "you must provide a model parameter", "model");
  }
  const routed = store.route(requested, (connection, model) => store.policies.mayUse(subject, connection.name, model));
  if (!routed.ok) {
    if (routed.reason === "ambiguous") {
      throw new GatewayError(
        "invalid_request",
        `model "${requested}" is served by several connections; name one of: ${routed.candidates?.join(", ")}`,
        "model",
      );
    }
    throw new GatewayError(
      "model_not_allowed",
      `the model "${requested}" does not exist or is not available to you`,
      "model",
    );
  }
  const { connection, model } = routed.target;
  return {
    connection,
    path: route.path,
    kind: route.kind,
    body,
    json,
    model,
    // The runtime knows the model by its own name, without our prefix.
    edits: model === requested ? [] : [{ path: ["model"], value: model }],
    displayTarget: `the model "${requested}"`,
  };
}
