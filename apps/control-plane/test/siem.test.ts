// SIEM export and alerts end to end on real Redis and Postgres: records
// enqueued the way a gateway does, stored by the real audit worker, whose
// hook feeds the export queue and the alert rules; a real HTTP webhook
// receiver and a real syslog TCP server on loopback receive the events,
// reachable because the control plane is told to allow loopback as an
// operator would with MODELGATE_EXPORT_ALLOW_CIDRS=127.0.0.0/8 (without it
// exporters refuse loopback: test/export-egress.test.ts).

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { Writable } from "node:stream";
import {
  type AuditQueue,
  type AuditRecord,
  type AuditWorker,
  createAuditQueue,
  startAuditWorker,
} from "@modelgate/audit";
import { createLogger, generateSecret, uuidv7 } from "@modelgate/core";
import { createDatabaseClient } from "@modelgate/db";
import { createTestDatabase } from "@modelgate/db/testing";
import { Queue } from "bullmq";
import { createApp } from "../src/app.js";
import { alertRoutes } from "../src/features/alerts/routes.js";
import { EXPORT_QUEUE } from "../src/features/exporters/delivery.js";
import { createExportEgress } from "../src/features/exporters/egress.js";
import { type SiemPipeline, startSiemPipeline } from "../src/features/exporters/pipeline.js";
import { exporterRoutes } from "../src/features/exporters/routes.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { startConfigPublisher } from "../src/gateway-link/publisher.js";
import { createAuthenticator } from "../src/http/auth.js";
import { createSecretBox } from "../src/secret-box.js";
import { apiClient, expectProblem, type RunningControlPlane } from "./harness.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** How old a signature a receiver accepts: the tolerance docs/siem.md recommends. */
const TOLERANCE_SECONDS = 300;

async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A loopback port where nothing listens: a dead SIEM. */
async function deadPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A webhook receiver on loopback: records every request and answers with the next planned status (200 when none). */
async function startReceiver() {
  const requests: Received[] = [];
  const plan: number[] = [];
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const status = plan.shift() ?? 200;
      requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), status });
      res.writeHead(status).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/modelgate`,
    requests,
    plan,
    /** Parsed events whose signature verifies with `secret`, as a receiver checks them. */
    verified: (secret: string) =>
      requests.filter((request) => request.status === 200 && verifySignature(request, secret)).map(parse),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// biome-ignore lint/suspicious/noExplicitAny: events are asserted field by field
const parse = (request: Received): any => JSON.parse(request.body);

/**
 * What a receiver does (docs/siem.md#verifying-a-webhook): parse
 * `t=…,v1=…`, refuse a timestamp outside the tolerance, recompute the HMAC
 * over `t + "." + raw body` and compare in constant time.
 */
function verifySignature(request: Received, secret: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const header = request.headers["x-modelgate-signature"];
  if (typeof header !== "string") return false;
  const parts = Object.fromEntries(header.split(",").map((part) => part.split("=", 2) as [string, string]));
  const timestamp = Number(parts.t);
  if (!Number.isInteger(timestamp) || Math.abs(nowSeconds - timestamp) > TOLERANCE_SECONDS) return false;
  const expected = createHmac("sha256", secret).update(`${parts.t}.${request.body}`).digest();
  const presented = Buffer.from(parts.v1 ?? "", "hex");
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

describe("SIEM export and alerts", () => {
  const prefix = `mgtest-siem-${randomBytes(4).toString("hex")}`;
  const egress = createExportEgress({ allowCidrs: "127.0.0.0/8" });
  const logLines: string[] = [];
  const logger = createLogger({
    name: "control-plane",
    level: "debug",
    destination: new Writable({
      write(chunk, _encoding, callback) {
        logLines.push(...String(chunk).split("\n").filter(Boolean));
        callback();
      },
    }),
  });
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  let server: Server;
  let producer: AuditQueue;
  let pipeline: SiemPipeline;
  let worker: AuditWorker;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  let clock = Date.now() - 60_000;
  function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
    clock += 10;
    const receivedAt = new Date(clock).toISOString();
    return {
      version: 1,
      sessionId: uuidv7(),
      gatewayId: "gw-1",
      receivedAt,
      finishedAt: new Date(clock + 5).toISOString(),
      subject: { id: "alice", email: "alice@example.com", groups: ["data-science"], authMethod: "oidc" },
      clientIp: "10.0.0.7",
      connection: "llama",
      model: "llama-3.1-8b-instruct",
      endpoint: "/v1/chat/completions",
      method: "POST",
      decision: "allowed",
      policyIds: ["01900000-0000-7000-8000-000000000001"],
      capped: [],
      responseStatus: 200,
      latencyMs: 5,
      request: { text: "TOP-SECRET-PROMPT please", truncated: false, bytes: 24 },
      response: { text: "TOP-SECRET-ANSWER", truncated: false, bytes: 17 },
      events: [],
      maskedCounts: { email: 1 },
      ...overrides,
    };
  }
  const stored = (id: string) => async () => (await cp.db.session.findUnique({ where: { id } })) !== null;

  beforeAll(async () => {
    const database = await createTestDatabase();
    const db = createDatabaseClient({ databaseUrl: database.url, maxConnections: 8 });
    const adminToken = generateSecret("mgadmin_");
    const secrets = createSecretBox(randomBytes(32));
    const config = await startConfigPublisher({ db, databaseUrl: database.url, logger });
    const app = createApp({
      db,
      logger,
      authenticator: createAuthenticator({ adminToken }),
      version: "test",
      config,
      secrets,
      exportEgress: egress,
    });
    server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    cp = {
      url: `http://127.0.0.1:${port}`,
      adminToken,
      db,
      database,
      logLines: () => [...logLines],
      async close() {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await config.close();
        await db.$disconnect();
        await database.drop();
      },
    };
    api = apiClient(cp);
    receiver = await startReceiver();
    producer = createAuditQueue({ connection: REDIS_URL, prefix });
    pipeline = await startSiemPipeline({
      connection: REDIS_URL,
      db,
      secrets,
      egress,
      logger,
      prefix,
      retry: { baseMs: 50, maxMs: 200 },
    });
    worker = await startAuditWorker({
      connection: REDIS_URL,
      prefix,
      store: createSessionStore({ db }),
      logger,
      onStored: pipeline.onStored,
      retry: { baseMs: 50, maxMs: 200 },
    });
  });
  afterAll(async () => {
    await worker.close();
    await pipeline.close();
    await producer.close();
    const inspect = new Queue(EXPORT_QUEUE, { connection: { url: REDIS_URL }, prefix });
    await inspect.obliterate({ force: true });
    await inspect.close();
    const audit = new Queue("modelgate-audit", { connection: { url: REDIS_URL }, prefix });
    await audit.obliterate({ force: true });
    await audit.close();
    await receiver.close();
    await egress.close();
    await cp.close();
  });

  const webhook = (overrides: Record<string, unknown> = {}) => ({
    name: `hook-${randomBytes(3).toString("hex")}`,
    kind: "webhook",
    // it.each tables are built before beforeAll runs: any valid URL does for them.
    url: receiver?.url ?? "http://127.0.0.1:9/in",
    types: ["session", "alert"],
    timeoutMs: 2000,
    ...overrides,
  });

  describe("exporters API", () => {
    it("creates a webhook with a generated secret shown once, sealed at rest, never returned or logged again", async () => {
      const created = await api("POST", "/api/v1/exporters", { body: webhook({ name: "siem-main" }) });
      expect(created.status).toBe(201);
      const { id, secret } = created.body;
      expect(secret).toMatch(/^mgwhsec_[0-9A-Za-z]{32}$/);
      expect(created.body).toMatchObject({
        name: "siem-main",
        kind: "webhook",
        // it.each tables are built before beforeAll runs: any valid URL does for them.
        url: receiver?.url ?? "http://127.0.0.1:9/in",
        enabled: true,
        types: ["session", "alert"],
        decisions: [],
        timeoutMs: 2000,
        secretSealed: true,
        delivery: { delivered: 0, failed: 0, lastSuccessAt: null, lastFailureAt: null, lastError: null },
      });

      const got = await api("GET", `/api/v1/exporters/${id}`);
      expect(got.status).toBe(200);
      expect(got.body).not.toHaveProperty("secret");
      const listed = await api("GET", "/api/v1/exporters");
      const replaced = await api("PUT", `/api/v1/exporters/${id}`, {
        body: webhook({ name: "siem-main", enabled: false, secret: "s".repeat(40) }),
      });
      expect(replaced.status).toBe(200);
      expect(replaced.body.enabled).toBe(false);

      const row = await cp.db.exporter.findUniqueOrThrow({ where: { id } });
      expect(row.secret).toMatch(/^aesgcm1\./);
      const everything = [
        got.text,
        listed.text,
        replaced.text,
        row.secret,
        JSON.stringify(
          (await cp.db.adminAuditLog.findMany({ where: { targetId: id } })).map((entry) => ({
            ...entry,
            id: String(entry.id),
          })),
        ),
        ...cp.logLines(),
      ].join("\n");
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain("s".repeat(40));

      const actions = await cp.db.adminAuditLog.findMany({ where: { targetId: id }, orderBy: { id: "asc" } });
      expect(actions.map((entry) => entry.action)).toEqual(["exporter.create", "exporter.update"]);
      expect((await api("DELETE", `/api/v1/exporters/${id}`)).status).toBe(204);
      expectProblem(await api("GET", `/api/v1/exporters/${id}`), 404, "not_found");
    });

    it.each([
      ["a URL that is not http(s)", webhook({ url: "ftp://127.0.0.1/x" })],
      ["a URL with credentials", webhook({ url: "https://user:pw@siem.example.com/in" })],
      ["a URL too long", webhook({ url: `https://siem.example.com/${"a".repeat(2100)}` })],
      ["a short secret", webhook({ secret: "short" })],
      ["no event types", webhook({ types: [] })],
      ["an unknown event type", webhook({ types: ["everything"] })],
      ["an unknown decision", webhook({ decisions: ["maybe"] })],
      ["an unknown field", webhook({ headers: { x: "y" } })],
      ["a timeout too long", webhook({ timeoutMs: 600_000 })],
      ["an unknown kind", webhook({ kind: "kafka" })],
      [
        "a syslog port out of range",
        { name: "sys-bad", kind: "syslog", host: "127.0.0.1", port: 70_000, types: ["alert"] },
      ],
      ["a syslog host with a space", { name: "sys-bad", kind: "syslog", host: "a b", port: 514, types: ["alert"] }],
      [
        "a syslog facility out of range",
        { name: "sys-bad", kind: "syslog", host: "h", port: 514, facility: 24, types: ["alert"] },
      ],
    ])("refuses %s and stores nothing", async (_label, body) => {
      const before = await cp.db.exporter.count();
      expectProblem(await api("POST", "/api/v1/exporters", { body }), 400, "invalid_request");
      expect(await cp.db.exporter.count()).toBe(before);
    });

    it("refuses a kind change and a duplicate name, changing nothing", async () => {
      const { body } = await api("POST", "/api/v1/exporters", { body: webhook({ name: "keep-kind", enabled: false }) });
      const changed = await api("PUT", `/api/v1/exporters/${body.id}`, {
        body: { name: "keep-kind", kind: "syslog", host: "127.0.0.1", port: 514, types: ["alert"] },
      });
      expectProblem(changed, 400, "invalid_request");
      expectProblem(await api("POST", "/api/v1/exporters", { body: webhook({ name: "keep-kind" }) }), 409, "conflict");
      expect((await api("GET", `/api/v1/exporters/${body.id}`)).body).toMatchObject({
        kind: "webhook",
        enabled: false,
      });
      await api("DELETE", `/api/v1/exporters/${body.id}`);
    });

    it("admins only for exporters and rules; auditors also read alerts", () => {
      const fake = {} as never;
      expect(exporterRoutes(fake).every((route) => route.roles.join() === "admin")).toBe(true);
      const rules = alertRoutes(fake);
      expect(
        rules.filter((route) => route.path.startsWith("/alert-rules")).every((route) => route.roles.join() === "admin"),
      ).toBe(true);
      expect(rules.filter((route) => route.path.startsWith("/alerts")).map((route) => route.roles)).toEqual([
        ["admin", "auditor"],
        ["admin", "auditor"],
      ]);
    });
  });

  describe("alert rules API", () => {
    it.each([
      ["a threshold of 0", { name: "r", kind: "blocked_repeated", threshold: 0, windowSeconds: 60 }],
      ["a threshold over 100", { name: "r", kind: "blocked_repeated", threshold: 101, windowSeconds: 60 }],
      ["a window over a week", { name: "r", kind: "blocked_repeated", threshold: 3, windowSeconds: 700_000 }],
      ["no window", { name: "r", kind: "blocked_repeated", threshold: 3 }],
      ["empty decisions", { name: "r", kind: "blocked_repeated", threshold: 3, windowSeconds: 60, decisions: [] }],
      ["parameters of another kind", { name: "r", kind: "approval_requested", threshold: 3 }],
      ["a spike factor below 1", { name: "r", kind: "volume_spike", windowSeconds: 60, factor: 0.5 }],
      [
        "a baseline longer than a week",
        { name: "r", kind: "volume_spike", windowSeconds: 86_400, baselineWindows: 10 },
      ],
      ["an unknown kind", { name: "r", kind: "cpu_hot" }],
    ])("refuses %s and stores nothing", async (_label, body) => {
      const before = await cp.db.alertRule.count();
      expectProblem(await api("POST", "/api/v1/alert-rules", { body }), 400, "invalid_request");
      expect(await cp.db.alertRule.count()).toBe(before);
    });

    it("creates with defaults, reads, replaces and deletes, auditing each change", async () => {
      const created = await api("POST", "/api/v1/alert-rules", {
        body: { name: "spikes", kind: "volume_spike", windowSeconds: 60 },
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        kind: "volume_spike",
        windowSeconds: 60,
        baselineWindows: 6,
        factor: 3,
        minCount: 20,
      });
      const { id } = created.body;
      expect((await api("GET", `/api/v1/alert-rules/${id}`)).body).toEqual(created.body);
      const replaced = await api("PUT", `/api/v1/alert-rules/${id}`, {
        body: { name: "spikes", kind: "volume_spike", windowSeconds: 120, enabled: false },
      });
      expect(replaced.body).toMatchObject({ windowSeconds: 120, enabled: false });
      expectProblem(
        await api("PUT", `/api/v1/alert-rules/${id}`, { body: { name: "spikes", kind: "approval_requested" } }),
        400,
        "invalid_request",
      );
      expect((await api("DELETE", `/api/v1/alert-rules/${id}`)).status).toBe(204);
      const actions = await cp.db.adminAuditLog.findMany({ where: { targetId: id }, orderBy: { id: "asc" } });
      expect(actions.map((entry) => entry.action)).toEqual([
        "alert_rule.create",
        "alert_rule.update",
        "alert_rule.delete",
      ]);
    });
  });

  describe("delivery", () => {
    it("delivers signed session events a receiver can verify, without prompt or response bodies", async () => {
      const secret = generateSecret("test_secret_");
      const { body: exporter } = await api("POST", "/api/v1/exporters", {
        body: webhook({ types: ["session"], decisions: ["masked"], secret }),
      });
      const masked = record({
        decision: "masked",
        subject: { id: "sig-user", groups: [], authMethod: "api_key", tokenId: "k9" },
      });
      const allowed = record({ subject: { id: "sig-user", groups: [], authMethod: "api_key" } });
      await producer.enqueue(allowed);
      await producer.enqueue(masked);
      await until(() => receiver.verified(secret).some((event) => event.session?.id === masked.sessionId));
      await until(stored(allowed.sessionId));

      const request = receiver.requests.find((candidate) => candidate.body.includes(masked.sessionId)) as Received;
      expect(request.headers["content-type"]).toBe("application/json");
      expect(request.headers["x-modelgate-event-id"]).toBe(`session.${masked.sessionId}`);
      expect(request.headers["x-modelgate-event-type"]).toBe("session");
      const event = parse(request);
      expect(event).toEqual({
        version: 1,
        id: `session.${masked.sessionId}`,
        type: "session",
        time: masked.finishedAt,
        source: "modelgate",
        session: expect.objectContaining({
          id: masked.sessionId,
          receivedAt: masked.receivedAt,
          subject: { id: "sig-user", email: null, groups: [], authMethod: "api_key", tokenId: "k9", issuer: null },
          connection: "llama",
          model: "llama-3.1-8b-instruct",
          decision: "masked",
          policyIds: masked.policyIds,
          reason: null,
          responseStatus: 200,
          maskedCounts: { email: 1 },
          request: { bytes: 24, truncated: false },
          response: { bytes: 17, truncated: false },
        }),
      });
      expect(request.body).not.toContain("TOP-SECRET");
      // The decision filter: the allowed session was stored but not sent here.
      expect(receiver.requests.some((candidate) => candidate.body.includes(allowed.sessionId))).toBe(false);
      // A tampered body, a wrong secret or a stale timestamp does not verify.
      expect(verifySignature({ ...request, body: request.body.replace("masked", "allowed") }, secret)).toBe(false);
      expect(verifySignature(request, `${secret}x`)).toBe(false);
      expect(verifySignature(request, secret, Math.floor(Date.now() / 1000) + 3600)).toBe(false);

      await until(async () => (await api("GET", `/api/v1/exporters/${exporter.id}`)).body.delivery.delivered === 1);
      await api("DELETE", `/api/v1/exporters/${exporter.id}`);
    });

    it("retries a receiver that answers 500 until it answers 200, with the same event id", async () => {
      const secret = generateSecret("test_secret_");
      const { body: exporter } = await api("POST", "/api/v1/exporters", {
        body: webhook({ types: ["session"], decisions: ["rate_limited"], secret }),
      });
      receiver.plan.push(500, 500);
      const item = record({ decision: "rate_limited", subject: { id: "retry-user", groups: [], authMethod: "oidc" } });
      await producer.enqueue(item);
      await until(() => receiver.verified(secret).some((event) => event.session?.id === item.sessionId));
      const attempts = receiver.requests.filter((request) => request.body.includes(item.sessionId));
      expect(attempts.map((request) => request.status)).toEqual([500, 500, 200]);
      expect(new Set(attempts.map((request) => request.headers["x-modelgate-event-id"]))).toEqual(
        new Set([`session.${item.sessionId}`]),
      );
      await until(async () => (await api("GET", `/api/v1/exporters/${exporter.id}`)).body.delivery.delivered === 1);
      const { body } = await api("GET", `/api/v1/exporters/${exporter.id}`);
      expect(body.delivery).toMatchObject({
        delivered: 1,
        failed: 2,
        lastError: "the receiver answered HTTP 500",
        lastSuccessAt: expect.any(String),
        lastFailureAt: expect.any(String),
      });
      await api("DELETE", `/api/v1/exporters/${exporter.id}`);
    });

    it("a dead exporter neither stops sessions from being stored nor the other exporters", async () => {
      const secret = generateSecret("test_secret_");
      const { body: dead } = await api("POST", "/api/v1/exporters", {
        body: webhook({ url: `http://127.0.0.1:${await deadPort()}/in`, types: ["session"], decisions: ["error"] }),
      });
      const { body: live } = await api("POST", "/api/v1/exporters", {
        body: webhook({ types: ["session"], decisions: ["error"], secret }),
      });
      const burst = Array.from({ length: 5 }, () =>
        record({ decision: "error", subject: { id: "dead-user", groups: [], authMethod: "oidc" } }),
      );
      for (const item of burst) await producer.enqueue(item);
      for (const item of burst) await until(stored(item.sessionId));
      await until(() =>
        burst.every((item) => receiver.verified(secret).some((event) => event.session?.id === item.sessionId)),
      );
      await until(async () => (await api("GET", `/api/v1/exporters/${dead.id}`)).body.delivery.failed >= 5);
      const { body } = await api("GET", `/api/v1/exporters/${dead.id}`);
      expect(body.delivery).toMatchObject({ delivered: 0, lastError: expect.stringContaining("ECONNREFUSED") });
      expect((await api("POST", `/api/v1/exporters/${dead.id}/test`)).body).toMatchObject({ delivered: false });
      const test = await api("POST", `/api/v1/exporters/${live.id}/test`);
      expect(test.body).toEqual({ delivered: true, eventId: expect.stringMatching(/^test\./), error: null });
      expect(receiver.verified(secret).some((event) => event.id === test.body.eventId)).toBe(true);
      // Deleting the dead exporter drops its queued retries.
      await api("DELETE", `/api/v1/exporters/${dead.id}`);
      await api("DELETE", `/api/v1/exporters/${live.id}`);
    });

    it("sends RFC 5424 messages over TCP with octet-counting framing", async () => {
      const frames: string[] = [];
      const syslog: TcpServer = createTcpServer((socket) => {
        let buffer = Buffer.alloc(0);
        socket.on("data", (chunk: Buffer) => {
          buffer = Buffer.concat([buffer, chunk]);
          // RFC 6587 octet counting: "<length> <message>", length in bytes.
          for (;;) {
            const space = buffer.indexOf(0x20);
            if (space < 0) break;
            const length = Number(buffer.subarray(0, space).toString("ascii"));
            if (buffer.length < space + 1 + length) break;
            frames.push(buffer.subarray(space + 1, space + 1 + length).toString("utf8"));
            buffer = buffer.subarray(space + 1 + length);
          }
        });
      });
      syslog.listen(0, "127.0.0.1");
      await once(syslog, "listening");
      const { port } = syslog.address() as AddressInfo;
      const { body: exporter } = await api("POST", "/api/v1/exporters", {
        body: {
          name: "syslog-main",
          kind: "syslog",
          host: "127.0.0.1",
          port,
          types: ["session"],
          decisions: ["blocked"],
        },
      });
      expect(exporter).toMatchObject({ kind: "syslog", host: "127.0.0.1", port, tls: false, facility: 13 });
      expect(exporter).not.toHaveProperty("secret");
      // A multi-byte character: the frame length counts bytes, not characters.
      const item = record({
        decision: "blocked",
        reason: "règle: export",
        subject: { id: "sys-user", groups: [], authMethod: "oidc" },
        promptRule: { policyId: "01900000-0000-7000-8000-000000000001", rule: 2, field: "documents.0.text" },
      });
      await producer.enqueue(item);
      await until(() => frames.some((frame) => frame.includes(item.sessionId)));
      const frame = frames.find((candidate) => candidate.includes(item.sessionId)) as string;
      const match = /^<(\d+)>1 (\S+) (\S+) modelgate (\S+) session - (.*)$/s.exec(frame);
      expect(match).not.toBeNull();
      const [, priority, timestamp, , , message] = match as RegExpExecArray;
      expect(Number(priority)).toBe(13 * 8 + 4); // facility log audit, severity warning
      expect(timestamp).toBe(item.finishedAt);
      const event = JSON.parse(message as string);
      expect(event).toMatchObject({
        version: 1,
        type: "session",
        session: {
          id: item.sessionId,
          reason: "règle: export",
          // Which rule and which field, so a SIEM can tell what was blocked without the prompt.
          promptRule: { policyId: "01900000-0000-7000-8000-000000000001", rule: 2, field: "documents.0.text" },
        },
      });
      expect(frame).not.toContain("TOP-SECRET");
      await api("DELETE", `/api/v1/exporters/${exporter.id}`);
      await new Promise((resolve) => syslog.close(resolve));
    });
  });

  describe("alerts", () => {
    it("three blocked sessions of one subject within a minute raise exactly one alert, listed and delivered", async () => {
      const secret = generateSecret("test_secret_");
      const { body: exporter } = await api("POST", "/api/v1/exporters", {
        body: webhook({ types: ["alert"], secret }),
      });
      const { body: rule } = await api("POST", "/api/v1/alert-rules", {
        body: { name: "repeated-blocks", kind: "blocked_repeated", threshold: 3, windowSeconds: 60 },
      });
      expect(rule.decisions).toEqual(["blocked", "denied"]);
      const subject = {
        id: "mallory",
        email: "mallory@example.com",
        groups: ["contractors"],
        authMethod: "oidc" as const,
      };
      const blocked = [
        record({ decision: "blocked", subject, reason: "prompt rule: bulk export" }),
        record({ decision: "denied", subject }),
        record({ decision: "blocked", subject }),
        // A fourth within the same minute: the same alert covers it (cooldown), no second one.
        record({ decision: "blocked", subject }),
      ];
      // Another subject's single block and mallory's allowed request do not count.
      const others = [record({ decision: "blocked" }), record({ subject })];
      for (const item of [...blocked, ...others]) await producer.enqueue(item);
      for (const item of [...blocked, ...others]) await until(stored(item.sessionId));

      await until(() => receiver.verified(secret).some((event) => event.type === "alert"));
      const alerts = await api("GET", `/api/v1/alerts?rule=${rule.id}`);
      expect(alerts.status).toBe(200);
      expect(alerts.body.items).toHaveLength(1);
      const [alert] = alerts.body.items;
      expect(alert).toMatchObject({
        ruleId: rule.id,
        ruleName: "repeated-blocks",
        kind: "blocked_repeated",
        subject: "mallory",
        details: { threshold: 3, windowSeconds: 60, decisions: ["blocked", "denied"] },
      });
      expect(alert.sessionIds).toHaveLength(3);
      expect(blocked.map((item) => item.sessionId)).toEqual(expect.arrayContaining(alert.sessionIds));
      expect((await api("GET", `/api/v1/alerts/${alert.id}`)).body).toEqual(alert);
      expect((await api("GET", "/api/v1/alerts?subject=mallory")).body.items).toHaveLength(1);
      expect((await api("GET", "/api/v1/alerts?subject=alice")).body.items).toHaveLength(0);

      const delivered = receiver.verified(secret).filter((event) => event.type === "alert");
      expect(delivered).toHaveLength(1);
      expect(delivered[0]).toEqual({
        version: 1,
        id: `alert.${alert.id}`,
        type: "alert",
        time: alert.createdAt,
        source: "modelgate",
        alert,
      });
      // Alert exporters get no session events.
      expect(receiver.verified(secret).every((event) => event.type === "alert")).toBe(true);
      await api("DELETE", `/api/v1/alert-rules/${rule.id}`);
      await api("DELETE", `/api/v1/exporters/${exporter.id}`);
    });

    it("several control planes evaluating a burst at once raise one alert", async () => {
      const { body: rule } = await api("POST", "/api/v1/alert-rules", {
        body: { name: "burst-blocks", kind: "blocked_repeated", threshold: 3, windowSeconds: 60 },
      });
      // A second control plane's pipeline and audit worker on the same queues.
      const secondPipeline = await startSiemPipeline({
        connection: REDIS_URL,
        db: cp.db,
        secrets: createSecretBox(randomBytes(32)),
        egress,
        logger,
        prefix,
        retry: { baseMs: 50, maxMs: 200 },
      });
      const secondWorker = await startAuditWorker({
        connection: REDIS_URL,
        prefix,
        store: createSessionStore({ db: cp.db }),
        logger,
        onStored: secondPipeline.onStored,
        concurrency: 8,
      });
      try {
        const subject = { id: "eve-burst", groups: [], authMethod: "oidc" as const };
        const burst = Array.from({ length: 12 }, () => record({ decision: "blocked", subject }));
        await Promise.all(burst.map((item) => producer.enqueue(item)));
        for (const item of burst) await until(stored(item.sessionId));
        await until(async () => (await cp.db.alert.count({ where: { ruleId: rule.id } })) >= 1);
        // Give a racing duplicate every chance to appear before counting.
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(await cp.db.alert.count({ where: { ruleId: rule.id } })).toBe(1);
      } finally {
        await secondWorker.close();
        await secondPipeline.close();
        await api("DELETE", `/api/v1/alert-rules/${rule.id}`);
      }
    });

    it("raises one approval_requested alert per new approval, none per session refused for approval", async () => {
      const { body: rule } = await api("POST", "/api/v1/alert-rules", {
        body: { name: "approvals", kind: "approval_requested" },
      });
      const subject = { id: "approver-test", groups: [], authMethod: "oidc" as const };
      // Two refused sessions of one request: the approval they share is what alerts, not each session.
      const asks = [
        record({ decision: "approval_required", subject }),
        record({ decision: "approval_required", subject }),
      ];
      for (const item of asks) await producer.enqueue(item);
      for (const item of asks) await until(stored(item.sessionId));
      const approval = {
        event: "requested" as const,
        id: "5d3c8f0e-9a4b-4c1d-8e2f-3a4b5c6d7e8f",
        subject: { id: "approver-test", email: null },
        connection: "llama",
        model: "llama-3.1-8b-instruct",
        operation: "inference",
        policyId: "01900000-0000-7000-8000-000000000001",
        policyName: "export-review",
        rule: 0,
        reason: "bulk export",
        url: "https://modelgate.example.com/console/approvals/5d3c8f0e-9a4b-4c1d-8e2f-3a4b5c6d7e8f",
        requestedAt: asks[0]?.receivedAt as string,
        expiresAt: new Date(Date.now() + 3600_000).toISOString(),
        decidedAt: null,
        deciders: [],
      };
      const context = { requestSessionId: asks[0]?.sessionId as string };
      // Handed over twice (a retry): still one alert. A decision raises none.
      await pipeline.onApproval(approval, context);
      await pipeline.onApproval(approval, context);
      await pipeline.onApproval({ ...approval, event: "approved", decidedAt: new Date().toISOString() }, context);
      const { body } = await api("GET", `/api/v1/alerts?rule=${rule.id}`);
      expect(body.items).toHaveLength(1);
      expect(body.items[0]).toMatchObject({
        kind: "approval_requested",
        subject: "approver-test",
        sessionIds: [asks[0]?.sessionId],
        details: { approvalId: approval.id, url: approval.url, policyName: "export-review", reason: "bulk export" },
      });
      await api("DELETE", `/api/v1/alert-rules/${rule.id}`);
      // The alerts outlive their rule.
      expect(await cp.db.alert.count({ where: { ruleName: "approvals", ruleId: null } })).toBe(1);
    });

    it("volume_spike: a credential far above its baseline alerts once; a quiet one under minCount never", async () => {
      const { body: rule } = await api("POST", "/api/v1/alert-rules", {
        body: { name: "spike", kind: "volume_spike", windowSeconds: 3600, baselineWindows: 2, factor: 3, minCount: 5 },
      });
      const hour = 3600_000;
      const windowStart = Math.floor(Date.now() / hour) * hour;
      const at = (ms: number) => new Date(ms).toISOString();
      const key = (id: string, receivedAt: number) =>
        record({
          subject: { id, groups: [], authMethod: "api_key" },
          receivedAt: at(receivedAt),
          finishedAt: at(receivedAt + 1),
        });
      // busy-key: 2 requests in each of the two previous windows (baseline 2), then 8 now (>= 3 × 2 and >= 5).
      // quiet-key: 1 request before, 3 now: three times its baseline, but under minCount.
      // The past windows are stored first, as they would be in time.
      const past = [
        ...[1, 2].map((n) => key("busy-key", windowStart - 2 * hour + n)),
        ...[1, 2].map((n) => key("busy-key", windowStart - hour + n)),
        key("quiet-key", windowStart - hour + 5),
      ];
      const now = [
        ...Array.from({ length: 8 }, (_, n) => key("busy-key", windowStart + n)),
        ...[1, 2, 3].map((n) => key("quiet-key", windowStart + n)),
      ];
      for (const item of past) await producer.enqueue(item);
      for (const item of past) await until(stored(item.sessionId));
      for (const item of now) await producer.enqueue(item);
      for (const item of now) await until(stored(item.sessionId));
      await until(async () => (await cp.db.alert.count({ where: { ruleId: rule.id } })) >= 1);
      const { body } = await api("GET", `/api/v1/alerts?rule=${rule.id}`);
      expect(body.items).toHaveLength(1);
      expect(body.items[0]).toMatchObject({
        subject: "busy-key",
        kind: "volume_spike",
        details: { baseline: 2, factor: 3, minCount: 5, windowSeconds: 3600, baselineWindows: 2 },
      });
      expect(body.items[0].details.count).toBeGreaterThanOrEqual(6);
      await api("DELETE", `/api/v1/alert-rules/${rule.id}`);
    });

    it("pages alerts newest first and refuses bad filters", async () => {
      const first = await api("GET", "/api/v1/alerts?limit=2");
      expect(first.body.items).toHaveLength(2);
      const second = await api("GET", `/api/v1/alerts?limit=2&cursor=${first.body.nextCursor}`);
      const all = await api("GET", "/api/v1/alerts?limit=500");
      expect([...first.body.items, ...second.body.items].map((alert: { id: string }) => alert.id)).toEqual(
        all.body.items.slice(0, 4).map((alert: { id: string }) => alert.id),
      );
      const created = all.body.items.map((alert: { createdAt: string }) => alert.createdAt);
      expect([...created].sort().reverse()).toEqual(created);
      expectProblem(await api("GET", "/api/v1/alerts?cursor=bm9wZQ"), 400, "invalid_request");
      expectProblem(await api("GET", "/api/v1/alerts?rule=not-a-uuid"), 400, "invalid_request");
      expectProblem(
        await api("GET", "/api/v1/alerts?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z"),
        400,
        "invalid_request",
      );
      expectProblem(await api("GET", `/api/v1/alerts/${uuidv7()}`), 404, "not_found");
    });
  });
});
