// W3C Trace Context (https://www.w3.org/TR/trace-context/) at modelgate's
// boundaries: a caller's `traceparent`/`tracestate` headers in, the same
// two values out to the next hop (the agent, over the tunnel; the runtime,
// as headers). A propagator of our own, never the global one.
import { type Context, defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";

const propagator = new W3CTraceContextPropagator();

/** `traceparent` is 55 characters today; later versions may append fields, so some room, bounded. */
const MAX_TRACEPARENT_LENGTH = 256;
/**
 * The propagator keeps at most 32 members and drops a `tracestate` longer
 * than 512 characters; this bounds what it is given to parse at all.
 */
const MAX_TRACESTATE_LENGTH = 1024;

const TRACEPARENT_00 = /^00-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

/** The two headers of a trace context, as they travel; empty strings when absent. */
export interface TraceHeaders {
  traceparent: string;
  tracestate: string;
}

/**
 * The context of a remote parent (a caller, or the gateway for an agent):
 * undefined for anything missing, oversized or malformed (including an
 * all-zero id). It is used for parentage only: its ids say where the spans
 * belong, nothing in it is trusted for anything else.
 */
export function remoteContext(traceparent: unknown, tracestate: unknown): Context | undefined {
  if (typeof traceparent !== "string" || traceparent === "" || traceparent.length > MAX_TRACEPARENT_LENGTH) {
    return undefined;
  }
  const carrier: Record<string, string> = { traceparent };
  if (typeof tracestate === "string" && tracestate !== "" && tracestate.length <= MAX_TRACESTATE_LENGTH) {
    carrier.tracestate = tracestate;
  }
  const context = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
  return trace.getSpanContext(context) ? context : undefined;
}

/** The headers that make the next hop a child of the span in `context`. */
export function traceHeaders(context: Context): TraceHeaders {
  const carrier: Record<string, string> = {};
  propagator.inject(context, carrier, defaultTextMapSetter);
  return { traceparent: carrier.traceparent ?? "", tracestate: carrier.tracestate ?? "" };
}

/** Whether `value` is a well-formed version-00 `traceparent` (what modelgate itself sends). */
export function isTraceparent(value: string): boolean {
  return (
    TRACEPARENT_00.test(value) &&
    !value.includes("-00000000000000000000000000000000-") &&
    !value.includes("-0000000000000000-")
  );
}
