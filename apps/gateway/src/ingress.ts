// The gateway's HTTP front: OpenAI-compatible routes, the models list and
// native pass-through under /c/{connection}/. Every request runs one
// pipeline of named stages, each in its own module, in this order:
//
//   authenticate  identity.ts     who is calling (headers only)
//   route         route.ts        what for, from method and path; no grant, no further
//   admit         admission.ts    one of the subject's in-flight places
//   read body     http-body.ts    bounded in size, idle time, rate and JSON depth
//   target        target.ts       the model the body names, and its connection
//   decide        decide.ts       the policy decision
//   approve       approve.ts      a grant, when the policy holds the request for a human
//                                 (charged to the rate limits first)
//   reserve       record.ts       the request's place in the audit buffer
//   charge        decide.ts       the winning grant's rate limits
//   quota         quota.ts        the winning grant's quota: admitted, or refused
//   forward       forward.ts      to an agent, streaming the answer back
//   settle        quota.ts        the tokens the answer used, to the quota
//   record        record.ts       the audit record and decision line, always
//
// When the gateway traces, stages report to the request's trace
// (request-trace.ts): a span for the request, and for authenticate,
// decide-to-charge (policy), the wait for an agent and each agent exchange.
//
// A refusal, wherever it happens, is answered by one function (refuse),
// which gives back the in-flight place first and, for a caller refused
// again and again, waits out the refusal brake (refusal-brake.ts) holding
// only the socket.
//
// Nothing shared is taken before the caller is authenticated and has a
// grant that could admit the request; each stage that holds something
// (an in-flight place, a body, an audit place) is bounded per subject by
// the admit stage. A request waiting for its approval gives its in-flight
// place back and holds no audit place; the approve stage bounds waiters.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AuditSink, AuditTicket } from "@modelgate/audit";
import { headersForRuntime, type Logger, uuidv7 } from "@modelgate/core";
import { MASK_NAME } from "@modelgate/masking";
import type { Tracer } from "@opentelemetry/api";
import { InFlightLimiter } from "./admission.js";
import type { AgentPool } from "./agent-pool.js";
import { type ApprovalLink, createApprovalStage } from "./approve.js";
import { ResponseCapture } from "./audit-capture.js";
import { type RequestTrail, requestForAudit } from "./audit-record.js";
import type { ConfigStore } from "./config-store.js";
import { chargeGrant, chargeRateLimits, evaluate, PolicyDenial } from "./decide.js";
import { GatewayError, type GatewayErrorCode, sendError } from "./errors.js";
import { forward } from "./forward.js";
import { type BodyLimits, ClientGoneError, readBody, rewriteJson } from "./http-body.js";
import { type Authenticator, type Identity, subjectKey, subjectOf } from "./identity.js";
import type { GatewayMetrics } from "./metrics.js";
import { listModels } from "./models-list.js";
import { buildOpenApiDocument, OPENAPI_ROUTE } from "./openapi.js";
import { type QuotaCharge, type QuotaKeeper, tokensUsed } from "./quota.js";
import type { RateLimiter } from "./rate-limit.js";
import { createRecorder } from "./record.js";
import { addressCaller, type RefusalBrake } from "./refusal-brake.js";
import { type RequestTrace, startRequestTrace } from "./request-trace.js";
import { MODEL_ROUTES, MODELS_LIST_ROUTE, protocolOf, routeRequest } from "./route.js";
import { requestUsageEdit } from "./stream-usage.js";
import { resolveTarget } from "./target.js";

export const SESSION_HEADER = "x-modelgate-session";

export interface IngressOptions {
  store: ConfigStore;
  pool: AgentPool;
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  /** Long-window budgets of grants with a quota. */
  quotas: QuotaKeeper;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Size, idle time and minimum rate of request bodies. */
  body: BodyLimits;
  /** Nesting depth of JSON bodies the gateway parses. */
  maxJsonDepth: number;
  /** Requests one subject may have in flight on this gateway at once. */
  maxInFlightPerSubject: number;
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
  /** Requests held for human approval (docs/approvals.md). */
  approvals: ApprovalOptions;
  /** Slows the refusals of a caller refused again and again. */
  refusalBrake: RefusalBrake;
  /** The gateway's version, for its OpenAPI document. */
  version: string;
  /** Spans of every request; undefined when the gateway does not trace. */
  tracer?: Tracer | undefined;
}

interface ApprovalOptions {
  /** The control plane's approval calls. */
  link: ApprovalLink;
  /** Longest `Prefer: wait` honoured, in seconds. */
  maxWaitSeconds: number;
  maxWaitingPerSubject: number;
  maxWaiting: number;
  controlPlaneTimeoutMs: number;
}

/** Refusals that happen before the request's body is used: counted apart, they show an attack or a misbehaving client. */
const EARLY_REFUSALS = new Set<GatewayErrorCode>(["too_many_in_flight", "request_timeout", "payload_too_large"]);

/** What a request holds while it runs; given back, whatever happens, when it ends. */
interface Held {
  /** The route template, as metrics label it. */
  route: string;
  /** Aborted when the client goes away before its answer is complete. */
  clientGone: AbortController;
  releaseInFlight?: () => void;
  auditTicket?: AuditTicket;
  /** Set once the quota admitted the request; settled when it ends. */
  quota?: { charge: QuotaCharge; estimatedTokens: number };
  /** The request's spans, when the gateway traces; ended with its record. */
  trace: RequestTrace | undefined;
}

/** The caller's trace context: the runtime gets the agent's instead when the gateway traces. */
const TRACE_HEADERS = new Set(["traceparent", "tracestate"]);

export function createIngress(options: IngressOptions) {
  const { store, pool, metrics, logger, authenticator } = options;
  const inFlight = new InFlightLimiter(options.maxInFlightPerSubject);
  // Built once: it describes the code, which does not change while running.
  const openApiDocument = JSON.stringify(buildOpenApiDocument(options.version));
  const recorder = createRecorder({
    store,
    audit: options.audit,
    metrics,
    logger,
    gatewayId: options.gatewayId,
    auditMaxBodyBytes: options.auditMaxBodyBytes,
    logPrompts: options.logPrompts,
  });
  const approve = createApprovalStage({
    ...options.approvals,
    grants: store.approvals,
    gatewayId: options.gatewayId,
    metrics,
    logger,
  });

  /** The pipeline. Throws the refusal; the caller answers it and records. */
  async function serve(req: IncomingMessage, res: ServerResponse, trail: RequestTrail, held: Held): Promise<void> {
    const method = req.method ?? "GET";
    held.trace?.begin("authenticate");
    const identity = await authenticator.authenticate(req);
    held.trace?.end();
    trail.identity = identity;
    const subject = subjectOf(identity);

    const route = routeRequest(store, method, req.url ?? "/", subject);
    trail.operation = route.type === "models" ? "models.list" : route.kind.operation;
    if (route.type === "native") trail.connection = route.connection.name;

    held.releaseInFlight = inFlight.acquire(inFlightKey(identity));

    if (route.type === "models") {
      // Answered here, and counted like any other request of the caller's.
      const grant = store.policies.broadestGrant(subject, "models.list");
      if (grant) await chargeGrant(options.rateLimiter, subjectKey(identity), grant, 0);
      held.auditTicket = recorder.reserve();
      const listed = listModels(store, subject);
      if (route.id === undefined) {
        sendJson(res, 200, { object: "list", data: listed });
      } else {
        // One model: found only among the models the caller may list, so a
        // model that exists but is not the caller's reads like one that does not.
        const model = listed.find((entry) => entry.id === route.id);
        if (!model) throw new GatewayError("not_found", "the model does not exist or is not available to you", "model");
        sendJson(res, 200, model);
      }
      trail.outcome = { status: 200 };
      return;
    }

    const body = await readBody(req, options.body);
    trail.requestBody = body;

    const target = resolveTarget(store, route, body, subject, options.maxJsonDepth);
    trail.connection = target.connection.name;
    trail.model = target.model;
    held.trace?.targeted(target);

    const decide = (who: Identity) =>
      evaluate(
        store.policies,
        who,
        {
          connection: target.connection.name,
          model: target.model,
          operation: target.kind.operation,
          format: target.kind.format,
          body: target.json,
          protocol: protocolOf(target.connection),
        },
        trail.sessionId,
        target.displayTarget,
      );
    held.trace?.begin("policy");
    let verdict = decide(identity);
    trail.verdict = verdict;

    const requirements = verdict.evaluation.approvals ?? [];
    const heldForApproval = requirements.length > 0;
    if (heldForApproval) {
      // A held request counts against the caller's rate limits before the
      // control plane is asked anything (once: not again when admitted), so
      // retrying a held prompt costs what any request costs.
      await chargeRateLimits(options.rateLimiter, identity, verdict);
      await approve(
        {
          identity,
          requirements,
          connection: target.connection.name,
          model: target.model ?? "",
          operation: target.kind.operation,
          body,
          sessionId: trail.sessionId,
          prefer: req.headers.prefer,
          clientGone: held.clientGone.signal,
          auditText: () => {
            const recorded = requestForAudit(trail, body, options.auditMaxBodyBytes);
            return { text: recorded?.text ?? "", truncated: recorded?.truncated ?? false };
          },
          pause: () => {
            held.releaseInFlight?.();
            held.releaseInFlight = undefined;
          },
          resume: () => {
            held.releaseInFlight = inFlight.acquire(inFlightKey(identity));
          },
          setHeader: (name, value) => res.setHeader(name, value),
          recheck: async () => {
            // The caller's credential and the policies as they are now, after the wait.
            const now = await authenticator.authenticate(req);
            trail.identity = now;
            verdict = decide(now);
            trail.verdict = verdict;
            return { identity: now, requirements: verdict.evaluation.approvals ?? [] };
          },
          reserve: () => {
            held.auditTicket ??= recorder.reserve();
          },
        },
        (approval) => {
          trail.approval = approval;
        },
      );
    }

    held.auditTicket ??= recorder.reserve();
    if (!heldForApproval) await chargeRateLimits(options.rateLimiter, identity, verdict);
    const quotaGrant = verdict.evaluation.quota;
    if (quotaGrant) {
      const charge = await options.quotas.admit(quotaGrant, subjectKey(identity), identity.subjectId);
      held.quota = { charge, estimatedTokens: verdict.evaluation.estimatedTokens };
    }
    metrics.decisions.inc({ decision: "allowed", code: "" });
    held.trace?.end();

    // A body the policy read is forwarded as the policy read it: parsed
    // and written again, so a runtime cannot see a duplicate key the
    // engine did not (numbers keep their exact text).
    // An OpenAI stream's token counts come only when asked for: asked for
    // here on the caller's behalf, and their chunk taken out of the answer
    // (stream-usage.ts).
    const usageEdit = requestUsageEdit(target.kind.format, protocolOf(target.connection), target.json);
    const edits = usageEdit ? [...target.edits, ...verdict.edits, usageEdit] : [...target.edits, ...verdict.edits];
    const forwardedBody = target.json ? rewriteJson(target.body, edits) : target.body;
    const connectionName = target.connection.name;
    metrics.inFlight.inc({ connection: connectionName });
    try {
      trail.outcome = await forward(
        {
          requestId: trail.sessionId,
          connection: target.connection,
          method,
          path: target.path,
          // The audit record keeps the answer as the client received it,
          // so it must be readable: no compressed answers from runtimes.
          headers: headersForRuntime(req.headers).filter(
            ({ name }) => name !== "accept-encoding" && !(held.trace && TRACE_HEADERS.has(name)),
          ),
          body: forwardedBody,
          decision: verdict.decision,
          deadlineAt: Date.now() + options.upstreamTimeoutMs,
          stripUsageChunk: usageEdit !== undefined,
        },
        res,
        {
          pool,
          queueWaitMs: options.queueWaitMs,
          agentWaitMs: options.agentWaitMs,
          clientGone: held.clientGone.signal,
          // The budgets before this request's tokens: a head goes out before they are known.
          responseHeaders: { [SESSION_HEADER]: trail.sessionId, ...held.quota?.charge.headers() },
          logger,
          trace: held.trace,
          onRetry: () => metrics.retries.inc({ connection: connectionName }),
          onFirstByte: () =>
            metrics.timeToFirstByte.observe(
              { connection: connectionName, route: held.route },
              (performance.now() - trail.receivedAt) / 1000,
            ),
        },
      );
    } finally {
      metrics.inFlight.dec({ connection: connectionName });
    }
    for (const [entity, count] of Object.entries(trail.outcome.maskedCounts ?? {})) {
      // Names come from policies (entity types, custom detector names); the
      // shape check keeps an agent from inflating label cardinality.
      if (MASK_NAME.test(entity)) metrics.masked.inc({ entity }, count);
    }
  }

  /** Answers a refusal (or a failure) in the pipeline's one place for it. */
  async function refuse(
    req: IncomingMessage,
    res: ServerResponse,
    trail: RequestTrail,
    held: Held,
    error: unknown,
  ): Promise<void> {
    if (error instanceof ClientGoneError || held.clientGone.signal.aborted) {
      trail.outcome = { status: 499, error: "client_gone" };
      return;
    }
    if (error instanceof PolicyDenial) {
      metrics.decisions.inc({
        decision: error.code === "rate_limited" || error.code === "quota_exceeded" ? "rate_limited" : "denied",
        code: error.code,
      });
    }
    const gatewayError = error instanceof GatewayError ? error : undefined;
    if (!gatewayError) logger.error({ err: error, sessionId: trail.sessionId }, "request failed unexpectedly");
    const sent = gatewayError ?? new GatewayError("internal", "internal error");
    held.trace?.refused(sent.code, sent.status);
    if (EARLY_REFUSALS.has(sent.code)) metrics.refusedEarly.inc({ code: sent.code });
    trail.error = sent;
    // An answer already under way was ended by the stage that failed.
    if (res.headersSent) return;
    // The status is the record's even if the client leaves during the brake.
    res.statusCode = sent.status;
    if (sent.status >= 400 && sent.status < 500) {
      // Nothing but the socket is held while the brake holds the answer back.
      held.releaseInFlight?.();
      held.releaseInFlight = undefined;
      const caller = trail.identity
        ? `subject:${inFlightKey(trail.identity)}`
        : addressCaller(req.socket.remoteAddress);
      const delayMs = options.refusalBrake.charge(caller);
      if (delayMs > 0) {
        metrics.refusalsDelayed.inc({ code: sent.code });
        // Whatever the client still sends (an upload it trickles) stays in
        // the kernel meanwhile: a held refusal costs no wake-ups.
        if (!req.complete) req.socket.pause();
        const waiting = options.refusalBrake.wait(delayMs, held.clientGone.signal);
        metrics.refusalsDelaying.set(options.refusalBrake.delayed);
        await waiting;
        metrics.refusalsDelaying.set(options.refusalBrake.delayed);
      }
    }
    sendError(res, sent, { [SESSION_HEADER]: trail.sessionId });
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const receivedAtWall = Date.now();
    const sessionId = uuidv7();
    res.setHeader(SESSION_HEADER, sessionId);
    const pathname = (req.url ?? "/").split("?", 1)[0];
    // Readiness and metrics are on the ops listener (gateway.ts), not here.
    if (req.method === "GET" && pathname === "/healthz") return sendJson(res, 200, { status: "ok" });
    // Public like /healthz: it describes the API, nothing about who may use what.
    if (req.method === "GET" && pathname === OPENAPI_ROUTE) return sendText(res, 200, openApiDocument);
    const trail: RequestTrail = { sessionId, receivedAt, receivedAtWall };
    const capture = new ResponseCapture(res, receivedAt, options.auditMaxBodyBytes);
    const route = routeLabel(req.url ?? "/");
    const held: Held = {
      route,
      clientGone: new AbortController(),
      trace: startRequestTrace(options.tracer, req, route, sessionId),
    };
    res.once("close", () => {
      if (!res.writableFinished) held.clientGone.abort();
    });
    try {
      await serve(req, res, trail, held);
    } catch (error) {
      await refuse(req, res, trail, held, error);
    } finally {
      held.releaseInFlight?.();
      // Whatever way the answer ended, the tokens it used count (a stream
      // that crossed the limit was not cut: it is charged in full).
      if (held.quota) {
        const status = trail.outcome?.status ?? res.statusCode;
        held.quota.charge.settle(tokensUsed(capture.result(), status, held.quota.estimatedTokens));
      }
      // The record is built after the answer ended, off the client's path.
      const record = recorder.record(req, res, trail, capture, held.auditTicket);
      held.trace?.finish(record);
      const status = trail.outcome?.status ?? res.statusCode;
      metrics.requests.inc({ code: String(status), connection: trail.connection ?? "", route });
      metrics.latency.observe({ connection: trail.connection ?? "", route }, (performance.now() - receivedAt) / 1000);
    }
  };
}

/**
 * Who holds in-flight places: the subject as the policy engine knows it.
 * Kept in this process only, so not hashed like the keys shared in Redis.
 */
function inFlightKey(identity: Identity): string {
  return `${identity.authMethod}\n${identity.issuer ?? ""}\n${identity.subjectId}`;
}

/** The route template as a metrics label: bounded, never the raw path. */
function routeLabel(url: string): string {
  const pathname = url.split("?", 1)[0] ?? "/";
  if (MODEL_ROUTES.has(pathname) || pathname === MODELS_LIST_ROUTE) return pathname;
  if (pathname.startsWith(`${MODELS_LIST_ROUTE}/`)) return `${MODELS_LIST_ROUTE}/{id}`;
  if (pathname.startsWith("/c/")) return "/c/{connection}";
  return "unmatched";
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body));
}

/** JSON already written out. */
function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
