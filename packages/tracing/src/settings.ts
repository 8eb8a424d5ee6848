// Which tracing a process runs, from the standard OpenTelemetry variables.
// The OTLP exporter reads its own (endpoint, headers, timeout, compression,
// certificates) from the environment; the trace SDK no longer reads any
// (sdk-trace 3), so the sampler and batching variables are read here, with
// the same names and defaults the specification gives them.
import { ConfigError, envBoolean, parseEnv } from "@modelgate/core";
import { z } from "zod";

export type SamplerName =
  | "always_on"
  | "always_off"
  | "traceidratio"
  | "parentbased_always_on"
  | "parentbased_always_off"
  | "parentbased_traceidratio";

export interface TracingSettings {
  /** OTLP over HTTP: protobuf (the specification's default) or JSON. */
  protocol: "http/protobuf" | "http/json";
  sampler: SamplerName;
  /** The ratio of the `traceidratio` samplers (OTEL_TRACES_SAMPLER_ARG), 0-1. */
  ratio: number;
  batch: {
    scheduledDelayMillis: number;
    exportTimeoutMillis: number;
    maxQueueSize: number;
    maxExportBatchSize: number;
  };
}

const millis = z.coerce.number().int().min(0).max(3_600_000);
const count = z.coerce.number().int().min(1).max(1_000_000);
const endpoint = z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" });
const protocol = z.enum(["http/protobuf", "http/json", "grpc"]);

const schema = z.object({
  OTEL_SDK_DISABLED: envBoolean.default(false),
  OTEL_TRACES_EXPORTER: z.enum(["otlp", "none"]).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: endpoint.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint.optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: protocol.optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol.optional(),
  OTEL_TRACES_SAMPLER: z
    .enum([
      "always_on",
      "always_off",
      "traceidratio",
      "parentbased_always_on",
      "parentbased_always_off",
      "parentbased_traceidratio",
    ])
    .default("parentbased_always_on"),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
  OTEL_BSP_SCHEDULE_DELAY: millis.default(5_000),
  OTEL_BSP_EXPORT_TIMEOUT: millis.default(30_000),
  OTEL_BSP_MAX_QUEUE_SIZE: count.default(2_048),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: count.default(512),
});

/**
 * The process's tracing, or undefined when it has none: no OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
 * `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Empty variables
 * count as unset; a variable set to something unusable is a ConfigError
 * naming it, at start.
 */
export function tracingSettings(env: Readonly<Record<string, string | undefined>>): TracingSettings | undefined {
  const parsed = parseEnv(schema, env);
  if (parsed.OTEL_SDK_DISABLED || parsed.OTEL_TRACES_EXPORTER === "none") return undefined;
  if (parsed.OTEL_EXPORTER_OTLP_ENDPOINT === undefined && parsed.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT === undefined) {
    return undefined;
  }
  const chosen = parsed.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? parsed.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf";
  if (chosen === "grpc") {
    throw new ConfigError(
      "invalid configuration:\n  OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported; use http/protobuf (port 4318 of a collector)",
    );
  }
  if (parsed.OTEL_BSP_MAX_EXPORT_BATCH_SIZE > parsed.OTEL_BSP_MAX_QUEUE_SIZE) {
    throw new ConfigError(
      "invalid configuration:\n  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must not be larger than OTEL_BSP_MAX_QUEUE_SIZE",
    );
  }
  return {
    protocol: chosen,
    sampler: parsed.OTEL_TRACES_SAMPLER,
    ratio: parsed.OTEL_TRACES_SAMPLER_ARG ?? 1,
    batch: {
      scheduledDelayMillis: parsed.OTEL_BSP_SCHEDULE_DELAY,
      exportTimeoutMillis: parsed.OTEL_BSP_EXPORT_TIMEOUT,
      maxQueueSize: parsed.OTEL_BSP_MAX_QUEUE_SIZE,
      maxExportBatchSize: parsed.OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    },
  };
}
