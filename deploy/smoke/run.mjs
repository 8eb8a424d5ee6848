// The deployment smoke test: every app of the image started the way an
// operator would start it (migrate, control plane, demo runtime, gateway,
// agent), configured only through the environment, against a scratch
// database on the given Postgres and a private key prefix on the given Redis,
// until one chat completion goes through the gateway and is recorded; then
// each app gets SIGTERM and must exit 0 (a drained, clean stop).
//
// How an app is started is the launcher's business: containers from the
// image (podman.mjs, in CI) or plain processes from the assembled file set
// (deploy/test/assembled.test.ts). Both see the same checks.
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import pg from "pg";

/**
 * @typedef {object} RunningApp
 * @property {string} app
 * @property {() => Promise<number | null>} stop SIGTERM, then the exit code once it has exited
 * @property {() => Promise<number | null>} kill immediate stop, for cleanup after a failure
 * @property {() => Promise<string>} logs its output so far
 * @property {() => Promise<number | undefined>} exited its exit code once it has ended, undefined while it runs
 *
 * @typedef {object} Launcher
 * @property {(app: string, env: Record<string, string>) => Promise<RunningApp>} start
 * @property {(app: string, env: Record<string, string>) => Promise<{ code: number | null, output: string }>} run
 *   a one-shot app, to its end
 * @property {(running: RunningApp) => Promise<void>} [healthcheck] the image's health check, where there is one
 */

const ADMIN_TOKEN = `mgadmin_smoke_${randomBytes(24).toString("hex")}`;
const GATEWAY_TOKEN = `mggateway_smoke_${randomBytes(24).toString("hex")}`;
/** Each wait covers work of a second or two; the margin is for a loaded machine starting containers. */
const WAIT_MS = 90_000;

/**
 * @param {{ launcher: Launcher, databaseUrl: string, redisUrl: string, log?: (line: string) => void }} options
 *   databaseUrl: the Postgres server (any database on it); a scratch database is created beside it and dropped
 */
export async function runSmoke({ launcher, databaseUrl, redisUrl, log = () => {} }) {
  const suffix = randomBytes(5).toString("hex");
  const database = `mg_image_smoke_${suffix}`;
  const queuePrefix = `mg-image-smoke-${suffix}`;
  const serverUrl = new URL(databaseUrl);
  const scratchUrl = new URL(databaseUrl);
  scratchUrl.pathname = `/${database}`;
  const [controlPlanePort, grpcPort, gatewayPort, tunnelPort, runtimePort, ...opsPorts] = await freePorts(8);
  // The ops listeners too: their defaults (9080-9082) may be taken on a shared machine.
  const [controlPlaneOps, gatewayOps, agentOps] = opsPorts.map(String);
  const controlPlane = `http://127.0.0.1:${controlPlanePort}`;
  const gateway = `http://127.0.0.1:${gatewayPort}`;
  /** @type {RunningApp[]} */
  const running = [];
  const step = (what) => log(`smoke: ${what}`);

  await admin(serverUrl, `CREATE DATABASE "${database}"`);
  try {
    step("migrate (one-shot)");
    const migrated = await launcher.run("migrate", { DATABASE_URL: scratchUrl.href });
    if (migrated.code !== 0 || !/migration\(s\) applied/.test(migrated.output)) {
      throw new Error(`migrate exited ${migrated.code}:\n${migrated.output}`);
    }

    step("control plane");
    const controlPlaneApp = await launcher.start("control-plane", {
      DATABASE_URL: scratchUrl.href,
      MODELGATE_ADMIN_TOKEN: ADMIN_TOKEN,
      MODELGATE_GATEWAY_TOKEN: GATEWAY_TOKEN,
      MODELGATE_CONTROL_PLANE_PORT: String(controlPlanePort),
      MODELGATE_CONTROL_PLANE_GRPC_PORT: String(grpcPort),
      MODELGATE_CONTROL_PLANE_OPS_PORT: controlPlaneOps,
      MODELGATE_REDIS_URL: redisUrl,
      MODELGATE_AUDIT_QUEUE_PREFIX: queuePrefix,
    });
    running.push(controlPlaneApp);
    await waitFor(controlPlaneApp, "the control plane to answer /healthz", async () => {
      return (await get(`${controlPlane}/healthz`))?.status === 200;
    });

    step("demo runtime");
    running.push(
      await launcher.start("runtime-fixture", { HOST: "127.0.0.1", PORT: String(runtimePort), MODELS: "demo-chat" }),
    );

    step("provision a connection, an agent, an API key and a policy through the admin API");
    const api = async (method, path, body, expected) => {
      const response = await fetch(`${controlPlane}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      if (response.status !== expected) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return JSON.parse(text);
    };
    await api("POST", "/connections", { name: "demo", protocol: "openai", models: ["demo-chat"] }, 201);
    const agentToken = (await api("POST", "/connections/demo/agents", { name: "smoke" }, 201)).token;
    const apiKey = (await api("POST", "/api-keys", { name: "smoke", groups: ["smoke"] }, 201)).key;
    await api(
      "POST",
      "/policies",
      {
        name: "smoke",
        subjects: { groups: ["smoke"] },
        resources: [{ connection: "demo", models: ["*"] }],
        operations: ["inference", "models.list"],
      },
      201,
    );

    step("gateway");
    const gatewayApp = await launcher.start("gateway", {
      MODELGATE_GATEWAY_PORT: String(gatewayPort),
      MODELGATE_TUNNEL_PORT: String(tunnelPort),
      MODELGATE_GATEWAY_OPS_PORT: gatewayOps,
      MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://127.0.0.1:${grpcPort}`,
      MODELGATE_GATEWAY_TOKEN: GATEWAY_TOKEN,
      MODELGATE_REDIS_URL: redisUrl,
      MODELGATE_AUDIT_QUEUE_PREFIX: queuePrefix,
    });
    running.push(gatewayApp);
    await waitFor(gatewayApp, "the gateway to answer /healthz", async () => {
      return (await get(`${gateway}/healthz`))?.status === 200;
    });

    step("agent");
    const agentApp = await launcher.start("agent", {
      MODELGATE_GATEWAY_URLS: `grpc://127.0.0.1:${tunnelPort}`,
      MODELGATE_AGENT_TOKEN: agentToken,
      MODELGATE_RUNTIME_URL: `http://127.0.0.1:${runtimePort}`,
      MODELGATE_AGENT_OPS_PORT: agentOps,
    });
    running.push(agentApp);

    step("a chat completion through the gateway");
    /** @type {any} */
    let completion;
    let last = "no answer yet";
    await waitFor(
      agentApp,
      "a chat completion to succeed through the gateway",
      async () => {
        const response = await fetch(`${gateway}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "demo/demo-chat", messages: [{ role: "user", content: "Hello" }] }),
        });
        const text = await response.text();
        last = `${response.status} ${text}`;
        // Until the pushed configuration names the key (401) and the agent has
        // registered (503), the gateway is still coming up. Anything else is an answer.
        if (response.status === 401 || response.status === 503) return false;
        if (response.status !== 200) throw new Error(`the gateway answered ${last}`);
        completion = JSON.parse(text);
        return true;
      },
      () => `the gateway's last answer: ${last}`,
    );
    const content = completion?.choices?.[0]?.message?.content;
    if (typeof content !== "string" || !content.includes("modelgate demo runtime")) {
      throw new Error(`unexpected completion: ${JSON.stringify(completion)}`);
    }

    step("the request's audit session reaches Postgres (gateway -> Redis -> control plane)");
    await waitFor(controlPlaneApp, "the audit session to be stored", async () => {
      const response = await fetch(`${controlPlane}/api/v1/sessions?limit=5`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      if (response.status !== 200) throw new Error(`sessions: ${response.status} ${await response.text()}`);
      return (await response.json()).items.length > 0;
    });

    step("the web console is in the image: /console/ served with its Content-Security-Policy");
    {
      const response = await fetch(`${controlPlane}/console/`);
      const html = await response.text();
      const csp = response.headers.get("content-security-policy") ?? "";
      if (response.status !== 200 || !html.includes('<div id="root">') || !csp.includes("script-src 'self'")) {
        throw new Error(`the console: ${response.status} ${csp} ${html.slice(0, 200)}`);
      }
      const script = html.match(/src="(\/console\/assets\/[^"]+\.js)"/)?.[1];
      const asset = script ? await fetch(`${controlPlane}${script}`) : undefined;
      if (asset?.status !== 200) throw new Error(`the console's script ${script}: ${asset?.status}`);
    }

    if (launcher.healthcheck) {
      step("the image's health check, in every running container");
      for (const app of running) await launcher.healthcheck(app);
    }

    step("SIGTERM: agent, gateway, demo runtime, control plane; each must exit 0");
    const codes = [];
    for (const app of [...running].sort(stopOrder)) {
      const code = await app.stop();
      running.splice(running.indexOf(app), 1);
      codes.push(`${app.app}=${code}`);
      if (code !== 0) throw new Error(`${app.app} exited ${code} after SIGTERM:\n${await app.logs()}`);
    }
    step(`stopped cleanly (${codes.join(", ")})`);
    return { content };
  } finally {
    for (const app of running) await app.kill().catch(() => undefined);
    await admin(serverUrl, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await deleteKeys(redisUrl, `${queuePrefix}:*`);
  }
}

/** Clients' side first: the agent drains its requests, then the gateway, the runtime, the control plane. */
const STOP_ORDER = ["agent", "gateway", "runtime-fixture", "control-plane"];
const stopOrder = (a, b) => STOP_ORDER.indexOf(a.app) - STOP_ORDER.indexOf(b.app);

async function admin(serverUrl, sql) {
  const url = new URL(serverUrl);
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function deleteKeys(redisUrl, pattern) {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

async function get(url) {
  return fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
}

/** Polls `check` until it is true; fails early, with the app's output, when the app has exited. */
async function waitFor(app, what, check, explain = () => "") {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await check()) return;
    const exited = await app.exited();
    if (exited !== undefined) {
      throw new Error(`${app.app} exited ${exited} while waiting for ${what}:\n${await app.logs()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}. ${explain()}\n${app.app}'s output:\n${await app.logs()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Ports free on loopback right now, all different (the apps bind them a moment later). */
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      await new Promise((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
      servers.push(server);
    }
    return servers.map((server) => server.address().port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}
