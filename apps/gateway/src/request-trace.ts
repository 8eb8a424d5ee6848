// One request's spans, when the gateway traces (docs/observability.md#tracing):
//
//   POST /v1/chat/completions   SERVER  the request, in the caller's trace when it sent one
//     authenticate              INTERNAL
//     policy                    INTERNAL  decision, approval wait, audit place, rate limits
//     queue_wait                INTERNAL  waiting for an agent's free slot (one per attempt)
//     agent                     CLIENT    the exchange with an agent (one per attempt);
//                                         the agent's spans are its children
//
// The pipeline calls in at its stages (ingress.ts, forward.ts) through an
// optional object: without tracing there is no object, and each hook costs
// one `undefined` check. Attributes come from fixed sets, configuration
// (connections, models a connection lists) and counts: never a prompt, an
// answer, a credential or who the caller is (docs/observability.md).
import type { IncomingMessage } from "node:http";
import type { AuditRecord } from "@modelgate/audit";
import type { BodyFormat } from "@modelgate/policy";
import { remoteContext, type TraceHeaders, traceHeaders } from "@modelgate/tracing";
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { ForwardTrace } from "./forward.js";
import type { TargetedRequest } from "./target.js";

/** GenAI semantic conventions' operation names, by body format. */
const GEN_AI_OPERATIONS: Partial<Record<BodyFormat, string>> = {
  "openai.chat": "chat",
  "ollama.chat": "chat",
  "openai.completions": "text_completion",
  "ollama.generate": "text_completion",
  "tgi.generate": "text_completion",
  "openai.embeddings": "embeddings",
  "ollama.embed": "embeddings",
};

/** The policy span's decision for refusals that are not plain denials (as in the audit record). */
const POLICY_REFUSALS: Record<string, string> = {
  prompt_blocked: "blocked",
  rate_limited: "rate_limited",
  approval_required: "approval_required",
};

/** Stages with a span of their own in ingress.ts. */
type Stage = "authenticate" | "policy";

/** Codes of failures (5xx) rather than refusals: only these mark a span as an error. */
const isFailure = (status: number) => status >= 500;

export class RequestTrace implements ForwardTrace {
  readonly #tracer: Tracer;
  readonly #span: Span;
  readonly #context: Context;
  #stage: Span | undefined;
  #stageName: Stage | undefined;
  #queueWait: Span | undefined;
  #agent: Span | undefined;

  constructor(tracer: Tracer, req: IncomingMessage, route: string, sessionId: string) {
    this.#tracer = tracer;
    const method = req.method ?? "GET";
    const matched = route !== "unmatched";
    // The caller's context is taken for parentage only (start.ts decides
    // sampling as for a new trace), and never forwarded as it came.
    const parent = remoteContext(req.headers.traceparent, req.headers.tracestate) ?? ROOT_CONTEXT;
    this.#span = tracer.startSpan(
      matched ? `${method} ${route}` : method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "http.request.method": method,
          ...(matched ? { "http.route": route } : {}),
          "modelgate.session_id": sessionId,
        },
      },
      parent,
    );
    this.#context = trace.setSpan(parent, this.#span);
  }

  /** Starts a stage's span, ending the one before if it is still open. */
  begin(stage: Stage): void {
    this.#stage?.end();
    this.#stage = this.#tracer.startSpan(stage, { kind: SpanKind.INTERNAL }, this.#context);
    this.#stageName = stage;
  }

  /** Ends the open stage's span: it passed (the policy allowed the request). */
  end(): void {
    if (this.#stageName === "policy") this.#stage?.setAttribute("modelgate.decision", "allowed");
    this.#close();
  }

  #close(): void {
    this.#stage?.end();
    this.#stage = undefined;
    this.#stageName = undefined;
  }

  /** The request was refused (or failed) in the open stage, if any: the code goes on its span. */
  refused(code: string, status: number): void {
    const stage = this.#stage;
    if (!stage) return;
    stage.setAttribute("modelgate.error_code", code);
    if (this.#stageName === "policy") stage.setAttribute("modelgate.decision", POLICY_REFUSALS[code] ?? "denied");
    if (isFailure(status)) stage.setStatus({ code: SpanStatusCode.ERROR, message: code });
    this.#close();
  }

  /** The body named its model and connection. */
  targeted(target: TargetedRequest): void {
    const operation = GEN_AI_OPERATIONS[target.kind.format];
    if (operation) this.#span.setAttribute("gen_ai.operation.name", operation);
    if (target.model !== undefined) this.#span.setAttribute("gen_ai.request.model", target.model.slice(0, 256));
  }

  queueWaitStarted(): void {
    this.#queueWait = this.#tracer.startSpan("queue_wait", { kind: SpanKind.INTERNAL }, this.#context);
  }

  queueWaitEnded(found: boolean): void {
    const span = this.#queueWait;
    if (!span) return;
    if (!found) span.setAttribute("modelgate.error_code", "no_agent_available");
    span.end();
    this.#queueWait = undefined;
  }

  agentStarted(agentId: string): TraceHeaders {
    this.#agent?.end();
    const span = this.#tracer.startSpan(
      "agent",
      { kind: SpanKind.CLIENT, attributes: { "modelgate.agent_id": agentId } },
      this.#context,
    );
    this.#agent = span;
    return traceHeaders(trace.setSpan(this.#context, span));
  }

  agentEnded(result: { retry: string } | { status: number; error?: string | undefined }): void {
    const span = this.#agent;
    if (!span) return;
    if ("retry" in result) {
      // Another attempt follows, on this agent or another one.
      span.setAttribute("modelgate.retried", true);
    } else {
      if (result.status > 0) span.setAttribute("http.response.status_code", result.status);
      if (result.error !== undefined) span.setAttribute("modelgate.error_code", result.error);
      if (result.error !== undefined && result.error !== "client_gone") {
        span.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
      }
    }
    span.end();
    this.#agent = undefined;
  }

  /** The request is over and recorded: what the record says, minus anything personal, then the end. */
  finish(record: AuditRecord): void {
    // Spans a failure left open end with the request.
    this.#close();
    this.#queueWait?.end();
    this.#agent?.end();
    const span = this.#span;
    const status = record.responseStatus ?? 0;
    if (status > 0) span.setAttribute("http.response.status_code", status);
    span.setAttribute("modelgate.decision", record.decision);
    if (record.operation !== undefined) span.setAttribute("modelgate.operation", record.operation);
    if (record.connection !== undefined) span.setAttribute("modelgate.connection", record.connection);
    const usage = record.usage;
    if (usage?.prompt_tokens !== undefined) span.setAttribute("gen_ai.usage.input_tokens", usage.prompt_tokens);
    if (usage?.completion_tokens !== undefined)
      span.setAttribute("gen_ai.usage.output_tokens", usage.completion_tokens);
    const code = record.error?.code;
    if (code !== undefined) span.setAttribute("modelgate.error_code", code);
    if (isFailure(status)) {
      span.setAttribute("error.type", code ?? String(status));
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
    }
    span.end();
  }
}

/** The request's trace, or undefined when the gateway does not trace. */
export function startRequestTrace(
  tracer: Tracer | undefined,
  req: IncomingMessage,
  route: string,
  sessionId: string,
): RequestTrace | undefined {
  return tracer ? new RequestTrace(tracer, req, route, sessionId) : undefined;
}
