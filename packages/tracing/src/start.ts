// A process's tracer: an SDK tracer provider exporting over OTLP/HTTP in
// batches when tracing is configured (settings.ts), and nothing at all
// otherwise. The provider is never registered globally: each app gets its
// own and hands its tracer to the code that makes spans, so the gateway,
// agent and control plane keep their own service.name when the zero-config
// launcher or a test runs them in one process, and a process without
// tracing pays one `undefined` check per stage, not even a no-op span.
import type { Tracer } from "@opentelemetry/api";
import type { Sampler } from "@opentelemetry/sdk-trace";
import type { TracingSettings } from "./settings.js";

export interface Tracing {
  /** Undefined when tracing is off: callers skip their spans altogether. */
  readonly tracer: Tracer | undefined;
  /** Exports what is buffered and stops; call once, on the process's way out. */
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  /** `service.name` of the spans, unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise. */
  serviceName: string;
  serviceVersion: string;
  /**
   * Whether the sampling flag of a remote parent decides. An agent follows
   * its gateway (`follow`); a gateway's remote parents are its callers,
   * whose flag must not turn tracing of their requests off, or on past the
   * configured ratio (`ignore`: sampled as if each were a new trace, in the
   * caller's trace all the same).
   */
  remoteSampling: "follow" | "ignore";
}

const OFF: Tracing = { tracer: undefined, shutdown: () => Promise.resolve() };

/** Starts tracing as `settings` say; undefined settings (tracing off) load nothing of the SDK. */
export async function startTracing(
  settings: TracingSettings | undefined,
  options: StartTracingOptions,
): Promise<Tracing> {
  if (!settings) return OFF;
  // Loaded only when used: a process without tracing carries none of it.
  const [sdk, resources, exporterModule] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/resources"),
    settings.protocol === "http/json"
      ? import("@opentelemetry/exporter-trace-otlp-http")
      : import("@opentelemetry/exporter-trace-otlp-proto"),
  ]);
  // The exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout,
  // compression, certificates) from the environment itself.
  const exporter = new exporterModule.OTLPTraceExporter();
  // Later resources win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
  // over the app's name, a random service.instance.id telling replicas apart.
  const resource = resources
    .defaultResource()
    .merge(
      resources.resourceFromAttributes({
        "service.name": options.serviceName,
        "service.version": options.serviceVersion,
      }),
    )
    .merge(resources.detectResources({ detectors: [resources.serviceInstanceIdDetector, resources.envDetector] }));
  const provider = new sdk.TracerProvider({
    resource,
    sampler: samplerOf(sdk, settings, options.remoteSampling),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, ...settings.batch })],
  });
  const tracer = provider.getTracer("modelgate", options.serviceVersion);
  let stopped: Promise<void> | undefined;
  return {
    tracer,
    shutdown() {
      stopped ??= provider.shutdown();
      return stopped;
    },
  };
}

function samplerOf(
  sdk: typeof import("@opentelemetry/sdk-trace"),
  settings: TracingSettings,
  remoteSampling: StartTracingOptions["remoteSampling"],
): Sampler {
  const root = (name: "always_on" | "always_off" | "traceidratio"): Sampler =>
    name === "always_on"
      ? new sdk.AlwaysOnSampler()
      : name === "always_off"
        ? new sdk.AlwaysOffSampler()
        : new sdk.TraceIdRatioBasedSampler(settings.ratio);
  const { sampler } = settings;
  if (!sampler.startsWith("parentbased_")) return root(sampler as "always_on" | "always_off" | "traceidratio");
  const decide = root(sampler.slice("parentbased_".length) as "always_on" | "always_off" | "traceidratio");
  return new sdk.ParentBasedSampler(
    remoteSampling === "follow"
      ? { root: decide }
      : { root: decide, remoteParentSampled: decide, remoteParentNotSampled: decide },
  );
}
