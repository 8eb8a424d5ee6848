import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "@modelgate/core";
import { trace } from "@opentelemetry/api";
import { remoteContext, startTracing, traceHeaders, tracingSettings } from "./index.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

describe("tracingSettings", () => {
  it("is off without an endpoint, with OTEL_SDK_DISABLED or with OTEL_TRACES_EXPORTER=none", () => {
    expect(tracingSettings({})).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "" })).toBeUndefined();
    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }),
    ).toBeUndefined();
    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces", OTEL_TRACES_EXPORTER: "none" }),
    ).toBeUndefined();
  });

  it("is on with either endpoint, with the specification's defaults", () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" })).toEqual({
      protocol: "http/protobuf",
      sampler: "parentbased_always_on",
      ratio: 1,
      batch: { scheduledDelayMillis: 5_000, exportTimeoutMillis: 30_000, maxQueueSize: 2_048, maxExportBatchSize: 512 },
    });
    expect(
      tracingSettings({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://collector/v1/traces",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
        OTEL_BSP_SCHEDULE_DELAY: "100",
      }),
    ).toMatchObject({
      protocol: "http/json",
      sampler: "parentbased_traceidratio",
      ratio: 0.25,
      batch: { scheduledDelayMillis: 100 },
    });
  });

  it("refuses what it cannot do, naming the variable", () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };
    expect(() => tracingSettings({ ...on, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL/,
    );
    expect(() => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(ConfigError);
    expect(() => tracingSettings({ ...on, OTEL_TRACES_SAMPLER: "jaeger_remote" })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => tracingSettings({ ...on, OTEL_TRACES_SAMPLER_ARG: "2" })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => tracingSettings({ ...on, OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "4096" })).toThrow(/OTEL_BSP_MAX_EXPORT/);
  });
});

describe("remoteContext", () => {
  it("takes a well-formed traceparent and its tracestate", () => {
    const context = remoteContext(`00-${TRACE_ID}-${SPAN_ID}-01`, "vendor=1") as NonNullable<
      ReturnType<typeof remoteContext>
    >;
    expect(trace.getSpanContext(context)).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, isRemote: true });
    expect(traceHeaders(context)).toEqual({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`, tracestate: "vendor=1" });
  });

  it("ignores missing, malformed, all-zero and oversized values", () => {
    for (const value of [
      undefined,
      "",
      ["a", "b"],
      "00-xyz",
      `00-${"0".repeat(32)}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${"0".repeat(16)}-01`,
      `ff-${TRACE_ID}-${SPAN_ID}-01`,
      // Two headers, as Node joins them.
      `00-${TRACE_ID}-${SPAN_ID}-01, 00-${TRACE_ID}-${SPAN_ID}-01`,
      `01-${TRACE_ID}-${SPAN_ID}-01-${"a".repeat(300)}`,
    ]) {
      expect(remoteContext(value, undefined)).toBeUndefined();
    }
    const context = remoteContext(`00-${TRACE_ID}-${SPAN_ID}-01`, `a=${"b".repeat(2_000)}`);
    expect(context && traceHeaders(context).tracestate).toBe("");
  });
});

describe("startTracing", () => {
  it("makes no tracer when tracing is off", async () => {
    const tracing = await startTracing(undefined, { serviceName: "s", serviceVersion: "1", remoteSampling: "follow" });
    expect(tracing.tracer).toBeUndefined();
    await tracing.shutdown();
  });

  it("decides a caller's sampling itself with `ignore`, follows the parent with `follow`", async () => {
    const settings = tracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
      OTEL_TRACES_SAMPLER: "parentbased_always_off",
    });
    const unsampledParent = remoteContext(`00-${TRACE_ID}-${SPAN_ID}-00`, undefined);
    const sampledParent = remoteContext(`00-${TRACE_ID}-${SPAN_ID}-01`, undefined);
    const gateway = await startTracing(settings, { serviceName: "g", serviceVersion: "1", remoteSampling: "ignore" });
    const agent = await startTracing(settings, { serviceName: "a", serviceVersion: "1", remoteSampling: "follow" });
    // The sampler says "off" for new traces: a caller's sampled flag does not turn it on at the gateway…
    const gatewaySpan = gateway.tracer?.startSpan("s", {}, sampledParent);
    expect(gatewaySpan?.spanContext().traceFlags).toBe(0);
    expect(gatewaySpan?.spanContext().traceId).toBe(TRACE_ID);
    gatewaySpan?.end();
    // …while an agent follows its gateway's decision, either way.
    expect(agent.tracer?.startSpan("s", {}, sampledParent).spanContext().traceFlags).toBe(1);
    expect(agent.tracer?.startSpan("s", {}, unsampledParent).spanContext().traceFlags).toBe(0);
    await Promise.all([gateway.shutdown(), agent.shutdown()]);
  });

  it("exports OTLP protobuf by default, with the app's service name, and flushes on shutdown", async () => {
    const received: { type: string | undefined; body: Buffer }[] = [];
    const server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      received.push({ type: req.headers["content-type"], body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const previous = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    // The exporter reads its endpoint from the environment itself.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
    try {
      const tracing = await startTracing(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }), {
        serviceName: "modelgate-test",
        serviceVersion: "1.2.3",
        remoteSampling: "follow",
      });
      tracing.tracer?.startSpan("one-span").end();
      await tracing.shutdown();
      expect(received).toHaveLength(1);
      expect(received[0]?.type).toBe("application/x-protobuf");
      // Protobuf keeps strings as they are: the names are in the bytes.
      expect(received[0]?.body.includes("modelgate-test")).toBe(true);
      expect(received[0]?.body.includes("one-span")).toBe(true);
    } finally {
      if (previous === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = previous;
      server.close();
    }
  });
});
