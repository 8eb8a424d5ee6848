#!/usr/bin/env node
// Configuration distribution at fleet scale: with 100,000 API keys and 10,000
// policies, how long until every connected gateway enforces one revoked key,
// and how many bytes each gateway receives for it. Also: a policy change
// (every gateway recompiles its PolicySet) and the snapshot a new gateway
// gets.
//
// The control plane runs as its own process (the built dist, on a scratch
// database seeded with bulk SQL); the gateways are the gateway's own
// ConfigClient and ConfigStore (dist), ten of them in this process, each
// dialling the control plane through a loopback TCP proxy that counts the
// bytes it forwards. A revocation counts as enforced at a gateway when its
// store no longer accepts the key, which is what the gateway's
// authentication reads on every request.
//
// Runs the built code: `npm run build` first, then `npm run bench:config`.
// Environment (empty counts as unset):
//   BENCH_DATABASE_URL   scratch database, dropped and recreated; its name must contain "bench"
//                        (default postgresql://postgres@127.0.0.1:5432/modelgate_bench_config)
//   BENCH_KEYS           API keys (default 100000)       BENCH_POLICIES  policies (default 10000)
//   BENCH_GATEWAYS       connected gateways (default 10) BENCH_REVOKES   revocations timed (default 50)
//   BENCH_POLICY_EDITS   policy edits timed (default 5)
//   BENCH_BASELINE_ROOT  another built checkout (the revision before deltas): measured the same way
//                        afterwards, on its own database (BENCH_BASELINE_REVOKES, default 5; no policy
//                        edits: each costs what a revocation costs there, a snapshot to every gateway)
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cpuMs, freePort, machineBusyMs, Services, waitFor } from "./lib/processes.mjs";
import { summarize } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const here = fileURLToPath(new URL("../", import.meta.url));

function setting(name, fallback) {
  const value = process.env[name]?.trim();
  return value ? value : fallback;
}
function count(name, fallback) {
  const value = Number(setting(name, String(fallback)));
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

const KEYS = count("BENCH_KEYS", 100_000);
const POLICIES = count("BENCH_POLICIES", 10_000);
const GATEWAYS = count("BENCH_GATEWAYS", 10);
const REVOKES = count("BENCH_REVOKES", 50);
const POLICY_EDITS = count("BENCH_POLICY_EDITS", 5);
const BASELINE_ROOT = setting("BENCH_BASELINE_ROOT", undefined);
const BASELINE_REVOKES = count("BENCH_BASELINE_REVOKES", 5);
const DATABASE_URL = setting("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/modelgate_bench_config");
const databaseName = decodeURIComponent(new URL(DATABASE_URL).pathname.slice(1));
if (!databaseName.includes("bench")) throw new Error('BENCH_DATABASE_URL must name a database containing "bench"');

/** The same product from another tree: every module is loaded from `root`. */
async function loadTree(root) {
  const load = (relative) => import(pathToFileURL(path.join(root, relative)).href);
  const [db, core, protocol, client, store] = await Promise.all([
    load("packages/db/dist/index.js"),
    load("packages/core/dist/index.js"),
    load("packages/protocol/dist/index.js"),
    load("apps/gateway/dist/config-client.js"),
    load("apps/gateway/dist/config-store.js"),
  ]);
  // pg is a dependency of @modelgate/db; resolved from there, as bench/lib/stack.mjs does.
  const pg = createRequire(path.join(root, "packages/db/package.json"))("pg");
  return { root, db, core, protocol, ConfigClient: client.ConfigClient, ConfigStore: store.ConfigStore, pg };
}

async function resetDatabase(pg, url, { create }) {
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
    if (create) await client.query(`CREATE DATABASE "${databaseName}"`);
  } finally {
    await client.end();
  }
}

/** A policy like a large organisation's: 1-3 groups, 1-2 connections, some limits. */
function policyDefinition(index) {
  const group = (offset) => `team-${(index * 7 + offset * 131) % 1000}`;
  const groups = [
    ...new Set([group(0), ...(index % 3 === 0 ? [group(1)] : []), ...(index % 5 === 0 ? [group(2)] : [])]),
  ];
  const connections = [`conn-${index % 50}`, ...(index % 4 === 0 ? [`conn-${(index + 17) % 50}`] : [])];
  return {
    subjects: { groups },
    resources: connections.map((connection, position) => ({
      connection,
      models: position === 0 ? ["*"] : ["llama-3.1-*", "*-instruct*"],
    })),
    operations: index % 2 === 0 ? ["inference", "models.list"] : ["inference", "embeddings", "models.list"],
    ...(index % 2 === 0 ? { limits: { maxTokens: 1024 + (index % 8) * 512 } } : {}),
  };
}

/** Bulk SQL: keys in one INSERT ... SELECT, policies from one JSON array. */
async function seed(pg, url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO api_keys (id, name, groups, key_hash, key_prefix, created_by)
       SELECT gen_random_uuid(), 'bench-key-' || i, ARRAY['team-' || (i % 1000), 'everyone'],
              encode(sha256(convert_to('mg_bench_' || i, 'UTF8')), 'hex'), 'mg_bench', 'bench'
       FROM generate_series(1, $1::int) AS i`,
      [KEYS],
    );
    const policies = Array.from({ length: POLICIES }, (_, index) => ({
      name: `bench-policy-${index}`,
      definition: policyDefinition(index),
    }));
    await client.query(
      `INSERT INTO policies (id, name, definition)
       SELECT gen_random_uuid(), p->>'name', p->'definition' FROM jsonb_array_elements($1::jsonb) AS p`,
      [JSON.stringify(policies)],
    );
    await client.query("ANALYZE");
    const victims = await client.query("SELECT id, key_hash FROM api_keys ORDER BY random() LIMIT $1", [
      Math.max(REVOKES, BASELINE_REVOKES),
    ]);
    const edited = await client.query("SELECT id, name, definition FROM policies WHERE name = 'bench-policy-0'");
    return { victims: victims.rows, policy: edited.rows[0] };
  } finally {
    await client.end();
  }
}

/** A loopback TCP proxy that counts the bytes the control plane sends through it. */
async function countingProxy(targetPort) {
  const counter = { down: 0 };
  const sockets = new Set();
  const server = net.createServer((socket) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(socket).add(upstream);
    upstream.on("data", (chunk) => {
      counter.down += chunk.length;
    });
    socket.pipe(upstream);
    upstream.pipe(socket);
    const close = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    address: `127.0.0.1:${server.address().port}`,
    counter,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Resolves when `condition(store)` holds, checked at once and after each change; returns when (performance.now()). */
function whenStore(store, condition) {
  return new Promise((resolve) => {
    if (condition(store)) {
      resolve(performance.now());
      return;
    }
    const check = () => {
      if (!condition(store)) return;
      store.off("change", check);
      resolve(performance.now());
    };
    store.on("change", check);
  });
}

const kib = (bytes) => `${(bytes / 1024).toFixed(bytes < 10_240 ? 2 : 0)} KiB`;
const ms = (value) => `${value.toFixed(value < 10 ? 2 : 0)} ms`;

async function measure(label, tree, { revokes, policyEdits }) {
  out(`\n## ${label} (${tree.root})`);
  const logDir = mkdtempSync(path.join(os.tmpdir(), "modelgate-bench-config-"));
  const services = new Services(logDir);
  const silent = tree.core.createLogger({
    name: "bench-gateway",
    level: "warn",
    destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
  });
  const proxies = [];
  const clients = [];
  try {
    await resetDatabase(tree.pg, DATABASE_URL, { create: true });
    await tree.db.migrate({ databaseUrl: DATABASE_URL });
    let started = performance.now();
    const { victims, policy } = await seed(tree.pg, DATABASE_URL);
    out(`seeded ${KEYS} keys and ${POLICIES} policies in ${ms(performance.now() - started)}`);

    const adminToken = `mgadmin_${randomBytes(24).toString("base64url")}`;
    const gatewayToken = `mggateway_${randomBytes(24).toString("base64url")}`;
    const httpPort = await freePort();
    const grpcPort = await freePort();
    const controlPlane = services.start("control-plane", path.join(tree.root, "apps/control-plane/dist/main.js"), {
      DATABASE_URL,
      MODELGATE_ADMIN_TOKEN: adminToken,
      MODELGATE_GATEWAY_TOKEN: gatewayToken,
      MODELGATE_CONTROL_PLANE_PORT: String(httpPort),
      MODELGATE_CONTROL_PLANE_GRPC_PORT: String(grpcPort),
      LOG_LEVEL: "warn",
    });
    const api = `http://127.0.0.1:${httpPort}/api/v1`;
    // The API description answers on the API port in every revision (readiness moved to an ops port).
    await waitFor(async () => (await fetch(`${api}/openapi.json`)).status === 200, {
      what: "the control plane",
      services,
    });
    const admin = async (method, route, body) => {
      const response = await fetch(`${api}${route}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
    };

    const connect = async (index) => {
      const proxy = await countingProxy(grpcPort);
      proxies.push(proxy);
      const store = new tree.ConfigStore();
      const client = new tree.ConfigClient({
        address: proxy.address,
        credentials: tree.protocol.channelCredentials(undefined),
        token: gatewayToken,
        gatewayId: `bench-gateway-${index}`,
        version: "bench",
        publicUrl: "http://127.0.0.1",
        store,
        logger: silent,
        agents: () => [],
      });
      const loaded = whenStore(store, (held) => held.loaded);
      const begun = performance.now();
      client.start();
      clients.push(client);
      const at = await loaded;
      return { store, client, proxy, loadMs: at - begun };
    };

    started = performance.now();
    const gateways = [];
    for (let index = 0; index < GATEWAYS; index += 1) gateways.push(await connect(index));
    const firstLoad = summarize(gateways.map((gateway) => gateway.loadMs));
    const snapshotBytes = summarize(gateways.map((gateway) => gateway.proxy.counter.down));
    out(
      `${GATEWAYS} gateways connected one after another in ${ms(performance.now() - started)}; ` +
        `each first configuration: ${ms(firstLoad.p50)} median, ${kib(snapshotBytes.p50)} received`,
    );
    await sleep(500);

    // Revocations, one at a time: from sending the DELETE to the last gateway refusing the key.
    const allMs = [];
    const apiMs = [];
    const perGatewayBytes = [];
    const cpCpu0 = cpuMs(controlPlane.pid);
    const busy0 = machineBusyMs();
    const wall0 = performance.now();
    for (const victim of victims.slice(0, revokes)) {
      const before = gateways.map((gateway) => gateway.proxy.counter.down);
      const enforced = gateways.map((gateway) =>
        whenStore(gateway.store, (store) => store.apiKeyByHash(victim.key_hash) === undefined),
      );
      const sent = performance.now();
      await admin("DELETE", `/api-keys/${victim.id}`);
      apiMs.push(performance.now() - sent);
      const times = await Promise.all(enforced);
      allMs.push(Math.max(...times) - sent);
      gateways.forEach((gateway, index) => {
        perGatewayBytes.push(gateway.proxy.counter.down - before[index]);
      });
      await sleep(100);
    }
    const wall = performance.now() - wall0;
    const cpCpu = cpuMs(controlPlane.pid) - cpCpu0;
    const busy = machineBusyMs() - busy0;
    const all = summarize(allMs);
    const sorted = [...allMs].sort((a, b) => a - b);
    const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)];
    const bytes = summarize(perGatewayBytes);
    const apis = summarize(apiMs);
    out(
      `revoke one key, ${revokes} times: until all ${GATEWAYS} refuse it p50 ${ms(all.p50)}, p95 ${ms(p95)}, ` +
        `max ${ms(all.max)} (the DELETE answered in p50 ${ms(apis.p50)})`,
    );
    out(
      `bytes per gateway per revocation (TCP payload from the control plane): p50 ${bytes.p50} B, ` +
        `max ${bytes.max} B (${kib(bytes.max)})`,
    );
    out(
      `control plane CPU during the revocations: ${ms(cpCpu / revokes)} per revocation; ` +
        `machine busy ${((busy / wall) * 100).toFixed(0)} % of one core on average over ${os.cpus().length} cores`,
    );

    // Policy edits: every gateway recompiles its PolicySet. The ten stores
    // share this process's one thread, so they recompile one after another:
    // the first to finish shows what one gateway takes, the spacing between
    // them what the recompilation alone costs.
    const editMs = [];
    const firstMs = [];
    const spacingMs = [];
    const editBytes = [];
    if (policy && policyEdits > 0) {
      for (let edit = 0; edit < policyEdits; edit += 1) {
        const before = gateways.map((gateway) => gateway.proxy.counter.down);
        const previous = gateways.map((gateway) => gateway.store.policies);
        const applied = gateways.map((gateway, index) =>
          whenStore(gateway.store, (store) => store.policies !== previous[index]),
        );
        const sent = performance.now();
        const { limits: _limits, ...definition } = policyDefinition(0);
        await admin("PUT", `/policies/${policy.id}`, {
          name: policy.name,
          ...definition,
          limits: { maxTokens: 2048 + edit },
        });
        const times = await Promise.all(applied);
        editMs.push(Math.max(...times) - sent);
        firstMs.push(Math.min(...times) - sent);
        spacingMs.push((Math.max(...times) - Math.min(...times)) / Math.max(1, times.length - 1));
        gateways.forEach((gateway, index) => {
          editBytes.push(gateway.proxy.counter.down - before[index]);
        });
        await sleep(100);
      }
      const edits = summarize(editMs);
      out(
        `edit one policy, ${policyEdits} times: first gateway recompiled after p50 ${ms(summarize(firstMs).p50)}, ` +
          `one recompilation every ${ms(summarize(spacingMs).p50)} after it, all ${GATEWAYS} (serially, one ` +
          `thread) p50 ${ms(edits.p50)}, max ${ms(edits.max)}; ${summarize(editBytes).p50} B per gateway`,
      );
    }

    // A gateway that starts now: snapshot built fresh, then one reusing it.
    const fresh = await connect(GATEWAYS);
    const reused = await connect(GATEWAYS + 1);
    out(
      `new gateway: snapshot ${kib(fresh.proxy.counter.down)}, connected to loaded in ${ms(fresh.loadMs)} ` +
        `(a second one right after: ${ms(reused.loadMs)})`,
    );
    return {
      label,
      revokes,
      allMs,
      p95,
      bytes,
      apiMs: apis,
      editMs,
      firstMs,
      spacingMs,
      snapshotBytes: fresh.proxy.counter.down,
      snapshotMs: fresh.loadMs,
      reusedMs: reused.loadMs,
      cpPerRevokeMs: cpCpu / revokes,
      busyShare: busy / wall,
    };
  } finally {
    for (const client of clients) client.close();
    for (const proxy of proxies) proxy.close();
    await services.stopAll();
    await resetDatabase(tree.pg, DATABASE_URL, { create: false });
  }
}

async function main() {
  const revision = (() => {
    try {
      return createRequire(import.meta.url)("node:child_process")
        .execFileSync("git", ["-C", here, "describe", "--always", "--dirty"], { encoding: "utf8" })
        .trim();
    } catch {
      return "unknown";
    }
  })();
  out(`# Configuration distribution benchmark (${new Date().toISOString()})`);
  out(
    `revision ${revision}; ${KEYS} keys, ${POLICIES} policies, ${GATEWAYS} gateways; node ${process.version}; ` +
      `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}); load average at start ${os
        .loadavg()
        .map((value) => value.toFixed(2))
        .join(" ")}`,
  );
  const results = [await measure("this tree", await loadTree(here), { revokes: REVOKES, policyEdits: POLICY_EDITS })];
  if (BASELINE_ROOT) {
    const baseline = await loadTree(path.resolve(BASELINE_ROOT));
    results.push(await measure("baseline", baseline, { revokes: BASELINE_REVOKES, policyEdits: 0 }));
  }
  out(
    `\nload average at the end ${os
      .loadavg()
      .map((value) => value.toFixed(2))
      .join(" ")}`,
  );
  out(`\n${JSON.stringify(results.map(({ allMs: _all, ...rest }) => rest))}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error.stack ?? error}\n`);
    process.exit(1);
  },
);
