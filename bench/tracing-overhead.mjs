#!/usr/bin/env node
// Tracing micro-benchmark: the CPU the gateway's and the agent's spans of
// one request cost (docs/benchmarks.md#tracing), by the same code the
// pipeline calls (request-trace.ts, exchange-trace.ts), exported as
// OTLP/protobuf in batches to a sink in a child process (its CPU is not
// counted). CPU time (process.cpuUsage), not wall time, so a shared machine
// blurs it less; still, read it as "tens of microseconds", not to the digit.
//
// Runs the built apps: `npm run build` first, then
// `scripts/with-node.sh node bench/tracing-overhead.mjs`.
// Environment: BENCH_ROUNDS (default 15), BENCH_REQUESTS (default 1500 per round, at most 1900).
import { fork } from "node:child_process";
import { once } from "node:events";
import { ExchangeTrace } from "../apps/agent/dist/exchange-trace.js";
import { startRequestTrace } from "../apps/gateway/dist/request-trace.js";
import { startTracing, tracingSettings } from "../packages/tracing/dist/index.js";
import { median } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 15);
// 8 spans each, flushed at the end of the round in batches of 512 sent at
// once: the exporter takes at most 30 exports at a time.
const REQUESTS = Math.min(1_900, Number(process.env.BENCH_REQUESTS || 1_500));

const sink = fork(
  "-e",
  [
    `require("node:http").createServer((req, res) => { req.resume(); req.on("end", () => res.end()); })
       .listen(0, "127.0.0.1", function () { process.send(this.address().port); });`,
  ],
  { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"], execPath: process.execPath },
);
const [port] = await once(sink, "message");
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;
// Room for a whole round's spans: none is dropped unexported (a dropped span would cost less).
process.env.OTEL_BSP_MAX_QUEUE_SIZE = String(REQUESTS * 8);
const settings = tracingSettings(process.env);
const tracings = () =>
  Promise.all([
    startTracing(settings, { serviceName: "g", serviceVersion: "b", remoteSampling: "ignore" }),
    startTracing(settings, { serviceName: "a", serviceVersion: "b", remoteSampling: "follow" }),
  ]);

const req = { method: "POST", headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } };
const target = { kind: { format: "openai.chat" }, model: "demo-chat" };
const record = {
  responseStatus: 200,
  decision: "masked",
  operation: "inference",
  connection: "bench",
  usage: { prompt_tokens: 12, completion_tokens: 120, total_tokens: 132 },
};

/** One request's hooks, in the pipeline's order; `gatewayTracer`/`agentTracer` undefined: tracing off. */
function request(gatewayTracer, agentTracer, index) {
  const trace = startRequestTrace(gatewayTracer, req, "/v1/chat/completions", `session-${index}`);
  trace?.begin("authenticate");
  trace?.end();
  trace?.targeted(target);
  trace?.begin("policy");
  trace?.end();
  trace?.queueWaitStarted();
  trace?.queueWaitEnded(true);
  const headers = trace?.agentStarted("agent-1");
  const head = {
    traceparent: headers?.traceparent ?? "",
    tracestate: headers?.tracestate ?? "",
    decision: { sessionId: `session-${index}`, operation: "inference" },
  };
  const exchange = agentTracer ? new ExchangeTrace(agentTracer, head) : undefined;
  exchange?.runtimeStarted("POST", "http://127.0.0.1:8000");
  exchange?.runtimeResponded(200);
  exchange?.maskingStarted("label");
  exchange?.runtimeDone();
  exchange?.masked({ EMAIL: 1 });
  exchange?.end("completed");
  trace?.agentEnded({ status: 200 });
  trace?.finish(record);
}

/** CPU µs per request: the hooks, then exporting every span (shutdown flushes), in one window. */
async function cpuMicrosPerRequest(on) {
  const [gateway, agent] = on ? await tracings() : [{}, {}];
  const start = process.cpuUsage();
  for (let index = 0; index < REQUESTS; index++) request(gateway.tracer, agent.tracer, index);
  if (on) await Promise.all([gateway.shutdown(), agent.shutdown()]);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / REQUESTS;
}

const results = { off: [], on: [] };
// Warm-up, then alternate so drift hits both alike.
await cpuMicrosPerRequest(true);
for (let round = 0; round < ROUNDS; round++) {
  results.off.push(await cpuMicrosPerRequest(false));
  results.on.push(await cpuMicrosPerRequest(true));
}
sink.kill();

const show = (values) =>
  `median ${median(values).toFixed(2)} µs (rounds: ${values.map((v) => v.toFixed(1)).join(", ")})`;
out(`tracing off: ${show(results.off)} CPU per request (gateway + agent hooks)`);
out(`tracing on:  ${show(results.on)} CPU per request (8 spans, batched, OTLP/protobuf export included)`);
