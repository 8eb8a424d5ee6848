// Where SIEM exporters may connect (docs/siem.md, "Where an exporter may
// point"): the admin API refuses non-public destinations in every spelling,
// deliveries check again at connect time (a name rebound to 127.0.0.1 after
// creation, a row stored before the policy), and the test endpoint answers
// every failure alike. Real control-plane apps on one Postgres database,
// real receivers on loopback that count every connection they get, the
// real export worker on Redis. DNS is the one part played by the test: a
// rebinding name server answers differently on each call, which only an
// injected resolver can do on a machine without network.

import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer as createHttpServer, type Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { Writable } from "node:stream";
import { createLogger, generateSecret, uuidv7 } from "@modelgate/core";
import { createDatabaseClient, type Database } from "@modelgate/db";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { Queue } from "bullmq";
import { createApp } from "../src/app.js";
import {
  createExportQueue,
  EXPORT_QUEUE,
  type ExportWorker,
  startExportWorker,
} from "../src/features/exporters/delivery.js";
import { createExportEgress, type ExportEgress, type Resolver } from "../src/features/exporters/egress.js";
import { testEvent } from "../src/features/exporters/events.js";
import { TEST_NOT_DELIVERED } from "../src/features/exporters/service.js";
import { startConfigPublisher } from "../src/gateway-link/publisher.js";
import { createAuthenticator } from "../src/http/auth.js";
import { createSecretBox } from "../src/secret-box.js";
import { apiClient, expectProblem, type RunningControlPlane } from "./harness.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** A public address the rebinding name server hands out first; nothing is ever sent to it. */
const PUBLIC_ADDRESS = "93.184.216.34";

async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Listens on a loopback port; `close` ends the connections still open (a silent server's, a keep-alive). */
async function listening<T extends Server | TcpServer>(
  server: T,
): Promise<T & { port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return Object.assign(server, {
    port: (server.address() as AddressInfo).port,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  });
}

/** Every TCP connection a server accepted: the proof that nothing reached it. */
function countConnections(server: Server | TcpServer): { count: number } {
  const seen = { count: 0 };
  server.on("connection", () => {
    seen.count++;
  });
  return seen;
}

/** A loopback port where nothing listens. */
async function closedPort(): Promise<number> {
  const server = await listening(createTcpServer());
  await server.stop();
  return server.port;
}

/**
 * A name server under the test's control: each name answers from its
 * script, one answer per call (the last one repeats), and records the
 * calls. Names without a script do not resolve.
 */
function scriptedResolver(script: Record<string, (readonly string[])[]>) {
  const calls: string[] = [];
  const resolver: Resolver = async (hostname) => {
    calls.push(hostname);
    const answers = script[hostname];
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    const answer = answers.length > 1 ? (answers.shift() as readonly string[]) : (answers[0] ?? []);
    return answer.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return { resolver, calls };
}

describe("exporter egress policy", () => {
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
  const adminToken = generateSecret("mgadmin_");
  const secrets = createSecretBox(randomBytes(32));
  const servers: { stop(): Promise<void> }[] = [];
  const egresses: ExportEgress[] = [];
  let database: TestDatabase;
  let db: Database;
  let config: Awaited<ReturnType<typeof startConfigPublisher>>;
  let receiver: Awaited<ReturnType<typeof listening<Server>>>;
  let receiverConnections: { count: number };

  /** A control plane API on the shared database whose exporters go through `egress`. */
  async function apiWith(egress: ExportEgress) {
    egresses.push(egress);
    const app = createApp({
      db,
      logger,
      authenticator: createAuthenticator({ adminToken }),
      version: "test",
      config,
      secrets,
      exportEgress: egress,
    });
    const server = await listening(app.listen(0, "127.0.0.1"));
    servers.push(server);
    return apiClient({ url: `http://127.0.0.1:${server.port}`, adminToken } as RunningControlPlane);
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabaseClient({ databaseUrl: database.url, maxConnections: 6 });
    config = await startConfigPublisher({ db, databaseUrl: database.url, logger });
    receiver = await listening(createHttpServer((_req, res) => res.writeHead(200).end()));
    receiverConnections = countConnections(receiver);
    servers.push(receiver);
  });
  afterAll(async () => {
    for (const server of servers) await server.stop();
    for (const egress of egresses) await egress.close();
    await config.close();
    await db.$disconnect();
    await database.drop();
  });

  const webhook = (url: string, overrides: Record<string, unknown> = {}) => ({
    name: `hook-${randomBytes(4).toString("hex")}`,
    kind: "webhook",
    url,
    types: ["session", "alert"],
    timeoutMs: 2000,
    ...overrides,
  });
  const syslog = (host: string, port: number, overrides: Record<string, unknown> = {}) => ({
    name: `sys-${randomBytes(4).toString("hex")}`,
    kind: "syslog",
    host,
    port,
    types: ["alert"],
    timeoutMs: 2000,
    ...overrides,
  });

  describe("with no allowed ranges (the default)", () => {
    let api: Awaited<ReturnType<typeof apiWith>>;
    beforeAll(async () => {
      api = await apiWith(createExportEgress());
    });

    // The receiver's port stands in for any service on the host: loopback in every spelling.
    const port = () => receiver?.port ?? 9;
    it.each([
      ["loopback", () => `http://127.0.0.1:${port()}/in`],
      ["loopback as a hex integer", () => `http://0x7f000001:${port()}/in`],
      ["loopback as a decimal integer", () => `http://2130706433:${port()}/in`],
      ["loopback in short form", () => `http://127.1:${port()}/in`],
      ["loopback in octal", () => `http://0177.0.0.1:${port()}/in`],
      ["loopback in mixed hex", () => `http://0x7f.0.0.1:${port()}/in`],
      ["loopback with a trailing dot", () => `http://127.0.0.1.:${port()}/in`],
      ["a name resolving to loopback", () => `http://localhost:${port()}/in`],
      ["the unspecified address", () => `http://0.0.0.0:${port()}/in`],
      ["the unspecified address as 0", () => `http://0:${port()}/in`],
      ["cloud metadata", () => "http://169.254.169.254/latest/meta-data/iam/security-credentials/"],
      ["cloud metadata in hex", () => "http://0xa9fea9fe/latest/meta-data/"],
      ["a private range", () => "https://10.0.0.5/in"],
      ["another private range", () => "https://172.20.1.1/in"],
      ["a home network", () => "https://192.168.1.1/in"],
      ["carrier-grade NAT", () => "https://100.64.0.1/in"],
      ["multicast", () => "http://224.0.0.1/in"],
      ["broadcast", () => "http://255.255.255.255/in"],
    ])("refuses a webhook to %s, naming the rule, storing nothing", async (_label, url) => {
      const before = await db.exporter.count();
      const answer = await api("POST", "/api/v1/exporters", { body: webhook(url()) });
      expectProblem(answer, 400, "invalid_request");
      expect(answer.body.detail).toMatch(
        /^the exporter's destination is not allowed: .* is in a .* range \(.*\); exporters reach such addresses only inside MODELGATE_EXPORT_ALLOW_CIDRS$/,
      );
      expect(answer.body.errors).toEqual([{ path: "body.url", message: expect.stringContaining("range") }]);
      expect(await db.exporter.count()).toBe(before);
      expect(receiverConnections.count).toBe(0);
    });

    it.each([
      ["loopback", "127.0.0.1"],
      ["loopback as a hex integer", "0x7f000001"],
      ["loopback as a decimal integer", "2130706433"],
      ["IPv6 loopback", "::1"],
      ["IPv4-mapped loopback", "::ffff:7f00:1"],
      ["a name resolving to loopback", "localhost"],
      ["cloud metadata", "169.254.169.254"],
      ["a private range", "10.1.2.3"],
      ["the unspecified address", "0.0.0.0"],
    ])("refuses a syslog target at %s", async (_label, host) => {
      const answer = await api("POST", "/api/v1/exporters", { body: syslog(host, 514) });
      expectProblem(answer, 400, "invalid_request");
      expect(answer.body.errors).toEqual([{ path: "body.host", message: expect.stringContaining("range") }]);
    });

    it("says which address a name resolved to and which rule refused it", async () => {
      const answer = await api("POST", "/api/v1/exporters", { body: webhook("http://localhost/in") });
      expect(answer.body.detail).toBe(
        "the exporter's destination is not allowed: localhost (resolved to 127.0.0.1) is in a loopback range (127.0.0.0/8); exporters reach such addresses only inside MODELGATE_EXPORT_ALLOW_CIDRS",
      );
      // Webhook URLs take host names and IPv4 only (the schema); syslog hosts take IPv6 too.
      const mapped = await api("POST", "/api/v1/exporters", { body: syslog("::ffff:a9fe:a9fe", 514) });
      expect(mapped.body.detail).toContain(
        "::ffff:a9fe:a9fe (IPv4-mapped 169.254.169.254) is in a link-local (cloud metadata) range (169.254.0.0/16)",
      );
    });

    it("accepts a public address, and refuses replacing it with a loopback one, changing nothing", async () => {
      const created = await api("POST", "/api/v1/exporters", { body: webhook(`http://${PUBLIC_ADDRESS}/in`) });
      expect(created.status).toBe(201);
      const replaced = await api("PUT", `/api/v1/exporters/${created.body.id}`, {
        body: webhook(`http://127.0.0.1:${receiver.port}/in`, { name: created.body.name }),
      });
      expectProblem(replaced, 400, "invalid_request");
      expect((await api("GET", `/api/v1/exporters/${created.body.id}`)).body.url).toBe(`http://${PUBLIC_ADDRESS}/in`);
      expect(await db.adminAuditLog.count({ where: { targetId: created.body.id, action: "exporter.update" } })).toBe(0);
      await api("DELETE", `/api/v1/exporters/${created.body.id}`);
    });

    it("refuses at connect time a destination stored before the policy, in the test endpoint and the export worker", async () => {
      const created = await api("POST", "/api/v1/exporters", { body: webhook(`http://${PUBLIC_ADDRESS}/in`) });
      // What an older control plane let an admin store, in several spellings.
      for (const url of [
        `http://[::1]:${receiver.port}/in`,
        `http://[::ffff:7f00:1]:${receiver.port}/in`,
        `http://[64:ff9b::7f00:1]:${receiver.port}/in`,
        `http://0x7f000001:${receiver.port}/in`,
        `http://localhost:${receiver.port}/in`,
        `http://127.0.0.1:${receiver.port}/in`,
      ]) {
        await db.exporter.update({ where: { id: created.body.id }, data: { config: { url, timeoutMs: 2000 } } });
        const test = await api("POST", `/api/v1/exporters/${created.body.id}/test`);
        expect([url, test.body]).toEqual([
          url,
          { delivered: false, eventId: expect.stringMatching(/^test\./), error: TEST_NOT_DELIVERED },
        ]);
      }
      const reasons = logLines.filter((line) => line.includes("test event not delivered") && line.includes("loopback"));
      expect(reasons.length).toBeGreaterThanOrEqual(6);

      const prefix = `mgtest-egress-${randomBytes(4).toString("hex")}`;
      const egress = createExportEgress();
      egresses.push(egress);
      const queue = createExportQueue({ connection: REDIS_URL, prefix });
      const worker: ExportWorker = await startExportWorker({
        connection: REDIS_URL,
        db,
        secrets,
        egress,
        logger,
        prefix,
        retry: { baseMs: 60_000, maxMs: 60_000 },
      });
      try {
        await queue.enqueue(testEvent(uuidv7(), created.body.name, new Date()), [created.body.id]);
        await until(
          async () => (await db.exporter.findUniqueOrThrow({ where: { id: created.body.id } })).failedCount > 0,
        );
        const row = await db.exporter.findUniqueOrThrow({ where: { id: created.body.id } });
        expect(row.lastError).toBe(
          "127.0.0.1 is in a loopback range (127.0.0.0/8); exporters reach such addresses only inside MODELGATE_EXPORT_ALLOW_CIDRS",
        );
        expect(Number(row.deliveredCount)).toBe(0);
      } finally {
        await worker.close();
        await queue.close();
        const inspect = new Queue(EXPORT_QUEUE, { connection: { url: REDIS_URL }, prefix });
        await inspect.obliterate({ force: true });
        await inspect.close();
      }
      expect(receiverConnections.count).toBe(0);
      await api("DELETE", `/api/v1/exporters/${created.body.id}`);
    });
  });

  describe("a name rebound to loopback after it was checked (DNS rebinding)", () => {
    it("refuses the webhook at connect time: the loopback receiver sees no connection", async () => {
      // `localhost` itself: a check that let the system resolver pick the
      // address at connect time would reach the receiver.
      const dns = scriptedResolver({ localhost: [[PUBLIC_ADDRESS], ["127.0.0.1"]] });
      const api = await apiWith(createExportEgress({ resolver: dns.resolver }));
      const created = await api("POST", "/api/v1/exporters", { body: webhook(`http://localhost:${receiver.port}/in`) });
      expect(created.status).toBe(201);
      const test = await api("POST", `/api/v1/exporters/${created.body.id}/test`);
      expect(test.body).toMatchObject({ delivered: false, error: TEST_NOT_DELIVERED });
      // Resolved at creation, then again when the socket connected.
      expect(dns.calls).toEqual(["localhost", "localhost"]);
      expect(receiverConnections.count).toBe(0);
      expect(logLines.some((line) => line.includes("localhost (resolved to 127.0.0.1) is in a loopback range"))).toBe(
        true,
      );
      await api("DELETE", `/api/v1/exporters/${created.body.id}`);
    });

    it("refuses the syslog connection the same way", async () => {
      const syslogServer = await listening(createTcpServer((socket) => socket.resume()));
      servers.push(syslogServer);
      const connections = countConnections(syslogServer);
      const dns = scriptedResolver({ localhost: [[PUBLIC_ADDRESS], ["127.0.0.1"]] });
      const api = await apiWith(createExportEgress({ resolver: dns.resolver }));
      const created = await api("POST", "/api/v1/exporters", { body: syslog("localhost", syslogServer.port) });
      expect(created.status).toBe(201);
      const test = await api("POST", `/api/v1/exporters/${created.body.id}/test`);
      expect(test.body).toMatchObject({ delivered: false, error: TEST_NOT_DELIVERED });
      expect(dns.calls).toEqual(["localhost", "localhost"]);
      expect(connections.count).toBe(0);
      await api("DELETE", `/api/v1/exporters/${created.body.id}`);
    });

    it("refuses a name when any one of its addresses is refused", async () => {
      const dns = scriptedResolver({ "siem.example": [[PUBLIC_ADDRESS, "10.0.0.8"]] });
      const api = await apiWith(createExportEgress({ resolver: dns.resolver }));
      const answer = await api("POST", "/api/v1/exporters", { body: webhook("https://siem.example/in") });
      expectProblem(answer, 400, "invalid_request");
      expect(answer.body.detail).toContain("siem.example (resolved to 10.0.0.8) is in a private range (10.0.0.0/8)");
    });

    it("refuses a name that does not resolve, without saying more than that", async () => {
      const api = await apiWith(createExportEgress({ resolver: scriptedResolver({}).resolver }));
      const answer = await api("POST", "/api/v1/exporters", { body: webhook("https://gone.example/in") });
      expectProblem(answer, 400, "invalid_request");
      expect(answer.body.detail).toBe(
        "the exporter's destination could not be checked: gone.example could not be resolved (ENOTFOUND)",
      );
    });
  });

  describe("with loopback allowed (MODELGATE_EXPORT_ALLOW_CIDRS=127.0.0.0/8)", () => {
    let api: Awaited<ReturnType<typeof apiWith>>;
    let dns: ReturnType<typeof scriptedResolver>;
    beforeAll(async () => {
      dns = scriptedResolver({ "siem.example": [["127.0.0.1"]] });
      api = await apiWith(createExportEgress({ allowCidrs: "127.0.0.0/8", resolver: dns.resolver }));
    });

    it("delivers to a loopback receiver, still refusing the ranges not named", async () => {
      const allowed = await listening(createHttpServer((_req, res) => res.writeHead(204).end()));
      servers.push(allowed);
      const connections = countConnections(allowed);
      const created = await api("POST", "/api/v1/exporters", {
        body: webhook(`http://siem.example:${allowed.port}/in`),
      });
      expect(created.status).toBe(201);
      const test = await api("POST", `/api/v1/exporters/${created.body.id}/test`);
      expect(test.body).toEqual({ delivered: true, eventId: expect.stringMatching(/^test\./), error: null });
      expect(connections.count).toBe(1);
      await api("DELETE", `/api/v1/exporters/${created.body.id}`);
      for (const url of ["http://[::1]/in", "http://169.254.169.254/", "http://10.0.0.1/"]) {
        expectProblem(await api("POST", "/api/v1/exporters", { body: webhook(url) }), 400, "invalid_request");
      }
    });

    it("answers every failed test alike: refused address, unknown name, closed port, silence, 500, redirect", async () => {
      const silent = await listening(createTcpServer(() => undefined));
      const failing = await listening(
        createHttpServer((req, res) => res.writeHead(req.url === "/moved" ? 302 : 500, { location: "/in" }).end()),
      );
      servers.push(silent, failing);
      const dead = await closedPort();
      // Stored as an older control plane may have stored them; created on a public address first.
      const destinations: Record<string, Record<string, unknown>> = {
        "refused address": { url: "http://10.0.0.1/in", timeoutMs: 500 },
        "IPv6 loopback, not named": { url: `http://[::1]:${dead}/in`, timeoutMs: 500 },
        "metadata address": { url: "http://169.254.169.254/latest/meta-data/", timeoutMs: 500 },
        "unknown name": { url: "http://gone.example/in", timeoutMs: 500 },
        "closed port": { url: `http://127.0.0.1:${dead}/in`, timeoutMs: 500 },
        "no answer": { url: `http://127.0.0.1:${silent.port}/in`, timeoutMs: 200 },
        "HTTP 500": { url: `http://127.0.0.1:${failing.port}/in`, timeoutMs: 500 },
        redirect: { url: `http://127.0.0.1:${failing.port}/moved`, timeoutMs: 500 },
      };
      const answers: Record<string, unknown> = {};
      for (const [label, config] of Object.entries(destinations)) {
        const created = await api("POST", "/api/v1/exporters", { body: webhook(`http://${PUBLIC_ADDRESS}/in`) });
        await db.exporter.update({ where: { id: created.body.id }, data: { config: config as never } });
        const test = await api("POST", `/api/v1/exporters/${created.body.id}/test`);
        expect(test.status).toBe(200);
        answers[label] = {
          ...test.body,
          eventId: typeof test.body.eventId,
          headers: test.headers.get("content-length"),
        };
        await api("DELETE", `/api/v1/exporters/${created.body.id}`);
      }
      const sysDead = await api("POST", "/api/v1/exporters", { body: syslog("127.0.0.1", dead, { timeoutMs: 500 }) });
      const sysTest = await api("POST", `/api/v1/exporters/${sysDead.body.id}/test`);
      answers["syslog closed port"] = {
        ...sysTest.body,
        eventId: typeof sysTest.body.eventId,
        headers: sysTest.headers.get("content-length"),
      };
      const expected = answers["refused address"];
      expect(expected).toMatchObject({ delivered: false, error: TEST_NOT_DELIVERED });
      for (const [label, answer] of Object.entries(answers)) expect([label, answer]).toEqual([label, expected]);
      // The reasons are in the log, for the operator.
      for (const reason of [
        "private range",
        "ENOTFOUND",
        "ECONNREFUSED",
        "no answer within 200 ms",
        "HTTP 500",
        "HTTP 302",
      ]) {
        expect([
          reason,
          logLines.some((line) => line.includes("test event not delivered") && line.includes(reason)),
        ]).toEqual([reason, true]);
      }
    });
  });
});
