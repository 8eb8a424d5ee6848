#!/usr/bin/env node
// `npm run bench:memory`: the memory of the gateway and the agent with many
// streams open at once, and per idle keep-alive connection (issue 16's
// memory goals). Starts the same stack as `npm run bench` (fixture, control
// plane with its audit worker, gateway, agent; masking on), opens
// BENCH_STREAMS concurrent streaming requests that each last about
// BENCH_STREAM_S seconds, samples each process's resident memory
// (/proc/<pid>/status VmRSS) every 100 ms, and reports the peak; then opens
// BENCH_IDLE_CONNECTIONS idle keep-alive connections and reports the memory
// they add per connection. See docs/benchmarks.md.
import { mkdirSync, readFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { loadOptions } from "./lib/options.mjs";
import { Services } from "./lib/processes.mjs";
import { formatTable } from "./lib/report.mjs";
import { auditQueue, dropAuditQueue, dropDatabase, startStack } from "./lib/stack.mjs";
import { buildRequest } from "./lib/workloads.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const progress = (text) => process.stderr.write(`${text}\n`);
const integer = (name, fallback) => {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number`);
  return Number(raw);
};

const streams = integer("BENCH_STREAMS", 1000);
const streamSeconds = integer("BENCH_STREAM_S", 10);
const idleConnections = integer("BENCH_IDLE_CONNECTIONS", 1000);
// true: a heap snapshot of the gateway and the agent halfway through the streams, in the run's folder.
const heapSnapshots = process.env.BENCH_HEAP_SNAPSHOT?.trim() === "true";

/** Resident memory of a process, MiB. */
function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1] ?? Number.NaN) / 1024;
}

/** One streaming request read to its end; resolves with its status. */
function stream(request, agent) {
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        host: request.url.hostname,
        port: request.url.port,
        path: request.url.pathname,
        method: "POST",
        headers: { ...request.headers, "content-length": Buffer.byteLength(request.body) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
        res.on("error", () => resolve(0));
      },
    );
    req.on("error", () => resolve(0));
    req.end(request.body);
  });
}

async function main() {
  const options = {
    ...loadOptions([], process.env),
    connections: streams,
    logLevel: process.env.BENCH_LOG_LEVEL?.trim() || "info",
    // One API key opens every stream: lift the per-caller cap (64) for this measurement.
    gatewayEnv: { MODELGATE_MAX_IN_FLIGHT_PER_SUBJECT: String(streams + 100) },
  };
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const runDir = path.join(benchDir, "results", `memory-${stamp}`);
  // BENCH_NODE_ARGS and BENCH_MALLOC_ARENA_MAX reach the gateway and the
  // agent through loadOptions (options.hopRuntime), as in `npm run bench`.
  if (heapSnapshots) {
    const snapshotArgs = ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${runDir}`];
    options.gatewayNodeArgs = snapshotArgs;
    options.agentNodeArgs = snapshotArgs;
  }
  mkdirSync(runDir, { recursive: true });
  const services = new Services(runDir);
  const audit = auditQueue();
  process.on("exit", () => services.killAllNow());
  try {
    progress(`bench: starting the stack (logs in ${runDir})`);
    const stack = await startStack(services, { ...options, stages: false }, { profileDir: runDir, audit });
    const target = stack.targets.find((item) => item.name === "modelgate");
    const processes = { gateway: stack.gateway.pid, agent: stack.agent.pid };
    const sample = () => Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, rssMiB(pid)]));
    // Warm: code paths compiled, pools filled, before the baseline reading.
    const warmRequest = buildRequest(target, { streaming: true, streamChunks: 5, chunkIntervalMs: 5 });
    await Promise.all(Array.from({ length: 50 }, () => stream(warmRequest, false)));
    await stack.auditDrained();
    await sleep(1_000);
    const idle = sample();

    progress(`bench: ${idleConnections} idle keep-alive connections`);
    // Before the streams: afterwards the heaps have grown, and new sockets fit in what they hold.
    const before = sample();
    // Each connection answers one request (the gateway's health check) and then stays open, idle, in the client's keep-alive pool.
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: idleConnections, maxFreeSockets: idleConnections });
    const gatewayUrl = new URL(target.url);
    await Promise.all(
      Array.from(
        { length: idleConnections },
        () =>
          new Promise((resolve) => {
            const req = http.get(
              { agent: keepAlive, host: gatewayUrl.hostname, port: gatewayUrl.port, path: "/healthz" },
              (res) => {
                res.resume();
                res.on("end", resolve);
              },
            );
            req.on("error", resolve);
          }),
      ),
    );
    await sleep(1_000);
    const withIdle = sample();
    const openSockets = Object.values(keepAlive.freeSockets).reduce((sum, list) => sum + list.length, 0);
    keepAlive.destroy();

    const chunkIntervalMs = 100;
    const request = buildRequest(target, {
      streaming: true,
      streamChunks: Math.max(1, Math.round((streamSeconds * 1000) / chunkIntervalMs)),
      chunkIntervalMs,
    });
    progress(`bench: ${streams} streams of about ${streamSeconds} s at once`);
    const peak = { gateway: 0, agent: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = sample();
        for (const name of Object.keys(peak)) peak[name] = Math.max(peak[name], now[name]);
        await sleep(100);
      }
    })();
    const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
    const snapshot = heapSnapshots
      ? sleep((streamSeconds * 1000) / 2).then(() => {
          progress("bench: heap snapshots of the gateway and the agent");
          for (const pid of Object.values(processes)) process.kill(pid, "SIGUSR2");
        })
      : Promise.resolve();
    const statuses = await Promise.all(Array.from({ length: streams }, () => stream(request, agent)));
    await snapshot;
    sampling = false;
    await sampler;
    const completed = statuses.filter((status) => status === 200).length;
    await stack.auditDrained();
    await sleep(2_000);
    const after = sample();

    const cpu = os.cpus()[0]?.model ?? "unknown";
    process.stdout.write(
      `\nmodelgate memory benchmark: ${os.availableParallelism()} CPUs (${cpu}), Node ${process.version}; ` +
        `${completed}/${streams} streams completed (200)\n\n`,
    );
    const mib = (value) => value.toFixed(0);
    process.stdout.write(
      `${formatTable(
        ["process", "idle MiB", `peak MiB (${streams} streams)`, "after MiB", "goal"],
        Object.keys(processes).map((name) => [name, mib(idle[name]), mib(peak[name]), mib(after[name]), "< 200"]),
      )}\n\n`,
    );
    process.stdout.write(
      `gateway memory per idle keep-alive connection: ${(((withIdle.gateway - before.gateway) * 1024) / openSockets).toFixed(1)} KiB ` +
        `(${openSockets} connections open after one request each, ${mib(before.gateway)} → ${mib(withIdle.gateway)} MiB)\n`,
    );
    if (completed < streams) process.exitCode = 1;
  } finally {
    await services.stopAll();
    await dropDatabase(options.databaseUrl).catch(() => undefined);
    await dropAuditQueue(audit).catch(() => undefined);
  }
}

main().catch((error) => {
  console.error(`bench: ${error.stack ?? error}`);
  process.exitCode = 1;
});
