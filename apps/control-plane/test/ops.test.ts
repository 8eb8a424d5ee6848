// The control plane's ops listener: /livez, /readyz and /metrics on a port
// of their own, none of them on the public API port; readiness that fails
// when Postgres, the migrations or Redis are not there.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { cp as copy, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { createLogger, generateSecret, type OpsServer, startOpsServer } from "@modelgate/core";
import { createDatabaseClient, type Database, DEFAULT_MIGRATIONS_DIR, readMigrations } from "@modelgate/db";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { createControlPlaneMetrics } from "../src/http/metrics.js";
import { createReadinessChecks, type ReadinessChecks } from "../src/readiness.js";
import { type RunningControlPlane, startControlPlane } from "../src/server.js";

const REDIS_URL = process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379";

function quietLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ name: "control-plane", level: "info", destination }), lines };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const response = await fetch(url);
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as Record<string, unknown>, text };
}

describe("a running control plane", () => {
  let database: TestDatabase;
  let controlPlane: RunningControlPlane;
  const adminToken = generateSecret("mgadmin_");
  const { logger } = quietLogger();

  beforeAll(async () => {
    database = await createTestDatabase();
    controlPlane = await startControlPlane({
      host: "127.0.0.1",
      port: 0,
      ops: { host: "127.0.0.1", port: 0 },
      grpc: { host: "127.0.0.1", port: 0 },
      databaseUrl: database.url,
      dbPoolSize: 2,
      adminToken,
      gatewayToken: generateSecret("mggateway_"),
      version: "test",
      logger,
    });
  });
  afterAll(async () => {
    await controlPlane?.close();
    await database?.drop();
  });

  it("serves the ops endpoints on a port of their own, and none of them on the API port", async () => {
    expect(controlPlane.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(controlPlane.opsUrl).not.toBe(controlPlane.url);
    for (const path of ["/livez", "/readyz", "/metrics"]) {
      for (const authorization of [undefined, `Bearer ${adminToken}`]) {
        const response = await fetch(`${controlPlane.url}${path}`, {
          headers: authorization ? { authorization } : {},
        });
        const text = await response.text();
        expect({ path, status: response.status, code: JSON.parse(text).code }).toEqual({
          path,
          status: 404,
          code: "not_found",
        });
        expect(text).not.toContain("modelgate_");
      }
    }
    expect((await fetch(`${controlPlane.url}/healthz`)).status).toBe(200);

    expect(await getJson(`${controlPlane.opsUrl}/livez`)).toMatchObject({ status: 200, body: { status: "ok" } });
    expect(await getJson(`${controlPlane.opsUrl}/readyz`)).toMatchObject({
      status: 200,
      body: { status: "ready", checks: { database: "ok", migrations: "ok" } },
    });
  });

  it("counts API requests by route template and status, never by raw path", async () => {
    const secretName = `conn-${randomBytes(6).toString("hex")}`;
    const auth = { authorization: `Bearer ${adminToken}` };
    expect((await fetch(`${controlPlane.url}/api/v1/connections`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${controlPlane.url}/api/v1/connections/${secretName}`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${controlPlane.url}/api/v1/connections/${secretName}`)).status).toBe(401);
    expect((await fetch(`${controlPlane.url}/${secretName}`)).status).toBe(404);

    const response = await fetch(`${controlPlane.opsUrl}/metrics`);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await response.text();
    const count = (labels: string) =>
      Number(new RegExp(`^modelgate_control_plane_http_requests_total\\{${labels}\\} (\\d+)$`, "m").exec(text)?.[1]);
    expect(count('method="GET",route="/api/v1/connections",code="200"')).toBe(1);
    expect(count('method="GET",route="/api/v1/connections/{name}",code="404"')).toBe(1);
    expect(count('method="GET",route="unrouted",code="401"')).toBeGreaterThanOrEqual(1);
    expect(count('method="GET",route="unrouted",code="404"')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^modelgate_control_plane_http_request_duration_seconds_bucket\{/m);
    // Process metrics, under the control plane's prefix.
    expect(text).toMatch(/^modelgate_control_plane_process_cpu_seconds_total /m);
    expect(text).not.toContain(secretName);
  });

  it("refuses to start when its ops port is taken", async () => {
    const other = await createTestDatabase();
    try {
      await expect(
        startControlPlane({
          host: "127.0.0.1",
          port: 0,
          ops: { host: "127.0.0.1", port: Number(new URL(controlPlane.opsUrl).port) },
          grpc: { host: "127.0.0.1", port: 0 },
          databaseUrl: other.url,
          dbPoolSize: 1,
          adminToken,
          gatewayToken: generateSecret("mggateway_"),
          version: "test",
          logger,
          processMetrics: false,
        }),
      ).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await other.drop();
    }
  });
});

describe("control-plane readiness", () => {
  const servers: OpsServer[] = [];
  const clients: Database[] = [];
  const checks: ReadinessChecks[] = [];

  /** The composition server.ts runs: the readiness checks behind an ops listener. */
  async function serve(options: { databaseUrl: string; redisUrl?: string; migrationsDir?: string }) {
    const { logger, lines } = quietLogger();
    const db = createDatabaseClient({ databaseUrl: options.databaseUrl, maxConnections: 1 });
    clients.push(db);
    const readiness = await createReadinessChecks({
      db,
      redisUrl: options.redisUrl,
      migrationsDir: options.migrationsDir,
      logger,
    });
    checks.push(readiness);
    const server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      readiness: () => readiness.check(),
      metrics: createControlPlaneMetrics({ processMetrics: false }).registry,
      logger,
    });
    servers.push(server);
    return { url: server.url, readiness, lines };
  }

  const databases: TestDatabase[] = [];
  afterAll(async () => {
    for (const server of servers) await server.close();
    for (const check of checks) await check.close();
    for (const db of clients) await db.$disconnect();
    for (const database of databases) await database.drop();
  });

  it("is not ready when Postgres cannot be reached, and says which part without the error", async () => {
    const port = await closedPort();
    const { url, lines } = await serve({ databaseUrl: `postgresql://modelgate:s3cret@127.0.0.1:${port}/modelgate` });
    const answer = await getJson(`${url}/readyz`);
    expect(answer).toMatchObject({
      status: 503,
      body: { status: "not_ready", checks: { database: "unreachable", migrations: "unknown" } },
    });
    expect(answer.text).not.toContain("s3cret");
    expect(answer.text).not.toContain(String(port));
    expect(lines.some((line) => line.includes("the database does not answer"))).toBe(true);
  });

  it("is not ready until every migration of this release is applied", async () => {
    const empty = await createTestDatabase({ migrated: false });
    databases.push(empty);
    const names = (await readMigrations()).map((migration) => migration.name);
    const unmigrated = await getJson(`${(await serve({ databaseUrl: empty.url })).url}/readyz`);
    expect(unmigrated).toMatchObject({
      status: 503,
      body: { checks: { database: "ok", migrations: "pending" }, pendingMigrations: names },
    });

    // A release with one migration more than the database has.
    const migrated = await createTestDatabase();
    databases.push(migrated);
    const dir = await mkdtemp(path.join(tmpdir(), "modelgate-migrations-"));
    try {
      await copy(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
      await mkdir(path.join(dir, "29991231000000_from_the_future"));
      await writeFile(path.join(dir, "29991231000000_from_the_future", "migration.sql"), "SELECT 1;\n");
      const behind = await getJson(`${(await serve({ databaseUrl: migrated.url, migrationsDir: dir })).url}/readyz`);
      expect(behind).toMatchObject({
        status: 503,
        body: {
          checks: { database: "ok", migrations: "pending" },
          pendingMigrations: ["29991231000000_from_the_future"],
        },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const current = await getJson(`${(await serve({ databaseUrl: migrated.url })).url}/readyz`);
    expect(current).toEqual({
      status: 200,
      body: { status: "ready", checks: { database: "ok", migrations: "ok" } },
      text: expect.any(String),
    });
  });

  it("checks Redis when the audit queue is configured", async () => {
    const database = await createTestDatabase();
    databases.push(database);
    const up = await getJson(`${(await serve({ databaseUrl: database.url, redisUrl: REDIS_URL })).url}/readyz`);
    expect(up).toMatchObject({ status: 200, body: { checks: { database: "ok", migrations: "ok", redis: "ok" } } });

    const port = await closedPort();
    const down = await serve({ databaseUrl: database.url, redisUrl: `redis://:s3cret@127.0.0.1:${port}` });
    const answer = await getJson(`${down.url}/readyz`);
    expect(answer).toMatchObject({ status: 503, body: { checks: { database: "ok", redis: "unreachable" } } });
    expect(answer.text).not.toContain("s3cret");
  });

  it("is not ready once shutting down", async () => {
    const database = await createTestDatabase();
    databases.push(database);
    const { url, readiness } = await serve({ databaseUrl: database.url });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    readiness.stopping();
    expect(await getJson(`${url}/readyz`)).toMatchObject({ status: 503, body: { stopping: true } });
  });
});
