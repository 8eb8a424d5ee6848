// Endpoints that vLLM and TGI share for operations: health and metrics.
import type { RequestContext, Route } from "../context.js";
import { sendText } from "../http.js";
import { FixtureRequestError } from "../protocol-errors.js";

export const operationsRoutes: readonly Route[] = [
  { path: "/health", protocol: "generic", methods: { GET: health } },
  { path: "/metrics", protocol: "generic", methods: { GET: metrics } },
];

/** vLLM and TGI answer a healthy probe with 200 and an empty body. */
function health(context: RequestContext): void {
  if (!context.fixture.healthy) throw new FixtureRequestError(503, "the runtime is unhealthy");
  context.res.writeHead(200, { "content-length": 0 });
  context.res.end();
}

function metrics(context: RequestContext): void {
  const totals = context.fixture.recorder.totals;
  const lines = [
    metric("fixture_requests_total", "counter", "Requests received by the runtime fixture.", totals.requests),
    metric(
      "fixture_requests_aborted_total",
      "counter",
      "Requests whose client went away before the response finished.",
      totals.aborted,
    ),
    metric("fixture_stream_chunks_total", "counter", "Streamed content chunks written.", totals.chunks),
    metric("fixture_requests_in_flight", "gauge", "Requests whose response has not finished.", totals.inFlight),
    metric(
      "fixture_requests_processing",
      "gauge",
      "Requests the fixture is still working on; drops at once when a client aborts.",
      totals.processing,
    ),
  ];
  sendText(context.res, 200, lines.join(""), "text/plain; version=0.0.4; charset=utf-8");
}

function metric(name: string, type: "counter" | "gauge", help: string, value: number): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
}
