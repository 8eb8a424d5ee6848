// One exchange's spans, when the agent traces (docs/observability.md#tracing),
// children of the gateway's `agent` span whose context the request carries:
//
//   agent.request   SERVER    the request, from the gateway's frame to its end part or error
//     runtime       CLIENT    the HTTP call to the runtime, which gets this span's traceparent
//     masking       INTERNAL  masking the answer, when the policy asks; counts per entity
//
// Attributes are counts and fixed values: never a prompt, an answer or the
// runtime's credential.
import type { HeaderPair } from "@modelgate/core";
import { MASK_NAME } from "@modelgate/masking";
import type { RequestHead } from "@modelgate/protocol";
import { isTraceparent, remoteContext, type TraceHeaders, traceHeaders } from "@modelgate/tracing";
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { ExchangeOutcome } from "./exchange.js";

export class ExchangeTrace {
  readonly #tracer: Tracer;
  readonly #span: Span;
  readonly #context: Context;
  #runtime: Span | undefined;
  #masking: Span | undefined;

  constructor(tracer: Tracer, head: RequestHead) {
    this.#tracer = tracer;
    const parent = remoteContext(head.traceparent, head.tracestate) ?? ROOT_CONTEXT;
    this.#span = tracer.startSpan(
      "agent.request",
      {
        kind: SpanKind.SERVER,
        attributes: {
          "modelgate.session_id": head.decision?.sessionId ?? "",
          "modelgate.operation": head.decision?.operation ?? "",
        },
      },
      parent,
    );
    this.#context = trace.setSpan(parent, this.#span);
  }

  /** The runtime call starts: its span, and the headers that make the runtime's own spans its children. */
  runtimeStarted(method: string, runtimeOrigin: string): TraceHeaders {
    const origin = new URL(runtimeOrigin);
    const span = this.#tracer.startSpan(
      "runtime",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "http.request.method": method,
          "server.address": origin.hostname,
          "server.port": Number(origin.port || (origin.protocol === "https:" ? 443 : 80)),
        },
      },
      this.#context,
    );
    this.#runtime = span;
    return traceHeaders(trace.setSpan(this.#context, span));
  }

  runtimeResponded(status: number): void {
    this.#runtime?.setAttribute("http.response.status_code", status);
  }

  /** The runtime's answer has been read to its end. */
  runtimeDone(): void {
    this.#runtime?.end();
    this.#runtime = undefined;
  }

  maskingStarted(style: string): void {
    this.#masking = this.#tracer.startSpan(
      "masking",
      { kind: SpanKind.INTERNAL, attributes: { "modelgate.masking.style": style } },
      this.#context,
    );
  }

  /** What masking replaced, per entity: counts only, never a value. */
  masked(counts: Record<string, number>): void {
    const span = this.#masking;
    if (!span) return;
    let total = 0;
    for (const [entity, count] of Object.entries(counts)) {
      if (!MASK_NAME.test(entity)) continue;
      span.setAttribute(`modelgate.masked.${entity}`, count);
      total += count;
    }
    span.setAttribute("modelgate.masked_total", total);
    span.end();
    this.#masking = undefined;
  }

  /** The exchange is over; spans still open end with its outcome. */
  end(outcome: ExchangeOutcome): void {
    const failed = outcome !== "completed" && outcome !== "aborted";
    for (const span of [this.#masking, this.#runtime]) {
      if (!span) continue;
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      span.end();
    }
    this.#masking = undefined;
    this.#runtime = undefined;
    this.#span.setAttribute("modelgate.agent.outcome", outcome);
    if (failed) this.#span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
    this.#span.end();
  }
}

/**
 * The trace context the runtime gets: the runtime span's when the agent
 * traces; else the gateway's, passed on unchanged, so a runtime that traces
 * (vLLM can) still joins the trace; else none.
 */
export function runtimeTraceHeaders(
  exchange: ExchangeTrace | undefined,
  head: RequestHead,
  method: string,
  origin: string,
): TraceHeaders | undefined {
  if (exchange) return exchange.runtimeStarted(method, origin);
  if (head.traceparent && isTraceparent(head.traceparent)) {
    return { traceparent: head.traceparent, tracestate: head.tracestate };
  }
  return undefined;
}

/** `headers` with the trace context's in place of any the request brought. */
export function withTraceHeaders(headers: readonly HeaderPair[], context: TraceHeaders): HeaderPair[] {
  const kept = headers.filter(({ name }) => {
    const lower = name.toLowerCase();
    return lower !== "traceparent" && lower !== "tracestate";
  });
  kept.push({ name: "traceparent", value: context.traceparent });
  if (context.tracestate) kept.push({ name: "tracestate", value: context.tracestate });
  return kept;
}
