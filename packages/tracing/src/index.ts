// Tracing for modelgate's processes: the standard OpenTelemetry variables
// (settings.ts), a tracer per app exporting over OTLP/HTTP, or none
// (start.ts), and W3C trace context at the boundaries (context.ts).
// Span names and attributes are the apps' own (docs/observability.md).
export { isTraceparent, remoteContext, type TraceHeaders, traceHeaders } from "./context.js";
export { type SamplerName, type TracingSettings, tracingSettings } from "./settings.js";
export { type StartTracingOptions, startTracing, type Tracing } from "./start.js";
