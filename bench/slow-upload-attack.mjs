#!/usr/bin/env node
// `npm run bench:attack`: one caller's slow uploads against another caller's
// steady traffic, through the built gateway and agent (issue 13: "2,000
// slow uploads from one zero-grant key run while a second key's steady
// traffic continues; the second key sees no 503 and its p99 stays within 2×
// of the unloaded p99; memory returns to baseline within 30 s after the
// attack stops"). Timing targets live here, not in the tests, which assert
// only what cannot depend on the machine's speed.
//
// Phases, each BENCH_PHASE_S seconds of steady sequential requests from the
// victim's key: unloaded; under attack by a key without grants; under attack
// by a key with grants (it holds its in-flight places until the body idle
// timeout); then, with the victim's traffic going on, the gateway's memory
// is sampled for 30 s after the attack.
// Each attacker keeps BENCH_ATTACKERS slow uploads open, reconnecting as the
// gateway refuses them.
//
// Build first (`npm run build`), then `npm run bench:attack`.
// Environment (empty counts as unset):
//   BENCH_ATTACKERS      concurrent slow uploads per attacking key (default 2000)
//   BENCH_PHASE_S        seconds per phase (default 10)
//   BENCH_DATABASE_URL   scratch database, dropped and recreated (default …/modelgate_bench_attack)
//   BENCH_REFUSAL_BRAKE  "off" runs the gateway without its refusal brake, for comparison
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import { connect } from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { loadOptions } from "./lib/options.mjs";
import { Services } from "./lib/processes.mjs";
import { formatTable } from "./lib/report.mjs";
import { dropAuditQueue, dropDatabase, startStack } from "./lib/stack.mjs";
import { summarize } from "./lib/stats.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const out = (text) => process.stdout.write(`${text}\n`);
const progress = (text) => process.stderr.write(`${text}\n`);

const number = (name, fallback) => {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`${name} must be a positive integer`);
  return Number(raw);
};
const ATTACKERS = number("BENCH_ATTACKERS", 2000);
const PHASE_S = number("BENCH_PHASE_S", 10);
const RECOVERY_S = 30;
const BRAKE_OFF = process.env.BENCH_REFUSAL_BRAKE?.trim() === "off";

/** Resident memory of a process, MiB. */
function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1] ?? Number.NaN) / 1024;
}

/** The gateway's V8 heap in use and its external memory (Buffers), MiB, from its ops listener. */
async function heapMiB(opsUrl) {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const read = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? Number.NaN) / 2 ** 20;
  return {
    heap: read("modelgate_gateway_nodejs_heap_size_used_bytes"),
    external: read("modelgate_gateway_nodejs_external_memory_bytes"),
  };
}

/** The victim: sequential requests on one keep-alive connection for `seconds`. */
async function steady(url, apiKey, model, seconds) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "steady traffic" }] });
  const latencies = [];
  const statuses = new Map();
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    const started = performance.now();
    const status = await new Promise((resolve) => {
      const req = http.request(
        url,
        {
          method: "POST",
          agent,
          headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode));
        },
      );
      req.on("error", () => resolve(0));
      req.end(body);
    });
    latencies.push(performance.now() - started);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }
  agent.destroy();
  return { latency: summarize(latencies), statuses };
}

/**
 * Keeps `count` slow uploads open against the gateway until stopped: each
 * announces a 1 MB body, sends its first bytes and a byte a second, and
 * reconnects when the gateway answers or closes.
 */
function attack(port, apiKey, count) {
  let running = true;
  const answers = new Map();
  const sockets = new Set();
  const open = () => {
    if (!running) return;
    const socket = connect(port, "127.0.0.1");
    sockets.add(socket);
    let answered = false;
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      if (answered) return;
      answered = true;
      const status = String(chunk).slice(9, 12);
      answers.set(status, (answers.get(status) ?? 0) + 1);
    });
    const trickle = setInterval(() => socket.writable && socket.write(" "), 1_000);
    socket.on("close", () => {
      clearInterval(trickle);
      sockets.delete(socket);
      // A short pause: a real attacker's reconnect loop, not a busy spin.
      if (running) setTimeout(open, 10);
    });
    socket.write(
      "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n" +
        `authorization: Bearer ${apiKey}\r\ncontent-length: 1000000\r\n\r\n{"model":"bench/demo-chat","messages":[`,
    );
  };
  for (let i = 0; i < count; i++) setTimeout(open, Math.floor(i / 100) * 10);
  return {
    answers,
    async stop() {
      running = false;
      for (const socket of sockets) socket.destroy();
      await sleep(200);
    },
  };
}

/**
 * The attack on a thread of its own: its thousands of sockets and timers
 * must not delay the victim's requests inside this process, or the victim's
 * latencies would measure the benchmark rather than the gateway.
 */
function attackInWorker(port, apiKey, count) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { port, apiKey, count } });
  return {
    async stop() {
      const answers = new Promise((resolve) => worker.once("message", resolve));
      worker.postMessage("stop");
      const result = new Map(await answers);
      await worker.terminate();
      return result;
    },
  };
}

if (!isMainThread) {
  const running = attack(workerData.port, workerData.apiKey, workerData.count);
  parentPort.once("message", async () => {
    await running.stop();
    parentPort.postMessage([...running.answers]);
  });
}

async function main() {
  const runDir = path.join(benchDir, "results", `attack-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  mkdirSync(runDir, { recursive: true });
  const options = {
    ...loadOptions([], process.env),
    connections: 1,
    // SIGUSR2 makes the gateway write a heap snapshot, which starts with a
    // full garbage collection: the live heap after the attack, apart from
    // garbage V8 had no reason to collect yet.
    gatewayNodeArgs: ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${runDir}`],
    gatewayEnv: BRAKE_OFF ? { MODELGATE_REFUSAL_MAX_DELAY_MS: "0" } : {},
  };
  options.databaseUrl =
    process.env.BENCH_DATABASE_URL?.trim() || "postgresql://postgres@127.0.0.1:5432/modelgate_bench_attack";
  const services = new Services(runDir);
  let stack;
  try {
    stack = await startStack(services, options, { profileDir: runDir });
    const target = stack.targets.find((candidate) => candidate.name === "modelgate");
    const url = new URL("/v1/chat/completions", target.url);
    const port = Number(url.port);
    const { key: zeroGrantKey } = await stack.admin("POST", "/api-keys", { name: "attacker", groups: ["nobody"] });
    // Same grants as the victim, but its own subject (its own in-flight places).
    const { key: grantedKey } = await stack.admin("POST", "/api-keys", { name: "slow-granted", groups: ["bench"] });
    await sleep(1_000);
    await steady(url, target.apiKey, target.model, 2); // warm-up

    const rows = [];
    const memory = [];
    const sampleMemory = (phase) => memory.push({ phase, at: performance.now(), rss: rssMiB(stack.gateway.pid) });
    const baselineRss = rssMiB(stack.gateway.pid);
    const baselineHeap = await heapMiB(stack.gatewayOpsUrl);

    const phase = async (name, attackKey) => {
      progress(`bench: ${name}`);
      const attacker = attackKey ? attackInWorker(port, attackKey, ATTACKERS) : undefined;
      const sampler = setInterval(() => sampleMemory(name), 250);
      const result = await steady(url, target.apiKey, target.model, PHASE_S);
      clearInterval(sampler);
      const attackAnswers = await attacker?.stop();
      rows.push({ name, ...result, attackAnswers });
    };
    await phase("unloaded");
    await phase(`${ATTACKERS} slow uploads, key without grants`, zeroGrantKey);
    await phase(`${ATTACKERS} slow uploads, key with grants`, grantedKey);

    progress(`bench: the gateway's memory for ${RECOVERY_S} s after the attack`);
    const attackEnded = performance.now();
    let recoveredAfterS;
    // The victim's traffic goes on (as other callers' would): a gateway
    // with no work at all would have no reason to collect its garbage.
    let recovering = true;
    const traffic = (async () => {
      while (recovering) await steady(url, target.apiKey, target.model, 1);
    })();
    while (performance.now() - attackEnded < RECOVERY_S * 1000) {
      const rss = rssMiB(stack.gateway.pid);
      memory.push({ phase: "after", at: performance.now(), rss });
      if (recoveredAfterS === undefined && rss <= baselineRss * 1.1 + 5) {
        recoveredAfterS = (performance.now() - attackEnded) / 1000;
      }
      await sleep(500);
    }
    recovering = false;
    await traffic;
    const heapBeforeGc = await heapMiB(stack.gatewayOpsUrl);
    const snapshots = () => readdirSync(runDir).filter((name) => name.endsWith(".heapsnapshot")).length;
    process.kill(stack.gateway.pid, "SIGUSR2");
    const snapshotDeadline = performance.now() + 60_000;
    while (snapshots() === 0 && performance.now() < snapshotDeadline) await sleep(250);
    await sleep(1_000);
    const liveHeap = await heapMiB(stack.gatewayOpsUrl);
    const peak = Math.max(...memory.map((sample) => sample.rss));
    const final = memory.at(-1)?.rss ?? Number.NaN;

    const unloadedP99 = rows[0].latency.p99;
    out("");
    out(
      `modelgate slow-upload attack: ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model}), Node ${process.version}; ` +
        `${ATTACKERS} slow uploads per attacking key, ${PHASE_S} s per phase, refusal brake ${BRAKE_OFF ? "off" : "on"}`,
    );
    out("");
    out(
      formatTable(
        [
          "victim's traffic",
          "requests",
          "non-200",
          "p50 ms",
          "p99 ms",
          "p99 / unloaded",
          "attack answered",
          "gateway peak RSS MiB",
        ],
        rows.map((row) => [
          row.name,
          String(row.latency.count),
          String([...row.statuses].filter(([status]) => status !== 200).reduce((sum, [, n]) => sum + n, 0)),
          row.latency.p50.toFixed(2),
          row.latency.p99.toFixed(2),
          `${(row.latency.p99 / unloadedP99).toFixed(2)}×`,
          row.attackAnswers
            ? [...row.attackAnswers]
                .sort()
                .map(([status, n]) => `${status}: ${n}`)
                .join(", ")
            : "—",
          Math.max(...memory.filter((sample) => sample.phase === row.name).map((sample) => sample.rss)).toFixed(0),
        ]),
      ),
    );
    out("");
    out(
      `gateway RSS: ${baselineRss.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB, ${final.toFixed(0)} MiB ` +
        `${RECOVERY_S} s after; back within 10 % (+5 MiB) of the start ${
          recoveredAfterS === undefined ? "not within 30 s" : `after ${recoveredAfterS.toFixed(1)} s`
        }`,
    );
    out(
      `gateway V8 heap in use: ${baselineHeap.heap.toFixed(0)} MiB before, ${heapBeforeGc.heap.toFixed(0)} MiB ${RECOVERY_S} s after, ` +
        `${liveHeap.heap.toFixed(0)} MiB live after a full collection; external (Buffers): ${baselineHeap.external.toFixed(0)} MiB before, ` +
        `${liveHeap.external.toFixed(0)} MiB after`,
    );
    const worst = Math.max(...rows.slice(1).map((row) => row.latency.p99 / unloadedP99));
    const failures = rows.reduce(
      (sum, row) => sum + [...row.statuses].filter(([status]) => status !== 200).reduce((n, [, c]) => n + c, 0),
      0,
    );
    out("");
    out(
      formatTable(
        ["goal", "measured", "result"],
        [
          ["victim sees no 503 (no non-200)", String(failures), failures === 0 ? "PASS" : "FAIL"],
          ["victim p99 ≤ 2× unloaded", `${worst.toFixed(2)}×`, worst <= 2 ? "PASS" : "FAIL"],
          [
            "RSS back to baseline within 30 s",
            recoveredAfterS === undefined ? "no" : `${recoveredAfterS.toFixed(1)} s`,
            recoveredAfterS !== undefined ? "PASS" : "FAIL",
          ],
          [
            "live heap back to baseline (+10 %) after the attack",
            `${liveHeap.heap.toFixed(0)} MiB (${baselineHeap.heap.toFixed(0)} before)`,
            liveHeap.heap <= baselineHeap.heap * 1.1 ? "PASS" : "FAIL",
          ],
        ],
      ),
    );
  } finally {
    await services.stopAll();
    await dropDatabase(options.databaseUrl).catch(() => {});
    if (stack) await dropAuditQueue(stack.audit).catch(() => {});
  }
}

if (isMainThread)
  main().catch((error) => {
    console.error(`bench: ${error.stack ?? error}`);
    process.exitCode = 1;
  });
