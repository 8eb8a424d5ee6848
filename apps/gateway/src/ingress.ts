// The gateway's HTTP front: OpenAI-compatible routes, native pass-through
// under /c/{connection}/ and /healthz. Each request runs the stages
// authenticate → route → decide → forward (→ mask at the agent) → record.
import type { IncomingMessage, ServerResponse } from "node:http";
import { AUDIT_RECORD_VERSION, type AuditRecord, type AuditSink } from "@modelgate/audit";
import {
  headersForRuntime,
  type Logger,
  resolveRuntimePath,
  UnsafePathError,
  uuidv7,
  withoutRedaction,
} from "@modelgate/core";
import { MASK_NAME } from "@modelgate/masking";
import {
  type BodyFormat,
  type ConnectionProtocol,
  classifyNativeRequest,
  classifyOpenAiRoute,
  type RequestKind,
} from "@modelgate/policy";
import type { Protocol } from "@modelgate/protocol";
import type { AgentPool } from "./agent-pool.js";
import { ResponseCapture } from "./audit-capture.js";
import { buildAuditRecord, decisionLogFields, decisionOf, type RequestTrail } from "./audit-record.js";
import type { ConfigStore, ConnectionConfig } from "./config-store.js";
import { chargeRateLimits, evaluate, PolicyDenial } from "./decide.js";
import { GatewayError, sendError } from "./errors.js";
import { forward } from "./forward.js";
import { ClientGoneError, type JsonEdit, parseJsonObject, readBody, rewriteJson } from "./http-body.js";
import { type Authenticator, type Identity, subjectOf } from "./identity.js";
import type { GatewayMetrics } from "./metrics.js";
import type { RateLimiter } from "./rate-limit.js";

export const SESSION_HEADER = "x-modelgate-session";

/** OpenAI routes whose body names the model. */
const MODEL_ROUTES = new Set(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]);

const PROTOCOL_NAMES: Record<Extract<Protocol, string>, ConnectionProtocol> = {
  PROTOCOL_OPENAI: "openai",
  PROTOCOL_OLLAMA: "ollama",
  PROTOCOL_TGI: "tgi",
  PROTOCOL_HTTP: "http",
  // An unknown protocol gets no parsing: everything on it is `raw`.
  PROTOCOL_UNSPECIFIED: "http",
};

/** Formats whose body names the model in a top-level `model` field. */
const FORMATS_WITH_MODEL = new Set<BodyFormat>([
  "openai.chat",
  "openai.completions",
  "openai.embeddings",
  "ollama.generate",
  "ollama.chat",
  "ollama.embed",
]);

export interface IngressOptions {
  store: ConfigStore;
  pool: AgentPool;
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  metrics: GatewayMetrics;
  logger: Logger;
  maxBodyBytes: number;
  upstreamTimeoutMs: number;
  queueWaitMs: number;
  agentWaitMs: number;
  /** Where each request's audit record goes; a request without a place there is refused. */
  audit: AuditSink;
  gatewayId: string;
  /** Cap per recorded body (request, response). */
  auditMaxBodyBytes: number;
  /** Put the request body (masked when the policy asks) into the decision log line. */
  logPrompts: boolean;
}

/** A request resolved to a connection, before the policy decision. */
interface RoutedRequest {
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

export function createIngress(options: IngressOptions) {
  const { store, pool, metrics, logger, authenticator } = options;
  // The decision line is built field by field from the audit record: no
  // secret can be in it, so it skips the redaction pass (docs/audit.md).
  const decisionLog = withoutRedaction(logger);

  async function handleInference(req: IncomingMessage, res: ServerResponse, trail: RequestTrail) {
    const { sessionId, receivedAt } = trail;
    const responseHeaders = { [SESSION_HEADER]: sessionId };
    const route = routeLabel(req.url ?? "/");
    let connectionName = "";
    const clientGone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) clientGone.abort();
    });
    try {
      const identity = await authenticator.authenticate(req);
      trail.identity = identity;
      const routed = await routeRequest(req, identity, trail);
      connectionName = routed.connection.name;
      const verdict = evaluate(
        store.policies,
        identity,
        {
          connection: routed.connection.name,
          model: routed.model,
          operation: routed.kind.operation,
          format: routed.kind.format,
          body: routed.json,
          protocol: protocolOf(routed.connection),
        },
        sessionId,
        routed.displayTarget,
      );
      trail.verdict = verdict;
      await chargeRateLimits(options.rateLimiter, identity, verdict);
      metrics.decisions.inc({ decision: "allowed", code: "" });
      // A body the policy read is forwarded as the policy read it: parsed
      // and written again, so a runtime cannot see a duplicate key the
      // engine did not (numbers keep their exact text).
      const body = routed.json ? rewriteJson(routed.body, [...routed.edits, ...verdict.edits]) : routed.body;
      metrics.inFlight.inc({ connection: connectionName });
      try {
        trail.outcome = await forward(
          {
            requestId: sessionId,
            connection: routed.connection,
            method: req.method ?? "GET",
            path: routed.path,
            // The audit record keeps the answer as the client received it,
            // so it must be readable: no compressed answers from runtimes.
            headers: headersForRuntime(req.headers).filter(({ name }) => name !== "accept-encoding"),
            body,
            decision: verdict.decision,
            deadlineAt: Date.now() + options.upstreamTimeoutMs,
          },
          res,
          {
            pool,
            queueWaitMs: options.queueWaitMs,
            agentWaitMs: options.agentWaitMs,
            clientGone: clientGone.signal,
            responseHeaders,
            logger,
            onRetry: () => metrics.retries.inc({ connection: connectionName }),
            onFirstByte: () =>
              metrics.timeToFirstByte.observe(
                { connection: connectionName, route },
                (performance.now() - receivedAt) / 1000,
              ),
          },
        );
      } finally {
        metrics.inFlight.dec({ connection: connectionName });
      }
      for (const [entity, count] of Object.entries(trail.outcome?.maskedCounts ?? {})) {
        // Names come from policies (entity types, custom detector names); the
        // shape check keeps an agent from inflating label cardinality.
        if (MASK_NAME.test(entity)) metrics.masked.inc({ entity }, count);
      }
    } catch (error) {
      if (error instanceof ClientGoneError || clientGone.signal.aborted) {
        trail.outcome = { status: 499, error: "client_gone" };
        return;
      }
      if (error instanceof PolicyDenial) {
        metrics.decisions.inc({
          decision: error.code === "rate_limited" ? "rate_limited" : "denied",
          code: error.code,
        });
      }
      const gatewayError = error instanceof GatewayError ? error : undefined;
      if (!gatewayError) logger.error({ err: error, sessionId }, "request failed unexpectedly");
      const sent = gatewayError ?? new GatewayError("internal", "internal error");
      trail.error = sent;
      sendError(res, sent, responseHeaders);
    } finally {
      const status = trail.outcome?.status ?? res.statusCode;
      metrics.requests.inc({ code: String(status), connection: connectionName, route });
      metrics.latency.observe({ connection: connectionName, route }, (performance.now() - receivedAt) / 1000);
    }
  }

  async function routeRequest(req: IncomingMessage, identity: Identity, trail: RequestTrail): Promise<RoutedRequest> {
    const rawUrl = req.url ?? "/";
    const pathEnd = rawUrl.indexOf("?");
    const pathname = pathEnd === -1 ? rawUrl : rawUrl.slice(0, pathEnd);
    if (pathname.startsWith("/c/")) return routeNative(req, rawUrl, pathname, pathEnd, identity, trail);
    if (MODEL_ROUTES.has(pathname)) return routeOpenAi(req, rawUrl, pathname, identity, trail);
    throw new GatewayError("not_found", `no route for ${req.method} ${pathname}`);
  }

  async function routeNative(
    req: IncomingMessage,
    rawUrl: string,
    pathname: string,
    pathEnd: number,
    identity: Identity,
    trail: RequestTrail,
  ): Promise<RoutedRequest> {
    const rest = pathname.slice(3);
    const slash = rest.indexOf("/");
    const name = slash === -1 ? rest : rest.slice(0, slash);
    const connection = store.connectionByName(name);
    // A connection that does not exist and one the caller has no grant on
    // get the same answer, before anything else about the request (its
    // path, its body) is looked at: no existence oracle.
    if (!connection || !store.policies.mayUse(subjectOf(identity), connection.name)) {
      throw new GatewayError("model_not_allowed", `connection "${name}" does not exist or is not available to you`);
    }
    const runtimePathOnly = slash === -1 ? "/" : rest.slice(slash);
    const runtimePath = runtimePathOnly + (pathEnd === -1 ? "" : rawUrl.slice(pathEnd));
    try {
      // The agent checks again; refusing here spares the tunnel a round trip.
      resolveRuntimePath("", runtimePath);
    } catch (error) {
      if (error instanceof UnsafePathError) throw new GatewayError("invalid_request", `refused path: ${error.message}`);
      throw error;
    }
    trail.connection = connection.name;
    const kind = classifyNativeRequest(protocolOf(connection), req.method ?? "GET", runtimePathOnly);
    trail.operation = kind.operation;
    const body = await readBody(req, options.maxBodyBytes);
    trail.requestBody = body;
    // The policy reads what it limits (tokens, temperature, prompt) from the
    // body; a body it cannot read is refused, never waved through.
    const json = kind.format === "none" ? undefined : parseJsonObject(body);
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
    trail.model = model;
    if (model !== undefined && connection.models.length > 0 && !connection.models.includes(model)) {
      throw new GatewayError(
        "model_not_allowed",
        `the model "${connection.name}/${model}" does not exist or is not available to you`,
        "model",
      );
    }
    return {
      connection,
      path: runtimePath,
      kind,
      body,
      json,
      model,
      edits: [],
      displayTarget: model === undefined ? `connection "${name}"` : `the model "${connection.name}/${model}"`,
    };
  }

  async function routeOpenAi(
    req: IncomingMessage,
    rawUrl: string,
    pathname: string,
    identity: Identity,
    trail: RequestTrail,
  ): Promise<RoutedRequest> {
    if (req.method !== "POST") throw new GatewayError("method_not_allowed", `${pathname} accepts POST only`);
    const kind = classifyOpenAiRoute(pathname);
    if (!kind) throw new GatewayError("not_found", `no route for ${req.method} ${pathname}`);
    trail.operation = kind.operation;
    const body = await readBody(req, options.maxBodyBytes);
    trail.requestBody = body;
    const json = parseJsonObject(body);
    const requested = json.model;
    if (typeof requested !== "string" || requested === "") {
      throw new GatewayError("invalid_request", "you must provide a model parameter", "model");
    }
    const subject = subjectOf(identity);
    const routed = store.route(requested, (connection, model) =>
      store.policies.mayUse(subject, connection.name, model),
    );
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
    trail.connection = connection.name;
    trail.model = model;
    return {
      connection,
      path: rawUrl,
      kind,
      body,
      json,
      model,
      // The runtime knows the model by its own name, without our prefix.
      edits: model === requested ? [] : [{ path: ["model"], value: model }],
      displayTarget: `the model "${requested}"`,
    };
  }

  /** Only the models the caller may list: least privilege also hides what exists. */
  async function listModels(req: IncomingMessage, res: ServerResponse, trail: RequestTrail) {
    trail.operation = "models.list";
    const identity = await authenticator.authenticate(req);
    trail.identity = identity;
    const subject = subjectOf(identity);
    if (req.method !== "GET") throw new GatewayError("method_not_allowed", "/v1/models accepts GET only");
    const data = [];
    for (const connection of store.connections()) {
      for (const model of store.policies.allowedModels(subject, connection.name, connection.models, "models.list")) {
        data.push({ id: `${connection.name}/${model}`, object: "model", created: 0, owned_by: connection.name });
      }
    }
    sendJson(res, 200, { object: "list", data });
    trail.outcome = { status: 200 };
  }

  /**
   * The request's audit record. Never throws: a record that cannot be built
   * in full (a bug, or an answer shaped to break it) is still recorded, with
   * what is certain and the failure as its error.
   */
  function recordOf(req: IncomingMessage, res: ServerResponse, trail: RequestTrail, capture: ResponseCapture) {
    const status = trail.outcome?.status ?? res.statusCode;
    const recordOptions = { gatewayId: options.gatewayId, maxBodyBytes: options.auditMaxBodyBytes };
    try {
      if (!trail.verdict && trail.identity && trail.connection) {
        trail.refusedAuditMasking = store.policies.auditMasking(subjectOf(trail.identity), trail.connection);
      }
      return buildAuditRecord(req, trail, capture.result(), status, recordOptions);
    } catch (error) {
      logger.error({ err: error, sessionId: trail.sessionId }, "audit record built without its bodies after a failure");
      const now = new Date().toISOString();
      return {
        version: AUDIT_RECORD_VERSION,
        sessionId: trail.sessionId,
        gatewayId: options.gatewayId,
        receivedAt: new Date(trail.receivedAtWall).toISOString(),
        finishedAt: now,
        endpoint: (req.url ?? "/").split("?", 1)[0]?.slice(0, 512) ?? "/",
        method: (req.method ?? "GET").slice(0, 16),
        decision: decisionOf(trail),
        policyIds: [],
        capped: [],
        responseStatus: status > 0 && status <= 999 ? status : undefined,
        latencyMs: Math.min(2 ** 31 - 1, Math.max(0, Math.round(performance.now() - trail.receivedAt))),
        events: [],
        error: { code: "audit_record_incomplete", message: "the record could not be built in full" },
      } satisfies AuditRecord;
    }
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const receivedAtWall = Date.now();
    const sessionId = uuidv7();
    res.setHeader(SESSION_HEADER, sessionId);
    const pathname = (req.url ?? "/").split("?", 1)[0];
    // Readiness and metrics are on the ops listener (gateway.ts), not here.
    if (req.method === "GET" && pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
    // No unrecorded requests: one that cannot have its record kept is
    // refused before anything else is looked at.
    const ticket = options.audit.admit();
    if (!ticket) {
      metrics.auditRefused.inc();
      sendError(
        res,
        new GatewayError("audit_unavailable", "requests cannot be recorded right now, so none are served; retry later"),
      );
      return;
    }
    const trail: RequestTrail = { sessionId, receivedAt, receivedAtWall };
    const capture = new ResponseCapture(res, receivedAt, options.auditMaxBodyBytes);
    try {
      if (pathname === "/v1/models") await listModels(req, res, trail);
      else await handleInference(req, res, trail);
    } catch (error) {
      const gatewayError = error instanceof GatewayError ? error : new GatewayError("internal", "internal error");
      if (!(error instanceof GatewayError)) logger.error({ err: error, sessionId }, "request failed unexpectedly");
      trail.error = gatewayError;
      sendError(res, gatewayError);
    } finally {
      // The record is built after the answer ended, off the client's path.
      const record = recordOf(req, res, trail, capture);
      ticket.submit(record);
      decisionLog.info(decisionLogFields(record, options.logPrompts), "decision");
    }
  };
}

function protocolOf(connection: ConnectionConfig): ConnectionProtocol {
  return PROTOCOL_NAMES[connection.protocol as Extract<Protocol, string>];
}

/** The route template as a metrics label: bounded, never the raw path. */
function routeLabel(url: string): string {
  const pathname = url.split("?", 1)[0] ?? "/";
  if (MODEL_ROUTES.has(pathname)) return pathname;
  if (pathname.startsWith("/c/")) return "/c/{connection}";
  return "unmatched";
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
