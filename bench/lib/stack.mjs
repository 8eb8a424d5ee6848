// Starts everything the benchmark measures, each as its own process: the
// runtime fixture, the control plane (on a scratch database), the gateway,
// the agent and the bare reference proxy; provisions a connection, an agent
// and an API key through the admin API; waits until every path answers.
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort, waitFor } from "./processes.mjs";

const root = fileURLToPath(new URL("../../", import.meta.url));
const script = (relative) => path.join(root, relative);

// pg is a dependency of @modelgate/db; resolve it from there rather than
// relying on where npm happened to hoist it.
const pg = createRequire(script("packages/db/package.json"))("pg");

const CONNECTION = "bench";
const MODEL = "demo-chat";

/** Drops and recreates the scratch database (its name was checked to contain "bench"). */
async function resetDatabase(databaseUrl, { create }) {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    if (create) await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
}

export function dropDatabase(databaseUrl) {
  return resetDatabase(databaseUrl, { create: false });
}

/** Drops (when it exists) and creates the scratch database, for benchmarks that start their own services. */
export function recreateDatabase(databaseUrl) {
  return resetDatabase(databaseUrl, { create: true });
}

async function getStatus(url, headers = {}) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.status;
}

/**
 * The audit queue the benchmark's gateway writes to, on Redis
 * (BENCH_REDIS_URL), under a prefix of its own that `dropAuditQueue`
 * removes afterwards. The gateway's side of auditing (capturing the
 * answer, building the record, handing it to Redis) is on the measured
 * path. Storing the records is the control plane's work, on machines of
 * its own in production and measured by `npm run bench:audit-store`; here
 * it would compete with the measured processes for the same two cores, so
 * the control plane runs no audit worker unless BENCH_AUDIT_WORKER=true,
 * and the records wait in Redis until the queue is dropped.
 */
export function auditQueue() {
  return {
    redisUrl: process.env.BENCH_REDIS_URL?.trim() || "redis://127.0.0.1:6379",
    prefix: `bench-${randomBytes(4).toString("hex")}`,
    // On unless BENCH_AUDIT_WORKER=false: the control plane's worker turning
    // records into sessions is part of what every request costs.
    storeRecords: process.env.BENCH_AUDIT_WORKER?.trim() !== "false",
  };
}

/** The control plane's audit settings: the worker only when records are to be stored. */
export function controlPlaneAuditEnv(audit) {
  return audit.storeRecords ? { MODELGATE_REDIS_URL: audit.redisUrl, MODELGATE_AUDIT_QUEUE_PREFIX: audit.prefix } : {};
}

export async function dropAuditQueue({ redisUrl, prefix }) {
  // bullmq is a dependency of @modelgate/audit; resolved from there like pg.
  const { Queue } = createRequire(script("packages/audit/package.json"))("bullmq");
  const queue = new Queue("modelgate-audit", { connection: { url: redisUrl }, prefix });
  try {
    await queue.obliterate({ force: true });
  } finally {
    await queue.close();
  }
}

export async function startStack(services, options, { profileDir, audit = auditQueue() } = {}) {
  await resetDatabase(options.databaseUrl, { create: true });
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
    proxy: await freePort(),
    portkey: await freePort(),
    baselineGateway: await freePort(),
    baselineTunnel: await freePort(),
    baselineGatewayOps: await freePort(),
  };
  const fixtureUrl = `http://127.0.0.1:${ports.fixture}`;
  const controlPlaneUrl = `http://127.0.0.1:${ports.controlPlane}`;
  const gatewayUrl = `http://127.0.0.1:${ports.gateway}`;
  const controlPlaneOpsUrl = `http://127.0.0.1:${ports.controlPlaneOps}`;
  const gatewayOpsUrl = `http://127.0.0.1:${ports.gatewayOps}`;
  const proxyUrl = `http://127.0.0.1:${ports.proxy}`;
  const profile = (name) =>
    options.cpuProfile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];

  const fixture = services.start("runtime-fixture", script("packages/runtime-fixture/dist/cli.js"), {
    HOST: "127.0.0.1",
    PORT: String(ports.fixture),
    MODELS: MODEL,
    STREAM_CHUNKS: String(options.streamChunks),
    CHUNK_INTERVAL_MS: String(options.chunkIntervalMs),
  });
  const controlPlane = services.start(
    "control-plane",
    script("apps/control-plane/dist/main.js"),
    {
      DATABASE_URL: options.databaseUrl,
      MODELGATE_ADMIN_TOKEN: adminToken,
      MODELGATE_GATEWAY_TOKEN: gatewayToken,
      MODELGATE_CONTROL_PLANE_PORT: String(ports.controlPlane),
      MODELGATE_CONTROL_PLANE_GRPC_PORT: String(ports.controlPlaneGrpc),
      MODELGATE_CONTROL_PLANE_OPS_PORT: String(ports.controlPlaneOps),
      ...controlPlaneAuditEnv(audit),
      LOG_LEVEL: "warn",
    },
    profile("control-plane"),
  );
  await waitFor(async () => (await getStatus(`${controlPlaneOpsUrl}/readyz`)) === 200, {
    what: "the control plane",
    services,
  });
  await waitFor(async () => (await getStatus(`${fixtureUrl}/health`)) === 200, { what: "the fixture", services });

  const admin = async (method, path, body) => {
    const response = await fetch(`${controlPlaneUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  await admin("POST", "/connections", { name: CONNECTION, protocol: "openai", models: [MODEL] });
  const agentCredential = await admin("POST", `/connections/${CONNECTION}/agents`, { name: "bench-agent" });
  const { key: apiKey } = await admin("POST", "/api-keys", { name: "bench", groups: ["bench"] });
  const { key: plainKey } = await admin("POST", "/api-keys", { name: "bench-no-masking", groups: ["bench-plain"] });
  // Default deny: the benchmark's keys need a grant, with a realistic limit
  // for the policy engine to check on every request. The main key's answers
  // are masked (emails, cards, secrets), as a deployment that masks at the
  // source would; the second key's policy is the same without masking, so
  // the `nomask` target measures what masking costs, in the same run.
  const grant = {
    resources: [{ connection: CONNECTION, models: ["*"] }],
    operations: ["inference", "embeddings", "models.list"],
    limits: { maxTokens: 100_000 },
  };
  await admin("POST", "/policies", {
    name: "bench",
    subjects: { groups: ["bench"] },
    ...grant,
    masking: { entities: ["EMAIL", "CREDIT_CARD", "SECRET"] },
  });
  await admin("POST", "/policies", { name: "bench-no-masking", subjects: { groups: ["bench-plain"] }, ...grant });

  /**
   * A gateway and its agent, from this tree or from the baseline's
   * (BENCH_BASELINE_ROOT). `runtime` (BENCH_NODE_ARGS, BENCH_MALLOC_ARENA_MAX)
   * applies to this tree's hop only: with the baseline pointing at the same
   * tree, the A/B of a runtime setting.
   */
  const startHop = async (name, from, gatewayPort, tunnelPort, opsPort, agentToken, runtime = {}) => {
    const gateway = services.start(
      `${name}-gateway`,
      path.join(from, "apps/gateway/dist/main.js"),
      {
        MODELGATE_GATEWAY_PORT: String(gatewayPort),
        MODELGATE_TUNNEL_PORT: String(tunnelPort),
        // Revisions before the ops listener ignore it.
        MODELGATE_GATEWAY_OPS_PORT: String(opsPort),
        // No load balancer to wait for: stop at once (and write --cpu-prof profiles).
        MODELGATE_SHUTDOWN_DELAY_MS: "0",
        MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://127.0.0.1:${ports.controlPlaneGrpc}`,
        MODELGATE_GATEWAY_TOKEN: gatewayToken,
        MODELGATE_REDIS_URL: audit.redisUrl,
        MODELGATE_AUDIT_QUEUE_PREFIX: audit.prefix,
        LOG_LEVEL: options.logLevel,
        // A benchmark's extra settings (the memory benchmark lifts the per-caller cap).
        ...(options.gatewayEnv ?? {}),
        ...(runtime.env ?? {}),
      },
      [...profile(`${name}-gateway`), ...(options.gatewayNodeArgs ?? []), ...(runtime.nodeArgs ?? [])],
    );
    // /healthz answers on the client port in every revision; readiness
    // (configuration, agents) is checked below by listing models.
    await waitFor(async () => (await getStatus(`http://127.0.0.1:${gatewayPort}/healthz`)) === 200, {
      what: `the ${name} gateway`,
      services,
    });
    const agent = services.start(
      `${name}-agent`,
      path.join(from, "apps/agent/dist/main.js"),
      {
        MODELGATE_GATEWAY_URLS: `grpc://127.0.0.1:${tunnelPort}`,
        MODELGATE_AGENT_TOKEN: agentToken,
        MODELGATE_RUNTIME_URL: fixtureUrl,
        // Room for every benchmark connection, so the agent's limit never queues requests.
        MODELGATE_AGENT_CAPACITY: String(Math.max(64, options.connections + 16)),
        MODELGATE_DRAIN_TIMEOUT_MS: "2000",
        MODELGATE_AGENT_OPS_PORT: "0",
        LOG_LEVEL: options.logLevel,
        ...(runtime.env ?? {}),
      },
      [...profile(`${name}-agent`), ...(options.agentNodeArgs ?? []), ...(runtime.nodeArgs ?? [])],
    );
    return { gateway, agent };
  };
  const { gateway, agent } = await startHop(
    "modelgate",
    root,
    ports.gateway,
    ports.tunnel,
    ports.gatewayOps,
    agentCredential.token,
    options.hopRuntime,
  );
  await waitFor(async () => (await getStatus(`${gatewayOpsUrl}/readyz`)) === 200, { what: "the gateway", services });
  const baselineCredential = options.baselineRoot
    ? await admin("POST", `/connections/${CONNECTION}/agents`, { name: "bench-baseline-agent" })
    : undefined;
  const baseline = baselineCredential
    ? await startHop(
        "baseline",
        options.baselineRoot,
        ports.baselineGateway,
        ports.baselineTunnel,
        ports.baselineGatewayOps,
        baselineCredential.token,
      )
    : undefined;
  const baselineUrl = `http://127.0.0.1:${ports.baselineGateway}`;
  const proxy = services.start("bare-proxy", script("bench/bare-proxy.mjs"), {
    UPSTREAM_URL: fixtureUrl,
    PORT: String(ports.proxy),
  });

  await waitFor(
    async () => {
      const { items } = await admin("GET", `/agents?connection=${CONNECTION}`);
      const connected = (id) => items.some((item) => item.id === id && item.tunnel.state === "connected");
      return connected(agentCredential.id) && (!baselineCredential || connected(baselineCredential.id));
    },
    { what: "the agents to connect", services },
  );
  for (const url of baseline ? [gatewayUrl, baselineUrl] : [gatewayUrl]) {
    await waitFor(async () => (await getStatus(`${url}/v1/models`, { authorization: `Bearer ${apiKey}` })) === 200, {
      what: "the API key to reach the gateway",
      services,
    });
  }
  await waitFor(async () => (await getStatus(`${proxyUrl}/health`)) === 200, { what: "the bare proxy", services });

  // Portkey's open-source gateway (installed by `npm run bench:peers`), the
  // peer the issue compares with: the OpenAI provider pointed at the fixture.
  // Its guard against private custom hosts must be told loopback is trusted.
  const portkeyUrl = `http://127.0.0.1:${ports.portkey}`;
  const portkey = options.portkeyServer
    ? services.start(
        "portkey",
        options.portkeyServer,
        { NODE_ENV: "production", TRUSTED_CUSTOM_HOSTS: "127.0.0.1" },
        [],
        [`--port=${ports.portkey}`, "--headless"],
      )
    : undefined;
  const portkeyHeaders = {
    "x-portkey-provider": "openai",
    "x-portkey-custom-host": `${fixtureUrl}/v1`,
    // The fixture's stream shape travels in headers Portkey would otherwise drop.
    "x-portkey-forward-headers": "x-fixture-chunks,x-fixture-interval-ms",
  };
  if (portkey) {
    await waitFor(
      async () => {
        // A chat completion: Portkey 1.15.2 fails on the models list of a custom host.
        const response = await fetch(`${portkeyUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { ...portkeyHeaders, authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "ready?" }] }),
          signal: AbortSignal.timeout(2_000),
        });
        await response.arrayBuffer();
        return response.status === 200;
      },
      { what: "Portkey", services },
    );
  }

  // bullmq is a dependency of @modelgate/audit; resolved from there like pg.
  const { Queue } = createRequire(script("packages/audit/package.json"))("bullmq");
  const auditJobs = new Queue("modelgate-audit", { connection: { url: audit.redisUrl }, prefix: audit.prefix });
  services.onStop(() => auditJobs.close());

  return {
    audit,
    admin,
    /**
     * Resolves once the audit queue is empty (every record handed over so
     * far is stored), so the control plane's CPU for a run's records can be
     * charged to that run. Without the worker, at once.
     */
    async auditDrained(timeoutMs = 180_000) {
      if (!audit.storeRecords) return;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const counts = await auditJobs.getJobCounts("waiting", "active", "delayed", "prioritized");
        if (Object.values(counts).every((count) => count === 0)) return;
        if (Date.now() > deadline) throw new Error("the audit queue did not drain in time");
        await sleep(50);
      }
    },
    gatewayOpsUrl,
    fixture,
    controlPlane,
    gateway,
    agent,
    proxy,
    all: [
      fixture,
      controlPlane,
      gateway,
      agent,
      proxy,
      ...(portkey ? [portkey] : []),
      ...(baseline ? [baseline.gateway, baseline.agent] : []),
    ],
    // `processes`: the hop's own processes, whose CPU is charged to each request.
    targets: [
      { name: "direct", url: fixtureUrl, model: MODEL, apiKey, processes: [] },
      { name: "proxy", url: proxyUrl, model: MODEL, apiKey, processes: [proxy] },
      ...(portkey
        ? [
            {
              name: "portkey",
              url: portkeyUrl,
              model: MODEL,
              apiKey,
              headers: portkeyHeaders,
              processes: [portkey],
              // Portkey 1.15.2 answers 500 to a stream whose content type is
              // "text/event-stream; charset=utf-8", as the fixture's (and
              // vLLM's) are; only the non-streaming goal is measured against it.
              streams: false,
            },
          ]
        : []),
      {
        name: "modelgate",
        url: gatewayUrl,
        model: `${CONNECTION}/${MODEL}`,
        apiKey,
        processes: [gateway, agent],
        audited: true,
        masked: true,
      },
      // The same gateway and agent for a key whose policy does not mask: the A/B of the masking stage.
      ...(options.stages
        ? [
            {
              name: "nomask",
              url: gatewayUrl,
              model: `${CONNECTION}/${MODEL}`,
              apiKey: plainKey,
              processes: [gateway, agent],
              audited: true,
            },
          ]
        : []),
      // The same product from another tree (the revision before a change), measured in the same rounds.
      ...(baseline
        ? [
            {
              name: "baseline",
              url: baselineUrl,
              model: `${CONNECTION}/${MODEL}`,
              apiKey,
              processes: [baseline.gateway, baseline.agent],
              audited: true,
              masked: true,
            },
          ]
        : []),
    ],
  };
}
