#!/usr/bin/env node
// `npm run bench`: measures what modelgate's data path (gateway + agent)
// adds to a model runtime's answers, against the runtime called directly and
// through a bare single-hop Node proxy, in the same run. Targets alternate in
// rounds (rotating order) so drift of the machine hits all three alike; the
// report shows medians across rounds. See docs/benchmarks.md.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { loadOptions, USAGE, UsageError } from "./lib/options.mjs";
import { CLOCK_TICKS, cpuMs, cpuMsOfProcessesNamed, machineBusyMs, Services } from "./lib/processes.mjs";
import { baselineTable, checkTargets, formatChecks, medians, stageTable, workloadTables } from "./lib/report.mjs";
import { auditQueue, dropAuditQueue, dropDatabase, startStack } from "./lib/stack.mjs";
import { median } from "./lib/stats.mjs";
import { buildRequest, runLoad, runSequential, verifyTarget } from "./lib/workloads.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const out = (text) => process.stdout.write(`${text}\n`);
const progress = (text) => process.stderr.write(`${text}\n`);

function workloadsFor(options) {
  const stream = { streamChunks: options.streamChunks, chunkIntervalMs: options.chunkIntervalMs };
  const streamTitle = `${options.streamChunks} SSE chunks ${options.chunkIntervalMs} ms apart`;
  const workloads = [
    {
      id: "sequential",
      kind: "sequential",
      streaming: false,
      count: options.sequential,
      title: `Sequential, non-streaming: ${options.sequential} requests one at a time, ms`,
      ...stream,
    },
    {
      id: "sequential-streaming",
      kind: "sequential",
      streaming: true,
      count: options.sequentialStreaming,
      title: `Sequential, streaming (${streamTitle}): ${options.sequentialStreaming} requests one at a time, ms`,
      ...stream,
    },
    {
      id: "load",
      kind: "load",
      streaming: false,
      title: `${options.connections} connections, non-streaming, ${options.durationS} s per round`,
      ...stream,
    },
    {
      id: "load-streaming",
      kind: "load",
      streaming: true,
      title: `${options.connections} connections, streaming (${streamTitle}), ${options.durationS} s per round`,
      ...stream,
    },
  ];
  return workloads.filter((workload) => workload.kind === "load" || workload.count > 0);
}

/** The commit measured, with "+dirty" when the work tree has changes. */
function revision() {
  return revisionOf(benchDir);
}

function revisionOf(directory) {
  try {
    const git = (...args) => execFileSync("git", args, { cwd: directory, encoding: "utf8" }).trim();
    return `${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain") ? "+dirty" : ""}`;
  } catch {
    return "unknown";
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    revision: revision(),
    cpuModel: cpus[0]?.model ?? "unknown",
    cpus: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    clockTicks: CLOCK_TICKS,
    loadAverageAtStart: os.loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Runs one workload against one target and reads the CPU its processes spent meanwhile. */
async function measure(stack, services, target, workload, options) {
  const request = buildRequest(target, workload);
  // The records of earlier runs are stored before this one starts, so what
  // the control plane spends until the queue is empty again is this run's.
  const audited = Boolean(target.audited) && stack.audit.storeRecords;
  if (audited) await stack.auditDrained();
  const ingestBefore = cpuMs(stack.controlPlane.pid);
  const postgresBefore = cpuMsOfProcessesNamed("postgres");
  const redisBefore = cpuMsOfProcessesNamed("redis-server");
  const readHop = () => target.processes.map((service) => cpuMs(service.pid));
  const readOwn = () => stack.all.reduce((sum, service) => sum + cpuMs(service.pid), 0);
  const ownBefore = readOwn();
  const machineBefore = machineBusyMs();
  const hopBefore = readHop();
  const fixtureBefore = cpuMs(stack.fixture.pid);
  const clientBefore = process.cpuUsage();
  const startUs = monotonicUs();

  const result =
    workload.kind === "sequential"
      ? await runSequential(request, workload.count)
      : await runLoad(request, { connections: options.connections, durationS: options.durationS });

  const endUs = monotonicUs();
  const client = process.cpuUsage(clientBefore);
  const hopAfter = readHop();
  const perProcessMs = Object.fromEntries(
    target.processes.map((service, i) => [service.name, hopAfter[i] - hopBefore[i]]),
  );
  // The direct target has no hop: its figures stay NaN ("—" in the tables).
  const hopMs = target.processes.length > 0 ? Object.values(perProcessMs).reduce((a, b) => a + b, 0) : Number.NaN;
  const fixtureMs = cpuMs(stack.fixture.pid) - fixtureBefore;
  const clientMs = (client.user + client.system) / 1000;
  // CPU the machine spent outside the benchmark's processes: the kernel's
  // share of loopback networking, and any other work that competed for the cores.
  const otherMs = machineBusyMs() - machineBefore - (readOwn() - ownBefore) - clientMs;
  services.check();
  const perRequest = (value) => (result.ok > 0 ? value / result.ok : Number.NaN);
  // Audit ingestion: the control plane turning this run's records into
  // sessions (the worker, its queue reads, the hash chain) and Postgres
  // storing them, read once the queue is empty again.
  let ingestMs = Number.NaN;
  let postgresMs = Number.NaN;
  let redisMs = Number.NaN;
  if (audited) {
    await stack.auditDrained();
    ingestMs = cpuMs(stack.controlPlane.pid) - ingestBefore;
    postgresMs = cpuMsOfProcessesNamed("postgres") - postgresBefore;
    // The audit queue's Redis (and the rate limits'): outside modelgate's processes, like Postgres.
    redisMs = cpuMsOfProcessesNamed("redis-server") - redisBefore;
  }
  return {
    ...result,
    // CLOCK_MONOTONIC microseconds, the clock of V8's CPU profiles: with
    // BENCH_CPU_PROF, a profile's samples can be cut to this run.
    window: { startUs, endUs },
    cpu: {
      hopMs,
      perProcessMs,
      fixtureMs,
      clientMs,
      hopMsPerRequest: perRequest(hopMs),
      fixtureMsPerRequest: perRequest(fixtureMs),
      clientMsPerRequest: perRequest(clientMs),
      otherMs,
      otherShare: otherMs / (((endUs - startUs) / 1000) * os.availableParallelism()),
      ingestMs,
      postgresMs,
      ingestMsPerRequest: perRequest(ingestMs),
      postgresMsPerRequest: perRequest(postgresMs),
      redisMs,
      redisMsPerRequest: perRequest(redisMs),
      /** Every modelgate process: gateway + agent + the control plane's ingestion (Postgres apart). */
      allMsPerRequest: perRequest(audited ? hopMs + ingestMs : hopMs),
    },
  };
}

/**
 * Waits (up to a minute) until the machine is quiet: less than 10 % of its
 * CPU busy outside the benchmark's processes over half a second. On a shared
 * machine, someone's test suite would otherwise land in one target's run
 * and not in the others'.
 */
async function waitForQuietMachine(stack, { maxShare = 0.1, sampleMs = 500, timeoutMs = 60_000 } = {}) {
  const own = () => stack.all.reduce((sum, service) => sum + cpuMs(service.pid), 0) + cpuMs(process.pid);
  const started = performance.now();
  let warned = false;
  for (;;) {
    const machineBefore = machineBusyMs();
    const ownBefore = own();
    await sleep(sampleMs);
    const share = (machineBusyMs() - machineBefore - (own() - ownBefore)) / (sampleMs * os.availableParallelism());
    const waitedMs = performance.now() - started - sampleMs;
    if (share < maxShare) return { waitedMs };
    if (waitedMs > timeoutMs) {
      console.warn(
        `bench: the machine is still busy (${(share * 100).toFixed(0)} % outside the benchmark); measuring anyway`,
      );
      return { waitedMs };
    }
    if (!warned) {
      progress(
        `bench: ${(share * 100).toFixed(0)} % of the CPU is busy outside the benchmark; waiting for it to settle`,
      );
      warned = true;
    }
  }
}

/** How the report describes ingest CPU, from the setting auditQueue() read. */
const ingestNote = (audit) => (audit.storeRecords ? " until the queue is empty" : " (off: BENCH_AUDIT_WORKER=false)");

function describe(result) {
  const rate = result.requestsPerSecond === undefined ? "" : `${result.requestsPerSecond.toFixed(0)} req/s, `;
  const ttfb = result.ttfb ? `, TTFB p50 ${result.ttfb.p50.toFixed(2)} ms` : "";
  const errors = result.errors + (result.timeouts ?? 0);
  const other = `, other CPU ${(result.cpu.otherShare * 100).toFixed(0)} %`;
  return `${rate}p50 ${result.latency.p50.toFixed(2)} ms, p99 ${result.latency.p99.toFixed(2)} ms${ttfb}${other}${
    errors ? `, ${errors} errors` : ""
  }`;
}

async function run(options, services, runDir, audit) {
  const workloads = workloadsFor(options);
  progress(`bench: starting fixture, control plane, gateway, agent and bare proxy (logs in ${runDir})`);
  const stack = await startStack(services, options, { profileDir: runDir, audit });

  /** Whether a target takes part in a workload (Portkey only in the non-streaming ones: see stack.mjs). */
  const measures = (target, workload) => !workload.streaming || target.streams !== false;
  for (const target of stack.targets) {
    for (const workload of workloads) if (measures(target, workload)) await verifyTarget(target, workload);
  }

  progress("bench: warming up every target");
  for (const target of stack.targets) {
    const warm = workloads
      .filter((workload) => measures(target, workload))
      .map((workload) => ({ workload, request: buildRequest(target, workload) }));
    for (const { workload, request } of warm) {
      if (workload.kind === "sequential") {
        await runSequential(request, Math.min(workload.streaming ? 10 : 100, workload.count));
      } else if (options.warmupS > 0) {
        await runLoad(request, { connections: options.connections, durationS: options.warmupS });
      }
    }
  }

  const results = [];
  for (let round = 1; round <= options.rounds; round++) {
    // Rotate the order every round, so no target always runs first or last.
    const order = stack.targets.map((_, i) => stack.targets[(i + round - 1) % stack.targets.length]);
    for (const workload of workloads) {
      for (const target of order) {
        if (!measures(target, workload)) continue;
        // Let the previous run's connections close and timers settle; the
        // sequential runs want a machine at rest.
        await sleep(workload.kind === "sequential" ? 1_000 : 500);
        const quiet = await waitForQuietMachine(stack);
        const result = await measure(stack, services, target, workload, options);
        results.push({
          round,
          workload: workload.id,
          target: target.name,
          waitedForQuietMs: quiet.waitedMs,
          ...result,
        });
        progress(
          `[round ${round}/${options.rounds}] ${workload.id.padEnd(20)} ${target.name.padEnd(9)} ${describe(result)}`,
        );
      }
    }
  }
  return { workloads, results };
}

async function main() {
  let options;
  try {
    options = loadOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (options.help) {
    out(USAGE);
    return;
  }

  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const resultsDir = path.join(benchDir, "results");
  const runDir = path.join(resultsDir, stamp);
  mkdirSync(runDir, { recursive: true });
  const services = new Services(runDir);
  const audit = auditQueue();

  let cleanup;
  const cleanUp = () => {
    cleanup ??= (async () => {
      await services.stopAll();
      await dropDatabase(options.databaseUrl).catch((error) => {
        console.error(`bench: could not drop the scratch database: ${error.message}`);
      });
      await dropAuditQueue(audit).catch((error) => {
        console.error(`bench: could not remove the audit queue: ${error.message}`);
      });
    })();
    return cleanup;
  };
  // The last resort when the process exits without having cleaned up.
  process.on("exit", () => services.killAllNow());
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      progress(`bench: ${signal}, stopping services`);
      void cleanUp().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    });
  }

  const env = machine();
  if (env.loadAverageAtStart[0] > 1) {
    console.warn(
      `bench: the 1-minute load average is ${env.loadAverageAtStart[0]}; if other work is running, it will skew the results`,
    );
  }

  try {
    const { workloads, results } = await run(options, services, runDir, audit);
    const table = medians(results, workloads);
    const checks = checkTargets(table, workloads);
    env.loadAverageAtEnd = os.loadavg().map((value) => Math.round(value * 100) / 100);

    out("");
    out(
      `modelgate data-path benchmark: ${env.cpus} CPUs (${env.cpuModel}), ${env.memoryGiB} GiB, Node ${env.node}, ${env.kernel}`,
    );
    out(
      `revision ${env.revision}; median of ${options.rounds} round(s); gateway and agent LOG_LEVEL=${options.logLevel}; ` +
        "hop CPU = the proxy's processes (modelgate: gateway + agent), per completed request; " +
        `ingest CPU = the control plane storing the records${ingestNote(audit)}; all = hop + ingest; ` +
        "pg = every Postgres process",
    );
    const otherShares = results.map((result) => result.cpu.otherShare * 100);
    out(
      `CPU outside the benchmark's processes (kernel networking, other work): median ${median(otherShares).toFixed(0)} %, ` +
        `max ${Math.max(...otherShares).toFixed(0)} % of the machine`,
    );
    out("");
    out(workloadTables(table, workloads));
    const stages = stageTable(table, workloads);
    if (stages) {
      out("");
      out(stages);
    }
    out("");
    out(formatChecks(checks));
    const againstBaseline = baselineTable(table, workloads);
    if (againstBaseline) {
      out("");
      out(`${againstBaseline}\n(baseline: ${options.baselineRoot}, revision ${revisionOf(options.baselineRoot)})`);
    }

    const file = path.join(resultsDir, `${stamp}.json`);
    const report = { startedAt, finishedAt: new Date(), options, machine: env, medians: table, checks, results };
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    out("");
    out(`raw results: ${path.relative(process.cwd(), file)}`);
  } finally {
    await cleanUp();
  }
}

main().catch((error) => {
  console.error(`bench: ${error.stack ?? error}`);
  process.exitCode = 1;
});
