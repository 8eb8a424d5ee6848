#!/usr/bin/env node
// What streaming masking adds to time-to-first-token through the full data
// path: client → gateway → agent → runtime fixture and back (issue 5, target:
// ≤ 1 ms added at p50 when the first tokens contain no PII candidate).
//
// One runtime fixture serves two connections, `plain` and `masked`, each
// with its own agent process; one API key is granted `plain` by a policy
// without masking and `masked` by a policy that masks every built-in entity.
// Streaming requests go one at a time, in runs that alternate between the
// two targets in rounds (each goes first in every other round), so drift of
// the machine hits both alike; the fixture called directly is measured in
// the same rounds, for reference. Time to first token: from sending the request to the arrival of the
// first SSE event whose `choices[0].delta.content` is not empty. The answer
// is cut (max_tokens) so that its first content chunk ends after a complete
// word ("[demo runtime] This is the "): the masker can release it at once,
// which the benchmark checks before measuring and on every request.
//
// Build first (`scripts/with-node.sh npx turbo run build`), then
// `scripts/with-node.sh node bench/masking-ttft.mjs [--quick]`.
// Environment (empty counts as unset):
//   BENCH_ROUNDS             rounds (default 7; --quick 1)
//   BENCH_REQUESTS           measured requests per target and round (default 200; --quick 30)
//   BENCH_CHUNKS             content chunks per answer (default 20)
//   BENCH_CHUNK_INTERVAL_MS  the fixture's delay before each chunk, the first included (default 5)
//   BENCH_LOG_LEVEL          LOG_LEVEL of gateway and agents (default info)
//   BENCH_CPU_PROF           true: run gateway and agents with --cpu-prof (profiles in the run's folder)
//   BENCH_DATABASE_URL       the scratch database, dropped and recreated; its name must contain "bench"
//                            (default postgresql://postgres@127.0.0.1:5432/modelgate_bench_ttft)
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Masker } from "../packages/masking/dist/index.js";
import { splitIntoChunks, truncateToTokens } from "../packages/runtime-fixture/dist/tokens.js";
import { loadOptions, UsageError } from "./lib/options.mjs";
import { cpuMs, freePort, machineBusyMs, Services, waitFor } from "./lib/processes.mjs";
import { formatTable } from "./lib/report.mjs";
import { auditQueue, controlPlaneAuditEnv, dropAuditQueue, dropDatabase, recreateDatabase } from "./lib/stack.mjs";
import { median, summarize } from "./lib/stats.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(benchDir, "..");
const script = (relative) => path.join(root, relative);
const out = (text) => process.stdout.write(`${text}\n`);
const progress = (text) => process.stderr.write(`${text}\n`);

const MODEL = "demo-chat";
/** The two connections, one agent each: the same path but for the masked policy. */
const CONNECTIONS = ["plain", "masked"];
const ENTITIES = ["EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "IP_ADDRESS", "SECRET"];
/** The masked policy's masking, as written in the policy. */
const MASKING = { entities: ENTITIES, style: "label" };
/** Requests per target before round 1, and before each measured run (a fresh keep-alive connection). */
const WARMUP = 50;
const RUN_WARMUP = 5;

const USAGE = `usage: scripts/with-node.sh node bench/masking-ttft.mjs [--quick]
(see the comment at the top of bench/masking-ttft.mjs for the BENCH_* variables)`;

function loadSettings(argv, env) {
  for (const arg of argv) if (arg !== "--quick") throw new UsageError(`unknown argument "${arg}"`);
  const quick = argv.includes("--quick");
  const integer = (name, fallback, min, max) => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(value >= min && value <= max)) throw new UsageError(`${name} must be an integer from ${min} to ${max}`);
    return value;
  };
  // The data-path benchmark's checks of the database URL and log level; a
  // database of its own, so that both benchmarks can run on one server.
  const shared = loadOptions([], {
    ...env,
    BENCH_DATABASE_URL: env.BENCH_DATABASE_URL?.trim() || "postgresql://postgres@127.0.0.1:5432/modelgate_bench_ttft",
  });
  return {
    rounds: integer("BENCH_ROUNDS", quick ? 1 : 7, 1, 50),
    requests: integer("BENCH_REQUESTS", quick ? 30 : 200, 10, 100_000),
    chunks: integer("BENCH_CHUNKS", 20, 2, 1000),
    chunkIntervalMs: integer("BENCH_CHUNK_INTERVAL_MS", 5, 0, 1000),
    logLevel: shared.logLevel,
    cpuProfile: shared.cpuProfile,
    databaseUrl: shared.databaseUrl,
  };
}

/** The commit measured, with "+dirty" when the work tree has changes. */
function revision() {
  try {
    const git = (...args) => execFileSync("git", args, { cwd: benchDir, encoding: "utf8" }).trim();
    return `${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain") ? "+dirty" : ""}`;
  } catch {
    return "unknown";
  }
}

async function getStatus(url, headers = {}) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.status;
}

/** The `data` of one SSE event (without its blank line), or undefined. */
function eventData(event) {
  const lines = event.split("\n").filter((line) => line.startsWith("data:"));
  if (lines.length === 0) return undefined;
  return lines.map((line) => line.slice(line.startsWith("data: ") ? 6 : 5)).join("\n");
}

/**
 * One streaming request. `firstTokenMs`: until the first event with content
 * arrived (the read that completed it); `lastByteMs`: until the body ended.
 * Parses events only until the first content, unless `keepContent`.
 */
async function timedStream(request, { keepContent = false } = {}) {
  const start = performance.now();
  const response = await fetch(request.url, { method: "POST", headers: request.headers, body: request.body });
  if (response.status !== 200) {
    const text = await response.text();
    return { status: response.status, error: text.slice(0, 300) };
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let firstTokenMs;
  let firstContent;
  const contents = [];
  const events = [];
  for (;;) {
    const { value, done } = await reader.read();
    const at = performance.now();
    if (done) break;
    if (firstTokenMs !== undefined && !keepContent) continue;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const data = eventData(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      if (data === undefined) continue;
      events.push(data);
      if (data === "[DONE]") continue;
      const content = JSON.parse(data).choices?.[0]?.delta?.content;
      if (typeof content !== "string" || content === "") continue;
      if (firstTokenMs === undefined) {
        firstTokenMs = at - start;
        firstContent = content;
      }
      contents.push(content);
    }
  }
  return { status: 200, firstTokenMs, lastByteMs: performance.now() - start, firstContent, contents, events };
}

/**
 * Picks the answer's length: the most tokens (max_tokens) whose first
 * content chunk ends after a complete word and is released whole by a
 * stream of the masked policy's masker, i.e. holds no PII candidate.
 */
function shapeAnswer(fullText, chunks, masker) {
  const total = truncateToTokens(fullText, undefined).tokens;
  for (let maxTokens = total; maxTokens > 0; maxTokens--) {
    const { text } = truncateToTokens(fullText, maxTokens);
    const [first = ""] = splitIntoChunks(text, chunks);
    if (!/\S\s$/.test(first)) continue;
    if (masker.createStream().push(first) !== first) continue;
    return { maxTokens, text, first };
  }
  throw new Error(`no max_tokens gives a first chunk of ${chunks} that ends after a complete word`);
}

/** Waits (up to 30 s) until less than 10 % of the machine's CPU is busy outside the benchmark. */
async function waitForQuietMachine(ownPids, { maxShare = 0.1, sampleMs = 500, timeoutMs = 30_000 } = {}) {
  const own = () => ownPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const started = performance.now();
  for (;;) {
    const machineBefore = machineBusyMs();
    const ownBefore = own();
    await sleep(sampleMs);
    const share = (machineBusyMs() - machineBefore - (own() - ownBefore)) / (sampleMs * os.availableParallelism());
    const waitedMs = performance.now() - started;
    if (share < maxShare || waitedMs > timeoutMs) return { waitedMs, share };
  }
}

async function startServices(services, settings, profileDir, audit) {
  await recreateDatabase(settings.databaseUrl);
  const adminToken = `mgadmin_${randomBytes(24).toString("base64url")}`;
  const gatewayToken = `mggateway_${randomBytes(24).toString("base64url")}`;
  const ports = {
    fixture: await freePort(),
    controlPlane: await freePort(),
    controlPlaneGrpc: await freePort(),
    gateway: await freePort(),
    tunnel: await freePort(),
    // Readiness is polled on the ops listeners, off the public ports.
    controlPlaneOps: await freePort(),
    gatewayOps: await freePort(),
  };
  const fixtureUrl = `http://127.0.0.1:${ports.fixture}`;
  const controlPlaneUrl = `http://127.0.0.1:${ports.controlPlane}`;
  const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
  const controlPlaneOpsUrl = `http://127.0.0.1:${ports.controlPlaneOps}`;
  const gatewayOpsUrl = `http://127.0.0.1:${ports.gatewayOps}`;
  const profile = (name) =>
    settings.cpuProfile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];

  const fixture = services.start("runtime-fixture", script("packages/runtime-fixture/dist/cli.js"), {
    HOST: "127.0.0.1",
    PORT: String(ports.fixture),
    MODELS: MODEL,
    STREAM_CHUNKS: String(settings.chunks),
    CHUNK_INTERVAL_MS: String(settings.chunkIntervalMs),
  });
  const controlPlane = services.start("control-plane", script("apps/control-plane/dist/main.js"), {
    DATABASE_URL: settings.databaseUrl,
    MODELGATE_ADMIN_TOKEN: adminToken,
    MODELGATE_GATEWAY_TOKEN: gatewayToken,
    MODELGATE_CONTROL_PLANE_PORT: String(ports.controlPlane),
    MODELGATE_CONTROL_PLANE_GRPC_PORT: String(ports.controlPlaneGrpc),
    MODELGATE_CONTROL_PLANE_OPS_PORT: String(ports.controlPlaneOps),
    ...controlPlaneAuditEnv(audit),
    LOG_LEVEL: "warn",
  });
  await waitFor(async () => (await getStatus(`${controlPlaneOpsUrl}/readyz`)) === 200, {
    what: "the control plane",
    services,
  });
  await waitFor(async () => (await getStatus(`${fixtureUrl}/health`)) === 200, { what: "the fixture", services });

  const admin = async (method, route, body) => {
    const response = await fetch(`${controlPlaneUrl}/api/v1${route}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const credentials = {};
  for (const name of CONNECTIONS) {
    await admin("POST", "/connections", { name, protocol: "openai", models: [MODEL] });
    credentials[name] = await admin("POST", `/connections/${name}/agents`, { name: `bench-${name}` });
  }
  const { key: apiKey } = await admin("POST", "/api-keys", { name: "bench-ttft", groups: ["bench"] });
  const grant = (name, extra) => ({
    name,
    subjects: { groups: ["bench"] },
    resources: [{ connection: name, models: ["*"] }],
    operations: ["inference", "models.list"],
    ...extra,
  });
  await admin("POST", "/policies", grant("plain", {}));
  await admin("POST", "/policies", grant("masked", { masking: MASKING }));
  // The policy engine's own view, before anything is measured.
  for (const name of CONNECTIONS) {
    const evaluation = await admin("POST", "/policies/evaluate", {
      subject: { groups: ["bench"] },
      request: { connection: name, model: MODEL, operation: "inference" },
    });
    if (evaluation.decision !== "allowed" || (evaluation.masking != null) !== (name === "masked")) {
      throw new Error(`policy dry run for ${name}: ${JSON.stringify(evaluation)}`);
    }
  }

  const gateway = services.start(
    "gateway",
    script("apps/gateway/dist/main.js"),
    {
      MODELGATE_GATEWAY_PORT: String(ports.gateway),
      MODELGATE_TUNNEL_PORT: String(ports.tunnel),
      MODELGATE_GATEWAY_OPS_PORT: String(ports.gatewayOps),
      MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://127.0.0.1:${ports.controlPlaneGrpc}`,
      MODELGATE_GATEWAY_TOKEN: gatewayToken,
      MODELGATE_REDIS_URL: audit.redisUrl,
      MODELGATE_AUDIT_QUEUE_PREFIX: audit.prefix,
      LOG_LEVEL: settings.logLevel,
    },
    profile("gateway"),
  );
  await waitFor(async () => (await getStatus(`${gatewayOpsUrl}/readyz`)) === 200, { what: "the gateway", services });

  const agents = {};
  for (const name of CONNECTIONS) {
    agents[name] = services.start(
      `agent-${name}`,
      script("apps/agent/dist/main.js"),
      {
        MODELGATE_GATEWAY_URLS: `grpc://127.0.0.1:${ports.tunnel}`,
        MODELGATE_AGENT_TOKEN: credentials[name].token,
        MODELGATE_RUNTIME_URL: fixtureUrl,
        MODELGATE_AGENT_CAPACITY: "16",
        MODELGATE_DRAIN_TIMEOUT_MS: "2000",
        MODELGATE_AGENT_OPS_PORT: "0",
        LOG_LEVEL: settings.logLevel,
      },
      profile(`agent-${name}`),
    );
  }
  for (const name of CONNECTIONS) {
    await waitFor(
      async () => {
        const { items } = await admin("GET", `/agents?connection=${name}`);
        return items.some((item) => item.id === credentials[name].id && item.tunnel.state === "connected");
      },
      { what: `the ${name} agent to connect`, services },
    );
  }
  await waitFor(
    async () => (await getStatus(`${gatewayUrl}/v1/models`, { authorization: `Bearer ${apiKey}` })) === 200,
    { what: "the API key to reach the gateway", services },
  );
  return { fixture, controlPlane, gateway, agents, fixtureUrl, gatewayUrl, apiKey };
}

function buildRequest(url, model, apiKey, settings, maxTokens) {
  return {
    url: new URL("/v1/chat/completions", url),
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${apiKey}`,
      "x-fixture-chunks": String(settings.chunks),
      "x-fixture-interval-ms": String(settings.chunkIntervalMs),
    },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "Say something for the benchmark." }],
      stream: true,
      ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
    }),
  };
}

/** The gateway's log line for the last request to `connection` (LOG_LEVEL info or lower). */
function lastRequestLog(logFile, connection) {
  const lines = readFileSync(logFile, "utf8").trimEnd().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const entry = JSON.parse(lines[i]);
      if (entry.msg === "request" && entry.connection === connection) return entry;
    } catch {
      // Not JSON: a line some library printed.
    }
  }
  return undefined;
}

/**
 * The content events a stream should carry: the fixture's chunks as they
 * are, or as the masked policy's masker releases them (the end of a word
 * held back into the next event, the held tail in an event of its own).
 */
function expectedContents(answer, chunks, masker) {
  const pieces = splitIntoChunks(answer.text, chunks);
  if (!masker) return pieces.filter((piece) => piece !== "");
  const stream = masker.createStream();
  return [...pieces.map((piece) => stream.push(piece)), stream.end()].filter((piece) => piece !== "");
}

/**
 * Checks a target's stream event by event, so that a fast error, a lost
 * chunk or masking that did not run is never measured: the first content
 * is the whole first chunk, and for `masked` the events are cut exactly
 * where the masker holds words back (the fixture cuts inside words).
 */
async function verify(name, request, expected) {
  const response = await timedStream(request, { keepContent: true });
  const fail = (why) => {
    throw new Error(`${name}: ${why} (status ${response.status}${response.error ? `, ${response.error}` : ""})`);
  };
  if (response.status !== 200) fail("not a 200");
  if (response.events.at(-1) !== "[DONE]") fail("the stream does not end with [DONE]");
  if (response.firstContent !== expected[0]) fail(`the first content is ${JSON.stringify(response.firstContent)}`);
  if (JSON.stringify(response.contents) !== JSON.stringify(expected)) {
    fail(`content events ${JSON.stringify(response.contents)}, expected ${JSON.stringify(expected)}`);
  }
}

/**
 * `count` requests one after the other, after a few unmeasured ones; CPU of
 * the named processes meanwhile, and the share of the machine's CPU used
 * outside all of the benchmark's processes (`ownPids`).
 */
async function measureRun(request, expectedFirst, count, pids, ownPids) {
  for (let i = 0; i < RUN_WARMUP; i++) await timedStream(request);
  const names = Object.keys(pids);
  const readOwn = () => ownPids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const cpuBefore = Object.fromEntries(names.map((name) => [name, cpuMs(pids[name])]));
  const machineBefore = machineBusyMs();
  const ownBefore = readOwn();
  const started = performance.now();
  const firstToken = [];
  const lastByte = [];
  let errors = 0;
  let firstAltered = 0;
  for (let i = 0; i < count; i++) {
    try {
      const response = await timedStream(request);
      if (response.status !== 200 || response.firstTokenMs === undefined) {
        errors++;
        continue;
      }
      if (response.firstContent !== expectedFirst) firstAltered++;
      firstToken.push(response.firstTokenMs);
      lastByte.push(response.lastByteMs);
    } catch {
      errors++;
    }
  }
  const elapsedMs = performance.now() - started;
  const cpu = Object.fromEntries(names.map((name) => [name, cpuMs(pids[name]) - cpuBefore[name]]));
  const otherShare =
    (machineBusyMs() - machineBefore - (readOwn() - ownBefore)) / (elapsedMs * os.availableParallelism());
  return { firstToken, lastByte, errors, firstAltered, cpu, otherShare };
}

const ms = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : "—");
const signed = (value, digits = 2) =>
  Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(digits)}` : "—";

async function main() {
  let settings;
  try {
    settings = loadSettings(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const resultsDir = path.join(benchDir, "results");
  const runDir = path.join(resultsDir, `${stamp}-masking-ttft`);
  mkdirSync(runDir, { recursive: true });
  const services = new Services(runDir);
  const audit = auditQueue();
  let cleanup;
  const cleanUp = () => {
    cleanup ??= (async () => {
      await services.stopAll();
      await dropDatabase(settings.databaseUrl).catch((error) => {
        console.error(`bench: could not drop the scratch database: ${error.message}`);
      });
      await dropAuditQueue(audit).catch((error) => {
        console.error(`bench: could not remove the audit queue: ${error.message}`);
      });
    })();
    return cleanup;
  };
  process.on("exit", () => services.killAllNow());
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      progress(`bench: ${signal}, stopping services`);
      void cleanUp().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    });
  }

  try {
    progress(`bench: starting fixture, control plane, gateway and two agents (logs in ${runDir})`);
    const stack = await startServices(services, settings, runDir, audit);

    // The fixture's whole answer, then the cut whose first chunk holds no PII candidate.
    const whole = await fetch(new URL("/v1/chat/completions", stack.fixtureUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hello" }] }),
    }).then((response) => response.json());
    const masker = new Masker({
      ...MASKING,
      custom: [],
      denyList: [],
      fields: [],
      onError: "block",
      maskPromptsInAudit: false,
    });
    const answer = shapeAnswer(whole.choices[0].message.content, settings.chunks, masker);

    // `direct` (the fixture itself) is for reference only: what the whole path adds.
    const targets = [
      { name: "direct", request: buildRequest(stack.fixtureUrl, MODEL, stack.apiKey, settings, answer.maxTokens) },
      ...CONNECTIONS.map((name) => ({
        name,
        request: buildRequest(stack.gatewayUrl, `${name}/${MODEL}`, stack.apiKey, settings, answer.maxTokens),
        pids: { gateway: stack.gateway.pid, agent: stack.agents[name].pid },
      })),
    ];
    const byName = Object.fromEntries(targets.map((target) => [target.name, target]));
    const plainContents = expectedContents(answer, settings.chunks);
    const maskedContents = expectedContents(answer, settings.chunks, masker);
    if (JSON.stringify(plainContents) === JSON.stringify(maskedContents)) {
      progress("bench: warning: no chunk ends inside a word, so the check cannot tell that masking ran");
    }
    for (const { name, request } of targets) {
      await verify(name, request, name === "masked" ? maskedContents : plainContents);
      if (name === "direct" || !["info", "debug", "trace"].includes(settings.logLevel)) continue;
      // The gateway decided as the policies say: masking for `masked` only.
      let entry;
      await waitFor(
        () => {
          entry = lastRequestLog(stack.gateway.logFile, name);
          return entry !== undefined;
        },
        { what: `the gateway's log of a ${name} request`, services, timeoutMs: 5_000 },
      );
      const masked = (entry.reasons ?? []).some((reason) => reason.startsWith("the response is masked"));
      if (masked !== (name === "masked")) throw new Error(`${name}: the gateway's reasons: ${entry.reasons}`);
    }

    progress(`bench: warming up (${WARMUP} requests per target)`);
    for (const { request } of targets) for (let i = 0; i < WARMUP; i++) await timedStream(request);

    const ownPids = [process.pid, stack.fixture.pid, stack.controlPlane.pid, stack.gateway.pid];
    for (const name of CONNECTIONS) ownPids.push(stack.agents[name].pid);
    const results = [];
    for (let round = 1; round <= settings.rounds; round++) {
      // plain and masked always run next to each other, each first in every
      // other round; direct before them, then after them.
      const order = round % 2 === 1 ? ["direct", "plain", "masked"] : ["masked", "plain", "direct"];
      for (const name of order) {
        await sleep(500);
        const quiet = await waitForQuietMachine(ownPids);
        const pids = { fixture: stack.fixture.pid, ...byName[name].pids };
        const run = await measureRun(byName[name].request, answer.first, settings.requests, pids, ownPids);
        services.check();
        const ttft = summarize(run.firstToken);
        const last = summarize(run.lastByte);
        const per = (value) => (value === undefined ? Number.NaN : value / Math.max(1, run.firstToken.length));
        const result = {
          round,
          target: name,
          waitedForQuietMs: quiet.waitedMs,
          firstToken: ttft,
          lastByte: last,
          errors: run.errors,
          firstAltered: run.firstAltered,
          gatewayCpuMsPerRequest: per(run.cpu.gateway),
          agentCpuMsPerRequest: per(run.cpu.agent),
          fixtureCpuMsPerRequest: per(run.cpu.fixture),
          otherShare: run.otherShare,
          samples: { firstToken: run.firstToken, lastByte: run.lastByte },
        };
        results.push(result);
        progress(
          `[round ${round}/${settings.rounds}] ${name.padEnd(6)} TTFT p50 ${ms(ttft.p50, 3)} p99 ${ms(ttft.p99, 3)} ms, ` +
            `last byte p50 ${ms(last.p50)} ms, other CPU ${(run.otherShare * 100).toFixed(0)} %` +
            `${run.errors ? `, ${run.errors} errors` : ""}` +
            `${run.firstAltered ? `, ${run.firstAltered} first tokens altered` : ""}`,
        );
      }
    }

    // Pooled percentiles per target, and the per-round differences.
    const pooled = {};
    for (const { name } of targets) {
      const runs = results.filter((result) => result.target === name);
      const of = (pick) => median(runs.map(pick));
      pooled[name] = {
        count: runs.reduce((sum, run) => sum + run.samples.firstToken.length, 0),
        firstToken: summarize(runs.flatMap((run) => run.samples.firstToken)),
        lastByte: summarize(runs.flatMap((run) => run.samples.lastByte)),
        firstTokenP50OfRounds: of((run) => run.firstToken.p50),
        gatewayCpu: of((run) => run.gatewayCpuMsPerRequest),
        agentCpu: of((run) => run.agentCpuMsPerRequest),
        fixtureCpu: of((run) => run.fixtureCpuMsPerRequest),
        errors: runs.reduce((sum, run) => sum + run.errors, 0),
        firstAltered: runs.reduce((sum, run) => sum + run.firstAltered, 0),
      };
    }
    const roundDiffs = (pick) => {
      const diffs = [];
      for (let round = 1; round <= settings.rounds; round++) {
        const [plain, masked] = CONNECTIONS.map((name) =>
          results.find((result) => result.round === round && result.target === name),
        );
        diffs.push(pick(masked) - pick(plain));
      }
      return { median: median(diffs), min: Math.min(...diffs), max: Math.max(...diffs), all: diffs };
    };
    const p50Diffs = roundDiffs((run) => run.firstToken.p50);
    const p99Diffs = roundDiffs((run) => run.firstToken.p99);
    const addedP50 = pooled.masked.firstToken.p50 - pooled.plain.firstToken.p50;
    const otherShares = results.map((result) => result.otherShare * 100);

    const cpus = os.cpus();
    const env = {
      revision: revision(),
      cpuModel: cpus[0]?.model ?? "unknown",
      cpus: os.availableParallelism(),
      node: process.version,
      kernel: `${os.type()} ${os.release()}`,
    };
    out("");
    out(
      `modelgate masking time-to-first-token benchmark: ${env.cpus} CPUs (${env.cpuModel}), Node ${env.node}, ${env.kernel}`,
    );
    out(
      `revision ${env.revision}; ${settings.rounds} round(s) × ${settings.requests} streaming requests per target, one at a time; ` +
        `${settings.chunks} SSE chunks ${settings.chunkIntervalMs} ms apart (the first ${settings.chunkIntervalMs} ms after the head), ` +
        `max_tokens ${answer.maxTokens}; first content chunk ${JSON.stringify(answer.first)}; gateway and agents LOG_LEVEL=${settings.logLevel}`,
    );
    out(`masked: ${JSON.stringify(MASKING)}`);
    out(
      `CPU outside the benchmark's processes: median ${median(otherShares).toFixed(0)} %, max ${Math.max(...otherShares).toFixed(0)} % of the machine`,
    );
    out("");
    const header = [
      "target",
      "requests",
      "TTFT p50",
      "TTFT p90",
      "TTFT p99",
      "last byte p50",
      "last byte p99",
      "gateway CPU/req",
      "agent CPU/req",
      "errors",
    ];
    const row = (name) => {
      const p = pooled[name];
      return [
        name,
        p.count,
        ms(p.firstToken.p50, 3),
        ms(p.firstToken.p90, 3),
        ms(p.firstToken.p99, 3),
        ms(p.lastByte.p50),
        ms(p.lastByte.p99),
        ms(p.gatewayCpu, 2),
        ms(p.agentCpu, 2),
        p.errors + p.firstAltered,
      ];
    };
    const diff = (pick, digits = 3) => signed(pick(pooled.masked) - pick(pooled.plain), digits);
    out(
      formatTable(header, [
        row("direct"),
        row("plain"),
        row("masked"),
        [
          "masked − plain",
          "",
          diff((p) => p.firstToken.p50),
          diff((p) => p.firstToken.p90),
          diff((p) => p.firstToken.p99),
          diff((p) => p.lastByte.p50, 2),
          diff((p) => p.lastByte.p99, 2),
          diff((p) => p.gatewayCpu, 2),
          diff((p) => p.agentCpu, 2),
          "",
        ],
      ]),
    );
    out(
      "(ms; percentiles of all rounds' requests together; CPU per request: median of the rounds; " +
        "direct: the fixture itself, for reference; errors: failed requests and first tokens not as expected)",
    );
    out("");
    out(
      `added TTFT p50, per round (masked − plain): median ${signed(p50Diffs.median, 3)} ms, ` +
        `range ${signed(p50Diffs.min, 3)} to ${signed(p50Diffs.max, 3)} ms`,
    );
    out(
      `added TTFT p99, per round (masked − plain): median ${signed(p99Diffs.median, 3)} ms, ` +
        `range ${signed(p99Diffs.min, 3)} to ${signed(p99Diffs.max, 3)} ms`,
    );
    const met = addedP50 <= 1 && p50Diffs.median <= 1;
    out(
      `target: added TTFT ≤ 1 ms at p50 with no PII candidate in the first tokens: ${met ? "MET" : "NOT MET"} ` +
        `(${signed(addedP50, 3)} ms pooled, ${signed(p50Diffs.median, 3)} ms median of rounds)`,
    );

    const file = path.join(resultsDir, `${stamp}-masking-ttft.json`);
    const report = {
      startedAt,
      finishedAt: new Date(),
      settings,
      machine: env,
      answer: { maxTokens: answer.maxTokens, first: answer.first, characters: answer.text.length },
      pooled,
      perRound: { p50: p50Diffs, p99: p99Diffs },
      results,
    };
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
