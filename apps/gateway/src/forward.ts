// One request, gateway side: pick an agent, send the request with its
// decision on one of the agent's idle slots (Exchange streams), stream the
// answer to the client with backpressure, and make sure a failure is never
// delivered as a success.
import { type ServerResponse, validateHeaderName, validateHeaderValue } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type HeaderPair, headerRecord, headersForCaller, type Logger } from "@modelgate/core";
import type { AgentFrame, Decision, ErrorCode, ResponseHead } from "@modelgate/protocol";
import type { AgentPool, Lease } from "./agent-pool.js";
import type { ConnectionConfig } from "./config-store.js";
import { failStartedResponse, GatewayError, type GatewayErrorCode, sendError } from "./errors.js";
import { UsageChunkFilter } from "./stream-usage.js";
import type { Usage } from "./usage.js";

/** Pause before asking an agent that was full again. */
const CAPACITY_RETRY_DELAY_MS = 25;

/** Attempts per request; each one on a different agent. */
const MAX_ATTEMPTS = 3;

export interface ForwardRequest {
  requestId: string;
  connection: ConnectionConfig;
  method: string;
  /** Path and query on the runtime. */
  path: string;
  headers: HeaderPair[];
  body: Buffer;
  decision: Decision;
  /** Unix ms by which the whole exchange must be over. */
  deadlineAt: number;
  /** The gateway asked the runtime for a usage chunk the caller did not ask for: take it out of an SSE answer. */
  stripUsageChunk?: boolean;
}

export interface ForwardContext {
  pool: AgentPool;
  /** Wait for a busy agent to free a slot. */
  queueWaitMs: number;
  /** Wait for an agent to (re)connect when the connection has none. */
  agentWaitMs: number;
  /** Aborted when the client goes away. */
  clientGone: AbortSignal;
  /** Headers every response carries (the session id). */
  responseHeaders: Record<string, string>;
  logger: Logger;
  onRetry?: () => void;
  /** Called when the first response bytes are written to the client. */
  onFirstByte?: () => void;
  /** The stage's spans, when the gateway traces (request-trace.ts). */
  trace?: ForwardTrace | undefined;
}

/** Hooks for the spans of waiting for an agent and of each attempt on one. */
export interface ForwardTrace {
  queueWaitStarted(): void;
  queueWaitEnded(found: boolean): void;
  /** An attempt begins; returns the trace context the agent continues. */
  agentStarted(agentId: string): { traceparent: string; tracestate: string };
  agentEnded(result: { retry: string } | { status: number; error?: string | undefined }): void;
}

export interface ForwardOutcome {
  status: number;
  agentId: string | undefined;
  /** What the agent masked in the response, per entity (from its end part). */
  maskedCounts?: Record<string, number>;
  /** The counts of the usage chunk taken out of the answer (stripUsageChunk). */
  usage?: Usage;
  /** Set when the request did not complete normally. */
  error?: GatewayErrorCode | "client_gone";
}

/**
 * `avoidAgent`: the agent itself failed (gone, draining), so the retry goes
 * elsewhere. `delayMs`: wait before retrying (the agent was momentarily full).
 */
type AttemptResult =
  | { kind: "retry"; reason: string; avoidAgent: boolean; delayMs?: number }
  | { kind: "done"; outcome: ForwardOutcome };

export async function forward(
  request: ForwardRequest,
  res: ServerResponse,
  context: ForwardContext,
): Promise<ForwardOutcome> {
  const { pool, clientGone } = context;
  const tried = new Set<string>();
  let failures = 0;
  // Agents full because of other gateways' requests are retried until the
  // queue wait runs out, like requests waiting for a slot here.
  const queueDeadline = Math.min(Date.now() + context.queueWaitMs, request.deadlineAt);
  while (failures < MAX_ATTEMPTS) {
    const remaining = request.deadlineAt - Date.now();
    const waitMs = Math.min(
      remaining,
      pool.connectedCount(request.connection.id) > 0 ? context.queueWaitMs : context.agentWaitMs,
    );
    context.trace?.queueWaitStarted();
    const lease = await pool.acquire(request.connection.id, { exclude: tried, waitMs, signal: clientGone });
    context.trace?.queueWaitEnded(lease !== undefined);
    if (clientGone.aborted) {
      lease?.release(true);
      return { status: 499, agentId: undefined, error: "client_gone" };
    }
    if (!lease) break;
    const result = await attempt_(request, res, lease, context);
    if (result.kind === "done") return result.outcome;
    context.onRetry?.();
    context.logger.debug({ agentId: lease.tunnel.agentId, reason: result.reason }, "retrying the request");
    if (result.delayMs !== undefined) {
      if (Date.now() + result.delayMs > queueDeadline) break;
      await sleep(result.delayMs, undefined, { signal: clientGone }).catch(() => undefined);
      continue;
    }
    failures++;
    if (result.avoidAgent) tried.add(lease.tunnel.tunnelId);
  }
  if (clientGone.aborted) return { status: 499, agentId: undefined, error: "client_gone" };
  const error = new GatewayError(
    "no_agent_available",
    `no agent for connection "${request.connection.name}" is available right now`,
  );
  sendError(res, error, context.responseHeaders);
  return { status: error.status, agentId: undefined, error: error.code };
}

function isEventStream(head: ResponseHead): boolean {
  return head.headers.some(
    ({ name, value }) => name.toLowerCase() === "content-type" && value.toLowerCase().startsWith("text/event-stream"),
  );
}

const AGENT_ERRORS: Partial<Record<ErrorCode, { code: GatewayErrorCode; message: string }>> = {
  ERROR_CODE_RUNTIME_TIMEOUT: { code: "upstream_timeout", message: "the model runtime did not answer in time" },
  ERROR_CODE_INVALID_REQUEST: { code: "invalid_request", message: "the agent refused the request" },
  ERROR_CODE_MASKING_FAILED: {
    code: "masking_failed",
    message: "the response could not be masked, so the rest of it was withheld",
  },
};

function attempt_(request: ForwardRequest, res: ServerResponse, lease: Lease, context: ForwardContext) {
  const { slot, tunnel } = lease;
  const { call } = slot;
  const agentId = tunnel.agentId;
  return new Promise<AttemptResult>((resolve) => {
    // The agent may have gone between opening the slot and now.
    if (slot.closed) {
      lease.release(false);
      return resolve({ kind: "retry", reason: "slot already closed", avoidAgent: false });
    }
    let started = false;
    let settled = false;
    let status = 0;
    let usageFilter: UsageChunkFilter | undefined;
    const traceHeaders = context.trace?.agentStarted(agentId);

    /** `reusable`: the agent ended the request itself, so the slot can take the next one. */
    const finish = (result: AttemptResult, reusable: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      context.clientGone.removeEventListener("abort", onClientGone);
      res.off("drain", onDrain);
      slot.handler = undefined;
      if (call.isPaused()) call.resume();
      lease.release(reusable);
      context.trace?.agentEnded(result.kind === "retry" ? { retry: result.reason } : result.outcome);
      resolve(result);
    };
    const done = (outcome: Omit<ForwardOutcome, "agentId">, reusable: boolean) =>
      finish(
        {
          kind: "done",
          outcome: usageFilter?.usage ? { ...outcome, agentId, usage: usageFilter.usage } : { ...outcome, agentId },
        },
        reusable,
      );

    const fail = (code: GatewayErrorCode, message: string, reusable: boolean) => {
      if (res.headersSent) {
        failStartedResponse(res, code, message);
        done({ status, error: code }, reusable);
      } else {
        const error = new GatewayError(code, message);
        sendError(res, error, context.responseHeaders);
        done({ status: error.status, error: code }, reusable);
      }
    };

    /** Stops the runtime request: the agent aborts it on the cancel frame, or when the slot closes. */
    const cancel = (reason: string) => {
      if (!call.writableEnded && !slot.closed) call.write({ cancel: { reason } });
    };

    const onClientGone = () => {
      cancel("client disconnected");
      done({ status: status || 499, error: "client_gone" }, false);
    };
    context.clientGone.addEventListener("abort", onClientGone, { once: true });

    const deadline = setTimeout(
      () => {
        cancel("gateway deadline passed");
        fail("upstream_timeout", "the model runtime did not answer in time", false);
      },
      Math.max(0, request.deadlineAt - Date.now()),
    );

    const onDrain = () => call.resume();

    const handleFrame = (frame: AgentFrame) => {
      if (frame.started) {
        started = true;
      } else if (frame.part) {
        const { head, end, maskedCounts } = frame.part;
        let { body } = frame.part;
        if (head && request.stripUsageChunk && isEventStream(head)) usageFilter = new UsageChunkFilter();
        if (usageFilter) {
          body = usageFilter.push(body);
          if (end) body = Buffer.concat([body, usageFilter.flush()]);
        }
        if (head) {
          if (res.headersSent) throw new Error("a second response head");
          res.writeHead(head.status, responseHeaders(head, body, end));
          status = head.status;
          // Send the head now: a streaming client sees the status as soon
          // as the runtime does, before the first token.
          if (!end && body.length === 0) res.flushHeaders();
          context.onFirstByte?.();
        } else if (!res.headersSent) {
          throw new Error("a response part before the head");
        }
        if (end) {
          res.end(body.length > 0 && request.method !== "HEAD" ? body : undefined);
          return done(Object.keys(maskedCounts).length > 0 ? { status, maskedCounts } : { status }, true);
        }
        // Backpressure per request: a slow client pauses only its own
        // stream, and HTTP/2 flow control carries that back to the agent.
        if (body.length > 0 && !res.write(body)) {
          call.pause();
          res.once("drain", onDrain);
        }
      } else if (frame.error) {
        const { code, message } = frame.error;
        if (!started && code === "ERROR_CODE_AT_CAPACITY") {
          // Full because of another gateway's requests: try again shortly, here or elsewhere.
          return finish({ kind: "retry", reason: message, avoidAgent: false, delayMs: CAPACITY_RETRY_DELAY_MS }, true);
        }
        if (!started && code === "ERROR_CODE_DRAINING") {
          return finish({ kind: "retry", reason: message, avoidAgent: true }, true);
        }
        const mapped = AGENT_ERRORS[code] ?? { code: "upstream_error", message: "the model runtime failed" };
        fail(mapped.code, code === "ERROR_CODE_INVALID_REQUEST" ? message : mapped.message, true);
      }
    };

    const responseHeaders = (head: ResponseHead, body: Buffer, end: boolean) => {
      if (!Number.isInteger(head.status) || head.status < 100 || head.status > 599 || head.status === 101) {
        throw new Error(`status ${head.status}`);
      }
      const forwarded = headersForCaller(head.headers);
      for (const { name, value } of forwarded) {
        validateHeaderName(name);
        validateHeaderValue(name, value);
      }
      const headers = headerRecord(forwarded);
      Object.assign(headers, context.responseHeaders);
      // The whole body is here: say how long it is instead of chunking (a
      // HEAD answer keeps the runtime's own length).
      if (end && request.method !== "HEAD") headers["content-length"] = String(body.length);
      if (String(headers["content-type"] ?? "").startsWith("text/event-stream")) headers["x-accel-buffering"] = "no";
      return headers;
    };

    slot.handler = {
      onFrame(frame) {
        if (settled) return;
        // Agents are trusted with their runtime, not with the gateway: a
        // frame Node cannot send (bad status, header with CR/LF) fails this
        // request, never the process.
        try {
          handleFrame(frame);
        } catch (error) {
          context.logger.warn({ err: error, agentId }, "agent sent an unusable response; failing the request");
          fail("upstream_error", "the agent sent an invalid response", false);
        }
      },
      // The slot closed without an end or error frame: the agent or its
      // tunnel went away.
      onClosed() {
        if (settled) return;
        if (!started)
          return finish(
            { kind: "retry", reason: "agent disconnected before starting the request", avoidAgent: true },
            false,
          );
        fail("upstream_error", "the agent disconnected during the request", false);
      },
    };

    call.write({
      request: {
        requestId: request.requestId,
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
        decision: request.decision,
        timeoutMs: Math.max(1, request.deadlineAt - Date.now()),
        ...traceHeaders,
      },
    });
  });
}
