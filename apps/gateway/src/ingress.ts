// The gateway's HTTP front: OpenAI-compatible routes, native pass-through
// under /c/{connection}/, health and metrics. Each request runs the stages
// authenticate → route → decide → forward (→ mask at the agent) → record.
import type { IncomingMessage, ServerResponse } from "node:http";
import { headersForRuntime, type Logger, resolveRuntimePath, UnsafePathError, uuidv7 } from "@modelgate/core";
import type { Decision } from "@modelgate/protocol";
import type { AgentPool } from "./agent-pool.js";
import { authenticate, type Identity } from "./authenticate.js";
import type { ConfigStore, ConnectionConfig } from "./config-store.js";
import { GatewayError, sendError } from "./errors.js";
import { forward } from "./forward.js";
import { ClientGoneError, parseJsonObject, readBody, replaceModel } from "./http-body.js";
import type { GatewayMetrics } from "./metrics.js";

export const SESSION_HEADER = "x-modelgate-session";

/** OpenAI routes whose body names the model. */
const MODEL_ROUTES = new Set(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]);

export interface IngressOptions {
  store: ConfigStore;
  pool: AgentPool;
  metrics: GatewayMetrics;
  logger: Logger;
  maxBodyBytes: number;
  upstreamTimeoutMs: number;
  queueWaitMs: number;
  agentWaitMs: number;
  /** Readiness details for /readyz. */
  readiness: () => { ready: boolean; details: Record<string, unknown> };
}

interface RoutedRequest {
  connection: ConnectionConfig;
  path: string;
  body: Buffer;
  model: string | undefined;
}

export function createIngress(options: IngressOptions) {
  const { store, pool, metrics, logger } = options;

  async function handleInference(req: IncomingMessage, res: ServerResponse, sessionId: string, receivedAt: number) {
    const responseHeaders = { [SESSION_HEADER]: sessionId };
    const route = routeLabel(req.url ?? "/");
    let connectionName = "";
    let identity: Identity | undefined;
    let outcome: { status: number; error?: string; agentId?: string | undefined } | undefined;
    const clientGone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) clientGone.abort();
    });
    try {
      identity = authenticate(req, store);
      const routed = await routeRequest(req);
      connectionName = routed.connection.name;
      const decision: Decision = { sessionId, policyIds: [] };
      metrics.inFlight.inc({ connection: connectionName });
      try {
        outcome = await forward(
          {
            requestId: sessionId,
            connection: routed.connection,
            method: req.method ?? "GET",
            path: routed.path,
            headers: headersForRuntime(req.headers),
            body: routed.body,
            decision,
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
    } catch (error) {
      if (error instanceof ClientGoneError || clientGone.signal.aborted) {
        outcome = { status: 499, error: "client_gone" };
        return;
      }
      const gatewayError = error instanceof GatewayError ? error : undefined;
      if (!gatewayError) logger.error({ err: error, sessionId }, "request failed unexpectedly");
      const sent = gatewayError ?? new GatewayError("internal", "internal error");
      sendError(res, sent, responseHeaders);
      outcome = { status: sent.status, error: sent.code };
    } finally {
      const durationSeconds = (performance.now() - receivedAt) / 1000;
      const status = outcome?.status ?? res.statusCode;
      metrics.requests.inc({ code: String(status), connection: connectionName, route });
      metrics.latency.observe({ connection: connectionName, route }, durationSeconds);
      logger.info(
        {
          sessionId,
          subject: identity?.subjectId,
          connection: connectionName || undefined,
          route,
          agentId: outcome?.agentId,
          status,
          error: outcome?.error,
          durationMs: Math.round(durationSeconds * 1000),
        },
        "request",
      );
    }
  }

  async function routeRequest(req: IncomingMessage): Promise<RoutedRequest> {
    const rawUrl = req.url ?? "/";
    const pathEnd = rawUrl.indexOf("?");
    const pathname = pathEnd === -1 ? rawUrl : rawUrl.slice(0, pathEnd);

    if (pathname.startsWith("/c/")) {
      const rest = pathname.slice(3);
      const slash = rest.indexOf("/");
      const name = slash === -1 ? rest : rest.slice(0, slash);
      const connection = store.connectionByName(name);
      if (!connection) throw new GatewayError("connection_not_found", `no connection named "${name}"`);
      const runtimePath = (slash === -1 ? "/" : rest.slice(slash)) + (pathEnd === -1 ? "" : rawUrl.slice(pathEnd));
      try {
        // The agent checks again; refusing here spares the tunnel a round trip.
        resolveRuntimePath("", runtimePath);
      } catch (error) {
        if (error instanceof UnsafePathError)
          throw new GatewayError("invalid_request", `refused path: ${error.message}`);
        throw error;
      }
      const body = await readBody(req, options.maxBodyBytes);
      return { connection, path: runtimePath, body, model: undefined };
    }

    if (MODEL_ROUTES.has(pathname)) {
      if (req.method !== "POST") throw new GatewayError("method_not_allowed", `${pathname} accepts POST only`);
      const body = await readBody(req, options.maxBodyBytes);
      const json = parseJsonObject(body);
      const requested = json.model;
      if (typeof requested !== "string" || requested === "") {
        throw new GatewayError("invalid_request", "you must provide a model parameter", "model");
      }
      const routed = store.route(requested);
      if (!routed.ok) {
        if (routed.reason === "ambiguous") {
          throw new GatewayError(
            "invalid_request",
            `model "${requested}" is served by several connections; name one of: ${routed.candidates?.join(", ")}`,
            "model",
          );
        }
        throw new GatewayError("model_not_found", `the model "${requested}" does not exist`, "model");
      }
      const { connection, model } = routed.target;
      // The runtime knows the model by its own name, without our prefix.
      const forwarded = model === requested ? body : replaceModel(body, model);
      return { connection, path: rawUrl, body: forwarded, model };
    }
    throw new GatewayError("not_found", `no route for ${req.method} ${pathname}`);
  }

  function listModels(res: ServerResponse) {
    const data = [];
    for (const connection of store.connections()) {
      for (const model of connection.models) {
        data.push({ id: `${connection.name}/${model}`, object: "model", created: 0, owned_by: connection.name });
      }
    }
    sendJson(res, 200, { object: "list", data });
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const sessionId = uuidv7();
    res.setHeader(SESSION_HEADER, sessionId);
    const pathname = (req.url ?? "/").split("?", 1)[0];
    try {
      if (req.method === "GET" && pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
      if (req.method === "GET" && pathname === "/readyz") {
        const { ready, details } = options.readiness();
        return sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "not_ready", ...details });
      }
      if (req.method === "GET" && pathname === "/metrics") {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(body);
        return;
      }
      if (pathname === "/v1/models") {
        authenticate(req, store);
        if (req.method !== "GET") throw new GatewayError("method_not_allowed", "/v1/models accepts GET only");
        return listModels(res);
      }
      await handleInference(req, res, sessionId, receivedAt);
    } catch (error) {
      const gatewayError = error instanceof GatewayError ? error : new GatewayError("internal", "internal error");
      if (!(error instanceof GatewayError)) logger.error({ err: error, sessionId }, "request failed unexpectedly");
      sendError(res, gatewayError);
    }
  };
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
