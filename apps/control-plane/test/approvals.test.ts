// Just-in-time approvals, control-plane side, end to end: a real control
// plane (server.ts) on its own database, real OIDC tokens from the test IdP
// for the people who ask and decide, real gRPC calls with the gateway token
// for what a gateway does (RequestApproval, ConsumeApproval, the Subscribe
// stream), Redis for the BullMQ expiry jobs and the export queue, and a
// webhook receiver on loopback for the events.
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { createLogger, generateSecret, uuidv7 } from "@modelgate/core";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import {
  type ApprovalMessage,
  type ApprovalRequestInput,
  type ApprovalTicket,
  type ConfigUpdate,
  type GatewayConfigClient,
  type GatewayReportInput,
  loadConfigProto,
} from "@modelgate/protocol";
import { Queue } from "bullmq";
import { APPROVAL_EXPIRY_QUEUE, expiryJobId } from "../src/features/approvals/expiry.js";
import { type ControlPlaneOptions, type RunningControlPlane, startControlPlane } from "../src/server.js";
import { type ApiResponse, expectProblem } from "./harness.js";

const REDIS_URL = process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379";
const AUDIENCE = "https://modelgate.test/api";
const GATEWAY_TOKEN = generateSecret("mggateway_");
const ADMIN_TOKEN = generateSecret("mgadmin_");
const MINUTE = 60_000;

// biome-ignore lint/suspicious/noExplicitAny: tests assert on parsed JSON of many shapes
type Json = any;

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** The gateway's subject key (apps/gateway/src/identity.ts). */
const subjectKeyOf = (authMethod: string, issuer: string, id: string) =>
  createHash("sha256").update(`${authMethod}\n${issuer}\n${id}`).digest("base64url").slice(0, 22);

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

function api(baseUrl: string) {
  return async (method: string, path: string, options: { token?: string; body?: unknown } = {}) => {
    const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? ADMIN_TOKEN}` };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined, text };
  };
}

/** What a gateway does with the control plane: the two approval calls and the configuration stream. */
function gatewayLink(address: string) {
  const { GatewayConfig } = loadConfigProto().modelgate.config.v1;
  const client = new GatewayConfig(address, grpc.credentials.createInsecure()) as GatewayConfigClient;
  const metadata = (token: string) => {
    const value = new grpc.Metadata();
    value.set("authorization", `Bearer ${token}`);
    return value;
  };
  const streams: grpc.ClientDuplexStream<GatewayReportInput, ConfigUpdate>[] = [];
  return {
    request: (message: ApprovalRequestInput, token = GATEWAY_TOKEN) =>
      new Promise<ApprovalTicket>((resolve, reject) =>
        client.requestApproval(message, metadata(token), (error, ticket) =>
          error || !ticket ? reject(error) : resolve(ticket),
        ),
      ),
    consume: (message: { approvalId: string; sessionId: string; subjectKey: string; bodySha256: string }) =>
      new Promise<boolean>((resolve, reject) =>
        client.consumeApproval(message, metadata(GATEWAY_TOKEN), (error, result) =>
          error || !result ? reject(error) : resolve(result.granted),
        ),
      ),
    /** A Subscribe stream from nothing: a snapshot first, then every delta. */
    subscribe() {
      const call = client.subscribe(metadata(GATEWAY_TOKEN));
      streams.push(call);
      const received: ConfigUpdate[] = [];
      call.on("data", (update: ConfigUpdate) => received.push(update));
      call.on("error", () => undefined);
      call.write({ hello: { gatewayId: "approvals-test", version: "test", publicUrl: "", epoch: "", revision: 0 } });
      return {
        received,
        snapshot: () => until(() => received.find((update) => update.snapshot)?.snapshot ?? undefined),
        /** The newest state of an approval that deltas carried, once one did. */
        approval: (id: string, where: (approval: ApprovalMessage) => boolean = () => true, timeoutMs?: number) =>
          until(
            () =>
              received
                .flatMap((update) => update.delta?.approvals ?? [])
                .filter((approval) => approval.id === id)
                .findLast(where),
            timeoutMs,
          ),
        deltaApprovalIds: () => received.flatMap((update) => update.delta?.approvals ?? []).map(({ id }) => id),
      };
    },
    close() {
      for (const call of streams) call.cancel();
      client.close();
    },
  };
}

interface Person {
  id: string;
  email: string;
  groups: string[];
  token: string;
}

const POLICY = {
  subjects: { groups: ["research", "security"] },
  resources: [{ connection: "llama" }, { connection: "mistral" }],
  operations: ["inference"],
};

/** A policy whose first rule blocks and second holds for approval. */
const ruleReview = (name: string, approval: Record<string, unknown> = {}) => ({
  ...POLICY,
  name,
  promptRules: [
    { pattern: "drop table", action: "block" },
    { pattern: "export all", flags: "i", action: "require_approval", description: "bulk export" },
  ],
  approval: { approverGroups: ["security"], expiresMinutes: 60, ...approval },
});

async function startWebhookReceiver() {
  const events: Json[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      events.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      res.writeHead(200).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    events,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe("approvals", () => {
  const prefix = `mgtest-approvals-${randomBytes(4).toString("hex")}`;
  let idp: TestIdentityProvider;
  let database: TestDatabase;
  let cp: RunningControlPlane;
  let call: ReturnType<typeof api>;
  let gateway: ReturnType<typeof gatewayLink>;
  let stream: ReturnType<ReturnType<typeof gatewayLink>["subscribe"]>;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  const people: Record<string, Person> = {};
  /** Policy ids by name. */
  const policies: Record<string, string> = {};
  let sessionCount = 0;

  const person = async (id: string, groups: string[], email = `${id}@example.com`) => {
    people[id] = { id, email, groups, token: await idp.mintAccessToken({ subject: id, email, groups }) };
  };

  /** What a gateway sends for `who`'s request with `prompt` under a policy's rule (rule 1: the require_approval rule). */
  function ask(
    who: { id: string; email?: string | undefined; groups?: string[]; authMethod?: "oidc" | "api_key" },
    policy: string,
    prompt = "export all customer records",
    overrides: Partial<ApprovalRequestInput> = {},
  ): ApprovalRequestInput {
    const authMethod = who.authMethod ?? "oidc";
    const issuer = authMethod === "oidc" ? idp.issuer : "";
    const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: prompt }] });
    sessionCount += 1;
    return {
      gatewayId: "gw-1",
      sessionId: uuidv7(),
      subject: {
        key: subjectKeyOf(authMethod, issuer, who.id),
        id: who.id,
        email: who.email ?? "",
        groups: who.groups ?? ["research"],
        authMethod,
        issuer,
      },
      connection: "llama",
      model: "m",
      operation: "inference",
      policyId: policies[policy] as string,
      rule: 1,
      field: "messages.0.content",
      reason: `the prompt needs approval under rule "bulk export" (request ${sessionCount})`,
      bodySha256: sha256(body),
      prompt,
      promptTruncated: false,
      ...overrides,
    };
  }

  const open = async (request: ApprovalRequestInput) => {
    const ticket = await gateway.request(request);
    expect(ticket.outcome).toBe("APPROVAL_OUTCOME_PENDING");
    return ticket;
  };

  const decide = (id: string, decision: "approve" | "deny", who: Person | "admin", comment?: string) =>
    call("POST", `/approvals/${id}/${decision}`, {
      token: who === "admin" ? ADMIN_TOKEN : who.token,
      body: comment === undefined ? {} : { comment },
    });

  const createPolicy = async (body: Record<string, unknown>) => {
    const created = await call("POST", "/policies", { body });
    expect(created.status).toBe(201);
    policies[body.name as string] = created.body.id;
    return created.body.id as string;
  };

  beforeAll(async () => {
    idp = await startTestIdentityProvider({ audience: AUDIENCE });
    database = await createTestDatabase();
    cp = await startControlPlane({
      host: "127.0.0.1",
      port: 0,
      ops: { host: "127.0.0.1", port: 0 },
      processMetrics: false,
      grpc: { host: "127.0.0.1", port: 0 },
      databaseUrl: database.url,
      dbPoolSize: 6,
      redisUrl: REDIS_URL,
      auditQueuePrefix: prefix,
      adminToken: ADMIN_TOKEN,
      oidc: {
        verifier: {
          issuers: [{ issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" }],
          allowInsecureRequests: true,
        },
        roleGroups: { admin: ["mg-admins"], auditor: ["mg-auditors"], approver: ["mg-approvers"] },
      },
      gatewayToken: GATEWAY_TOKEN,
      exportAllowCidrs: ["127.0.0.0/8"],
      // Only the BullMQ jobs expire approvals here: the sweep runs at start, then not within a test's time.
      approvals: { maxPendingPerSubject: 3, sweepIntervalMs: 3_600_000 },
      version: "test",
      logger: quietLogger().logger,
    });
    call = api(cp.url);
    gateway = gatewayLink(cp.grpcAddress);
    receiver = await startWebhookReceiver();
    await Promise.all([
      person("researcher", ["research"]),
      person("sec-1", ["security"]),
      person("sec-2", ["security"], "Sec.Two@Example.com"),
      person("outsider", ["marketing"]),
      person("auditor", ["mg-auditors"]),
      person("approver", ["mg-approvers"]),
      // Another account of the researcher's, in the security group: the same email in another case.
      person("researcher-alt", ["security"], "RESEARCHER@example.com"),
    ]);
    // Everything an exporter subscribed to approvals receives, from the first approval on.
    const exporter = await call("POST", "/exporters", {
      body: {
        name: "approvals-hook",
        kind: "webhook",
        url: receiver.url,
        types: ["approval", "alert"],
        secret: generateSecret("test_secret_"),
      },
    });
    expect(exporter.status).toBe(201);
    expect(
      (await call("POST", "/alert-rules", { body: { name: "new-approvals", kind: "approval_requested" } })).status,
    ).toBe(201);
    await createPolicy(ruleReview("export-review"));
    await createPolicy({
      ...POLICY,
      name: "two-person",
      approval: {
        required: true,
        approverGroups: ["security"],
        minApprovals: 2,
        grant: "window",
        windowMinutes: 15,
        expiresMinutes: 30,
      },
    });
    await createPolicy({ ...POLICY, name: "no-approval" });
    stream = gateway.subscribe();
  });

  afterAll(async () => {
    gateway?.close();
    await cp?.close();
    for (const name of [APPROVAL_EXPIRY_QUEUE, "modelgate-export", "modelgate-audit"]) {
      const queue = new Queue(name, { connection: { url: REDIS_URL }, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
    await receiver?.close();
    await database?.drop();
    await idp?.close();
  });

  describe("RequestApproval", () => {
    it("opens an approval with the current policy's settings, an unguessable id and the approver's URL", async () => {
      const before = Date.now();
      const request = ask(people.researcher as Person, "export-review");
      const ticket = await open(request);
      expect(ticket.created).toBe(true);
      // Version 4: random, unlike the time-ordered ids elsewhere.
      expect(ticket.approvalId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(ticket.url).toBe(`${cp.url}/api/v1/approvals/${ticket.approvalId}`);
      expect(ticket.expiresAt).toBeGreaterThanOrEqual(before + 60 * MINUTE);
      expect(ticket.expiresAt).toBeLessThanOrEqual(Date.now() + 60 * MINUTE);
      const row = await cp.db.approval.findUniqueOrThrow({ where: { id: ticket.approvalId } });
      expect(row).toMatchObject({
        status: "pending",
        subjectId: "researcher",
        subjectKey: request.subject?.key,
        issuer: idp.issuer,
        apiKeyId: null,
        policyId: policies["export-review"],
        policyName: "export-review",
        rule: 1,
        field: "messages.0.content",
        bodySha256: request.bodySha256,
        prompt: "export all customer records",
        approverGroups: ["security"],
        minApprovals: 1,
        grantKind: "request",
        windowMinutes: null,
        requestSessionId: request.sessionId,
        gatewayId: "gw-1",
      });
      expect(row.expiresAt.getTime()).toBe(Number(ticket.expiresAt));
    });

    it("gives identical requests while pending the same approval, and a different body its own", async () => {
      const first = await open(ask({ id: "dedupe-user" }, "export-review", "export all invoices"));
      // Another session of the same request: same subject, target, rule and body.
      const again = await open(ask({ id: "dedupe-user" }, "export-review", "export all invoices"));
      expect(again).toEqual({ ...first, created: false });
      const other = await open(ask({ id: "dedupe-user" }, "export-review", "export all payroll"));
      expect(other.approvalId).not.toBe(first.approvalId);
      // The same body from another subject is another approval.
      const otherSubject = await open(ask({ id: "dedupe-user-2" }, "export-review", "export all invoices"));
      expect(otherSubject.approvalId).not.toBe(first.approvalId);
      expect(await cp.db.approval.count({ where: { subjectId: "dedupe-user" } })).toBe(2);
    });

    it("caps the pending approvals of one subject, also when its requests race", async () => {
      const who = { id: "busy-user" };
      const tickets = await Promise.all(
        Array.from({ length: 6 }, (_, index) =>
          gateway.request(ask(who, "export-review", `export all table ${index}`)),
        ),
      );
      const outcomes = tickets.map((ticket) => ticket.outcome).sort();
      expect(outcomes).toEqual([
        ...Array(3).fill("APPROVAL_OUTCOME_PENDING"),
        ...Array(3).fill("APPROVAL_OUTCOME_TOO_MANY_PENDING"),
      ]);
      expect(await cp.db.approval.count({ where: { subjectId: "busy-user", status: "pending" } })).toBe(3);
      const refused = tickets.find((ticket) => ticket.outcome === "APPROVAL_OUTCOME_TOO_MANY_PENDING");
      expect(refused).toMatchObject({ approvalId: "", url: "", created: false });
      // An identical request still joins its pending approval at the cap.
      const pending = await cp.db.approval.findFirstOrThrow({ where: { subjectId: "busy-user" } });
      const joined = await gateway.request(ask(who, "export-review", pending.prompt));
      expect(joined).toMatchObject({ outcome: "APPROVAL_OUTCOME_PENDING", approvalId: pending.id, created: false });
    });

    it("answers POLICY_CHANGED, storing nothing, when the policy no longer asks for this approval", async () => {
      const before = await cp.db.approval.count();
      const changed = [
        ask({ id: "pc" }, "export-review", "export all x", { policyId: "0b0e8a3c-1d2e-4f00-8a00-000000000000" }),
        // Rule 0 blocks: it never holds for approval.
        ask({ id: "pc" }, "export-review", "export all x", { rule: 0 }),
        ask({ id: "pc" }, "export-review", "export all x", { rule: 7 }),
        // The grant itself needs no approval under this policy.
        ask({ id: "pc" }, "export-review", "export all x", { rule: -1 }),
        ask({ id: "pc" }, "no-approval", "export all x", { rule: -1 }),
      ];
      for (const request of changed) {
        expect(await gateway.request(request)).toMatchObject({ outcome: "APPROVAL_OUTCOME_POLICY_CHANGED" });
      }
      const disabled = await createPolicy({ ...ruleReview("soon-disabled"), enabled: false });
      expect(disabled).toEqual(expect.any(String));
      expect(await gateway.request(ask({ id: "pc" }, "soon-disabled"))).toMatchObject({
        outcome: "APPROVAL_OUTCOME_POLICY_CHANGED",
      });
      expect(await cp.db.approval.count()).toBe(before);
    });

    it("refuses a request out of bounds with INVALID_ARGUMENT, and a wrong gateway token, storing nothing", async () => {
      const before = await cp.db.approval.count();
      const valid = ask({ id: "bounds-user" }, "export-review");
      const bad: Partial<ApprovalRequestInput>[] = [
        { sessionId: "not-a-uuid" },
        { bodySha256: "ABC" },
        { bodySha256: "g".repeat(64) },
        { prompt: "x".repeat(16 * 1024 + 1) },
        { prompt: "nul \u0000 inside" },
        { reason: "line\nbreak" },
        { reason: "" },
        { connection: "Not A Name" },
        { model: "m".repeat(257) },
        { operation: "rm -rf" },
        { rule: -2 },
        { policyId: "policy-1" },
        { gatewayId: "" },
        { subject: { ...valid.subject, key: "has space" } },
        { subject: { ...valid.subject, groups: Array(300).fill("g") } },
        { subject: { ...valid.subject, issuer: "" } },
        { subject: { ...valid.subject, authMethod: "api_key", id: "not-a-key-id" } },
        { subject: { ...valid.subject, authMethod: "password" } },
        { subject: null },
      ];
      for (const overrides of bad) {
        const refused = await gateway.request({ ...valid, ...overrides }).catch((error: grpc.ServiceError) => error);
        expect({ overrides, code: (refused as grpc.ServiceError).code }).toEqual({
          overrides,
          code: grpc.status.INVALID_ARGUMENT,
        });
      }
      // The prompt bound is in bytes: 16 KiB of a two-byte character is too much.
      const wide = await gateway.request({ ...valid, prompt: "é".repeat(8 * 1024 + 1) }).catch((error) => error);
      expect((wide as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
      const wrongToken = await gateway.request(valid, generateSecret("mggateway_")).catch((error) => error);
      expect((wrongToken as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
      expect(await cp.db.approval.count()).toBe(before);
      // Exactly at the bound is fine.
      await open({ ...valid, prompt: "é".repeat(8 * 1024) });
    });
  });

  describe("the approvals API", () => {
    it("lists newest first by cursor pages, filtered by status, connection and subject (id or email)", async () => {
      const ids: string[] = [];
      for (const [index, subject] of ["lister-a", "lister-b", "lister-a", "lister-c", "lister-b"].entries()) {
        const ticket = await open(
          ask({ id: subject, email: `${subject}@Example.com` }, "export-review", `export all list ${index}`, {
            connection: index === 3 ? "mistral" : "llama",
          }),
        );
        ids.push(ticket.approvalId);
      }
      const all = await call("GET", "/approvals?limit=500");
      expect(all.status).toBe(200);
      const listed = all.body.items.map((item: Json) => item.id);
      // Newest first: the five just opened lead, in reverse order.
      expect(listed.slice(0, 5)).toEqual([...ids].reverse());
      const times = all.body.items.map((item: Json) => item.requestedAt);
      expect([...times].sort().reverse()).toEqual(times);
      expect(all.body.items[0]).not.toHaveProperty("prompt");

      const pages: string[] = [];
      let cursor: string | null = null;
      do {
        const page: ApiResponse = await call("GET", `/approvals?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        pages.push(...page.body.items.map((item: Json) => item.id));
        cursor = page.body.nextCursor;
      } while (cursor);
      expect(pages).toEqual(listed);

      const bySubject = await call("GET", "/approvals?subject=lister-a");
      expect(bySubject.body.items.map((item: Json) => item.id)).toEqual([ids[2], ids[0]]);
      const byEmail = await call("GET", `/approvals?subject=${encodeURIComponent("LISTER-B@example.com")}`);
      expect(byEmail.body.items.map((item: Json) => item.id)).toEqual([ids[4], ids[1]]);
      const byConnection = await call("GET", "/approvals?connection=mistral");
      expect(byConnection.body.items.map((item: Json) => item.id)).toEqual([ids[3]]);
      const pendingOfC = await call("GET", "/approvals?status=pending&subject=lister-c");
      expect(pendingOfC.body.items.map((item: Json) => item.id)).toEqual([ids[3]]);
      expect((await call("GET", "/approvals?status=denied&subject=lister-c")).body.items).toEqual([]);

      expectProblem(await call("GET", "/approvals?cursor=bm9wZQ"), 400, "invalid_request");
      expectProblem(await call("GET", "/approvals?status=maybe"), 400, "invalid_request");
      expectProblem(await call("GET", "/approvals?limit=501"), 400, "invalid_request");
    });

    it("shows an approval to the roles that see all and to its approver groups, and to no one else", async () => {
      const ticket = await open(ask({ id: "visible-user" }, "export-review", "export all visible"));
      const path = `/approvals/${ticket.approvalId}`;
      for (const who of ["sec-1", "auditor", "approver"]) {
        const got = await call("GET", path, { token: people[who]?.token });
        expect({ who, status: got.status }).toEqual({ who, status: 200 });
      }
      const got = await call("GET", path);
      expect(got.body).toMatchObject({
        id: ticket.approvalId,
        status: "pending",
        subject: { id: "visible-user", authMethod: "oidc", issuer: idp.issuer },
        connection: "llama",
        model: "m",
        operation: "inference",
        policy: { id: policies["export-review"], name: "export-review" },
        rule: 1,
        field: "messages.0.content",
        prompt: "export all visible",
        promptTruncated: false,
        decidedAt: null,
        grant: { kind: "request", windowMinutes: null, grantExpiresAt: null, usedAt: null, inForce: false },
        minApprovals: 1,
        approverGroups: ["security"],
        votes: [],
        url: ticket.url,
      });
      // A person in none of its groups and no role: as if it did not exist.
      const outsider = people.outsider as Person;
      expectProblem(await call("GET", path, { token: outsider.token }), 404, "not_found");
      const listedToOutsider = await call("GET", "/approvals?limit=500", { token: outsider.token });
      expect(listedToOutsider.status).toBe(200);
      expect(listedToOutsider.body.items).toEqual([]);
      const listedToSecurity = await call("GET", "/approvals?limit=500", { token: people["sec-1"]?.token });
      expect(listedToSecurity.body.items.map((item: Json) => item.id)).toContain(ticket.approvalId);
      // Other routes stay closed to a person without a role.
      expectProblem(await call("GET", "/policies", { token: people["sec-1"]?.token }), 403, "forbidden");
    });

    it("lets a member of the approver groups approve once; the admin token, auditors and the requester cannot", async () => {
      const researcher = people.researcher as Person;
      const request = ask(researcher, "export-review", "export all customer emails");
      const ticket = await open(request);
      const { approvalId: id } = ticket;

      const byAdminToken = await decide(id, "approve", "admin");
      expectProblem(byAdminToken, 403, "forbidden");
      expect(byAdminToken.body.detail).toMatch(/named people/);
      // An auditor sees it, but is neither in its groups nor an approver.
      expectProblem(await decide(id, "approve", people.auditor as Person), 403, "forbidden");
      expectProblem(await decide(id, "approve", people.outsider as Person), 404, "not_found");
      // The researcher asked; the same person under another account (same email) is refused too.
      expectProblem(await decide(id, "approve", researcher), 404, "not_found");
      const alt = await decide(id, "approve", people["researcher-alt"] as Person);
      expectProblem(alt, 403, "self_approval");
      expect(await cp.db.approvalVote.count({ where: { approvalId: id } })).toBe(0);

      const approvedAt = Date.now();
      const approved = await decide(id, "approve", people["sec-1"] as Person, "ticket SEC-42");
      expect(approved.status).toBe(200);
      expect(approved.body).toMatchObject({
        status: "approved",
        votes: [{ approverId: "sec-1", email: "sec-1@example.com", decision: "approve", comment: "ticket SEC-42" }],
        grant: { kind: "request", usedAt: null, voidedAt: null, inForce: true },
      });
      // A request grant waits for its request as long as the approval could wait (expiresMinutes).
      const grantEnds = Date.parse(approved.body.grant.grantExpiresAt);
      expect(grantEnds).toBeGreaterThanOrEqual(approvedAt + 60 * MINUTE);
      expect(grantEnds).toBeLessThanOrEqual(Date.now() + 60 * MINUTE);

      expectProblem(await decide(id, "approve", people["sec-2"] as Person), 409, "already_decided");
      expectProblem(await decide(id, "deny", people["sec-2"] as Person), 409, "already_decided");
      const audit = await cp.db.adminAuditLog.findMany({ where: { targetId: id } });
      expect(audit.map((entry) => ({ action: entry.action, actor: entry.actor, actorType: entry.actorType }))).toEqual([
        { action: "approval.approve", actor: "sec-1", actorType: "oidc" },
      ]);
      expect(audit[0]?.after).toMatchObject({ status: "approved", votes: [{ approverId: "sec-1" }] });
      expect(JSON.stringify(audit.map((entry) => [entry.before, entry.after]))).not.toContain("customer emails");

      // The delta that lets gateways admit the identical request.
      const message = await stream.approval(id, (approval) => approval.status === "approved", 1_000);
      expect(message).toEqual({
        id,
        status: "approved",
        inForce: true,
        subjectKey: request.subject?.key,
        connection: "llama",
        model: "m",
        operation: "inference",
        policyId: policies["export-review"],
        rule: 1,
        grant: "request",
        bodySha256: request.bodySha256,
        grantExpiresAt: grantEnds,
        decidedAt: Date.parse(approved.body.decidedAt),
        deciders: [
          {
            id: "sec-1",
            email: "sec-1@example.com",
            decision: "approve",
            comment: "ticket SEC-42",
            at: Date.parse(approved.body.votes[0].at),
          },
        ],
      });
    });

    it("refuses the requester's own vote by identity, and lets the approver role decide outside the groups", async () => {
      const requester = people["sec-1"] as Person;
      const { approvalId: id } = await open(ask(requester, "export-review", "export all of sec-1's own"));
      expectProblem(await decide(id, "approve", requester), 403, "self_approval");
      const byRole = await decide(id, "deny", people.approver as Person);
      expect(byRole.body).toMatchObject({ status: "denied", votes: [{ approverId: "approver", decision: "deny" }] });
    });

    it("needs minApprovals distinct people: the same person twice is refused", async () => {
      const request = ask(people.researcher as Person, "two-person", "anything at all", { rule: -1, field: "" });
      const { approvalId: id } = await open(request);
      const first = await decide(id, "approve", people["sec-1"] as Person);
      expect(first.body).toMatchObject({ status: "pending", decidedAt: null, grant: { grantExpiresAt: null } });
      expectProblem(await decide(id, "approve", people["sec-1"] as Person), 409, "already_voted");
      expectProblem(await decide(id, "deny", people["sec-1"] as Person), 409, "already_voted");
      // No decision yet: gateways hear nothing of it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(stream.deltaApprovalIds()).not.toContain(id);

      const approvedAt = Date.now();
      const second = await decide(id, "approve", people["sec-2"] as Person);
      expect(second.body).toMatchObject({
        status: "approved",
        rule: null,
        grant: { kind: "window", windowMinutes: 15, inForce: true },
      });
      expect(second.body.votes.map((vote: Json) => vote.approverId)).toEqual(["sec-1", "sec-2"]);
      const windowEnds = Date.parse(second.body.grant.grantExpiresAt);
      expect(windowEnds).toBeGreaterThanOrEqual(approvedAt + 15 * MINUTE);
      expect(windowEnds).toBeLessThanOrEqual(Date.now() + 15 * MINUTE);
      const message = await stream.approval(id, undefined, 1_000);
      expect(message).toMatchObject({ status: "approved", inForce: true, rule: -1, grant: "window" });
      expect(message.deciders.map((decider) => decider.id)).toEqual(["sec-1", "sec-2"]);
      // A window grant is checked by the gateways, never consumed.
      expect(
        await gateway.consume({
          approvalId: id,
          sessionId: uuidv7(),
          subjectKey: request.subject?.key as string,
          bodySha256: request.bodySha256 as string,
        }),
      ).toBe(false);
    });

    it("decides on one denial, with its comment, and refuses bad comments changing nothing", async () => {
      // Another model: a window grant of an earlier test covers the researcher's requests to "m".
      const { approvalId: id } = await open(
        ask(people.researcher as Person, "two-person", "deny me", { rule: -1, model: "m-denied" }),
      );
      const path = `/approvals/${id}/deny`;
      const token = people["sec-2"]?.token;
      for (const comment of ["line\nbreak", "x".repeat(1025), 42]) {
        expectProblem(await call("POST", path, { token, body: { comment } }), 400, "invalid_request");
      }
      expectProblem(await call("POST", path, { token, body: { comment: "ok", extra: 1 } }), 400, "invalid_request");
      expect(await cp.db.approvalVote.count({ where: { approvalId: id } })).toBe(0);

      const denied = await decide(id, "deny", people["sec-2"] as Person, "not without a ticket");
      expect(denied.body).toMatchObject({
        status: "denied",
        grant: { grantExpiresAt: null, inForce: false },
        votes: [
          { approverId: "sec-2", email: "Sec.Two@Example.com", decision: "deny", comment: "not without a ticket" },
        ],
      });
      expectProblem(await decide(id, "approve", people["sec-1"] as Person), 409, "already_decided");
      const message = await stream.approval(id, undefined, 1_000);
      expect(message).toMatchObject({ status: "denied", inForce: false, grantExpiresAt: 0 });
      expect(message.deciders).toEqual([
        expect.objectContaining({ id: "sec-2", decision: "deny", comment: "not without a ticket" }),
      ]);
    });

    it("expires an approval decided too late on the spot, and answers 409 approval_expired", async () => {
      const { approvalId: id } = await open(ask({ id: "late-user" }, "export-review", "export all late"));
      await cp.db.approval.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
      const late = await decide(id, "approve", people["sec-1"] as Person);
      expectProblem(late, 409, "approval_expired");
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: "expired" });
      expect(await cp.db.approvalVote.count({ where: { approvalId: id } })).toBe(0);
      expectProblem(await decide(id, "deny", people["sec-2"] as Person), 409, "approval_expired");
      expect(await stream.approval(id, undefined, 1_000)).toMatchObject({ status: "expired", inForce: false });
    });

    it("documents every approvals route in the OpenAPI document, with its error codes", async () => {
      const document = (await fetch(`${cp.url}/api/v1/openapi.json`).then((response) => response.json())) as Json;
      expect(Object.keys(document.paths["/api/v1/approvals"])).toEqual(["get"]);
      expect(document.paths["/api/v1/approvals"].get.operationId).toBe("listApprovals");
      expect(document.paths["/api/v1/approvals/{id}"].get.operationId).toBe("getApproval");
      const approve = document.paths["/api/v1/approvals/{id}/approve"].post;
      expect(approve.operationId).toBe("approveApproval");
      expect(document.paths["/api/v1/approvals/{id}/deny"].post.operationId).toBe("denyApproval");
      expect(Object.keys(approve.responses).sort()).toEqual(
        ["200", "400", "401", "403", "404", "409", "413", "415", "500"].sort(),
      );
      expect(approve.responses["409"].description).toMatch(/already_decided.*already_voted.*approval_expired/);
      expect(approve.responses["403"].description).toMatch(/self_approval/);
      const parameters = document.paths["/api/v1/approvals"].get.parameters.map((parameter: Json) => parameter.name);
      expect(parameters.sort()).toEqual(["connection", "cursor", "limit", "status", "subject"]);
    });
  });

  describe("grants on gateways", () => {
    it("admits an approved request exactly once across concurrent ConsumeApproval calls", async () => {
      const request = ask(people.researcher as Person, "export-review", "export all for consumption");
      const { approvalId: id } = await open(request);
      const use = (overrides: Record<string, string> = {}) =>
        gateway.consume({
          approvalId: id,
          sessionId: uuidv7(),
          subjectKey: request.subject?.key as string,
          bodySha256: request.bodySha256 as string,
          ...overrides,
        });
      // Not approved yet.
      expect(await use()).toBe(false);
      expect((await decide(id, "approve", people["sec-1"] as Person)).status).toBe(200);
      // The identical request sent again before the grant's delta reached its gateway is told
      // of the grant, not given a new approval; another body still needs one.
      const again = await gateway.request(request);
      expect(again.outcome).toBe("APPROVAL_OUTCOME_GRANTED");
      expect(again.grant).toMatchObject({ id, status: "approved", inForce: true, grant: "request" });
      expect(again.grant?.deciders.map((decider) => decider.decision)).toEqual(["approve"]);
      const otherBody = await gateway.request({ ...request, bodySha256: sha256("a different body") });
      expect(otherBody).toMatchObject({ outcome: "APPROVAL_OUTCOME_PENDING", created: true });
      // Another body or another subject never uses it.
      expect(await use({ bodySha256: sha256("another body") })).toBe(false);
      expect(await use({ subjectKey: subjectKeyOf("oidc", idp.issuer, "someone-else") })).toBe(false);
      const consumeCall = await gateway
        .consume({ approvalId: "nope", sessionId: uuidv7(), subjectKey: "k", bodySha256: "0".repeat(64) })
        .catch((error: grpc.ServiceError) => error);
      expect((consumeCall as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);

      const results = await Promise.all(Array.from({ length: 12 }, () => use()));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await use()).toBe(false);
      const row = await cp.db.approval.findUniqueOrThrow({ where: { id } });
      expect(row.usedAt).not.toBeNull();
      expect(row.usedSessionId).toMatch(/^[0-9a-f-]{36}$/);
      // Gateways drop the used grant.
      expect(await stream.approval(id, (approval) => !approval.inForce, 1_000)).toMatchObject({
        status: "approved",
        inForce: false,
      });
      expect((await call("GET", `/approvals/${id}`)).body.grant).toMatchObject({
        usedSessionId: row.usedSessionId,
        inForce: false,
      });
    });

    it("sends a new gateway the grants in force, and nothing else", async () => {
      const late = gateway.subscribe();
      const snapshot = await late.snapshot();
      const inForce = await cp.db.approval.findMany({
        where: { status: "approved", voidedAt: null, OR: [{ grantKind: "window" }, { usedAt: null }] },
      });
      expect(inForce.length).toBeGreaterThan(0);
      expect(snapshot.approvals.map((approval) => approval.id).sort()).toEqual(
        inForce.map((approval) => approval.id).sort(),
      );
      expect(snapshot.approvals.every((approval) => approval.inForce && approval.status === "approved")).toBe(true);
      // Pending, denied, expired and used approvals are nowhere in it.
      const others = await cp.db.approval.findMany({ where: { id: { notIn: inForce.map(({ id }) => id) } } });
      expect(others.length).toBeGreaterThan(0);
      const sent = new Set(snapshot.approvals.map(({ id }) => id));
      expect(others.filter(({ id }) => sent.has(id))).toEqual([]);
    });

    it("voids a revoked API key's grants and expires its pending approvals, in the same change", async () => {
      const key = await call("POST", "/api-keys", { body: { name: "batch-job", groups: ["research"] } });
      const service = { id: key.body.id as string, authMethod: "api_key" as const, groups: ["research"] };
      const granted = await open(ask(service, "export-review", "export all nightly"));
      const waiting = await open(ask(service, "export-review", "export all weekly"));
      expect((await decide(granted.approvalId, "approve", people["sec-1"] as Person)).status).toBe(200);
      const grantedRow = await cp.db.approval.findUniqueOrThrow({ where: { id: granted.approvalId } });
      expect(grantedRow.apiKeyId).toBe(service.id);

      expect((await call("DELETE", `/api-keys/${service.id}`)).status).toBe(204);
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id: granted.approvalId } })).toMatchObject({
        status: "approved",
        voidedAt: expect.any(Date),
        voidReason: "the API key was revoked",
      });
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id: waiting.approvalId } })).toMatchObject({
        status: "expired",
        voidReason: "the API key was revoked",
      });
      const change = await cp.db.configChange.findFirstOrThrow({
        where: { entityId: service.id, kind: "api_key" },
        orderBy: { revision: "desc" },
      });
      const sameRevision = await cp.db.configChange.findMany({ where: { revision: change.revision } });
      expect(sameRevision.map((row) => `${row.kind}:${row.entityId}`).sort()).toEqual(
        [`api_key:${service.id}`, `approval:${granted.approvalId}`, `approval:${waiting.approvalId}`].sort(),
      );
      expect(await stream.approval(granted.approvalId, (approval) => !approval.inForce, 1_000)).toMatchObject({
        status: "approved",
        inForce: false,
      });
      expect(await stream.approval(waiting.approvalId, undefined, 1_000)).toMatchObject({ status: "expired" });
      // A gateway that has not heard of the revocation yet opens nothing for the key.
      expect(await gateway.request(ask(service, "export-review", "export all monthly"))).toMatchObject({
        outcome: "APPROVAL_OUTCOME_POLICY_CHANGED",
      });
      expect(await cp.db.approval.count({ where: { apiKeyId: service.id } })).toBe(2);
    });

    it("voids a policy's grants when its definition or state changes, not when only its name does", async () => {
      const policyId = await createPolicy(ruleReview("changing", { grant: "window", windowMinutes: 60 }));
      const granted = await open(ask({ id: "policy-user" }, "changing", "export all a"));
      expect((await decide(granted.approvalId, "approve", people["sec-1"] as Person)).status).toBe(200);
      // Another subject's (the window grant covers policy-user's every request).
      const waiting = await open(ask({ id: "policy-user-2" }, "changing", "export all b"));

      // A new description only: what was approved still stands.
      const renamed = { ...ruleReview("changing", { grant: "window", windowMinutes: 60 }), description: "reworded" };
      expect((await call("PUT", `/policies/${policyId}`, { body: renamed })).status).toBe(200);
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id: granted.approvalId } })).toMatchObject({
        voidedAt: null,
      });
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id: waiting.approvalId } })).toMatchObject({
        status: "pending",
      });

      const stricter = { ...renamed, operations: ["inference"], limits: { maxTokens: 100 } };
      expect((await call("PUT", `/policies/${policyId}`, { body: stricter })).status).toBe(200);
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id: granted.approvalId } })).toMatchObject({
        voidReason: "the policy changed",
      });
      expect(await cp.db.approval.findUniqueOrThrow({ where: { id: waiting.approvalId } })).toMatchObject({
        status: "expired",
        voidReason: "the policy changed",
      });
      expect(await stream.approval(granted.approvalId, (approval) => !approval.inForce, 1_000)).toMatchObject({
        inForce: false,
      });

      // Disabling and deleting withdraw too.
      const next = await open(ask({ id: "policy-user" }, "changing", "export all c"));
      expect((await decide(next.approvalId, "approve", people["sec-1"] as Person)).status).toBe(200);
      expect((await call("PUT", `/policies/${policyId}`, { body: { ...stricter, enabled: false } })).status).toBe(200);
      expect((await cp.db.approval.findUniqueOrThrow({ where: { id: next.approvalId } })).voidedAt).not.toBeNull();
      expect((await call("DELETE", `/policies/${policyId}`)).status).toBe(204);
      // Its approvals stay in the trail after the policy is gone.
      expect(await cp.db.approval.count({ where: { policyId } })).toBe(3);
    });

    it("expires a pending approval through its BullMQ delayed job, within a second of its time", async () => {
      const { approvalId: id } = await open(ask({ id: "expiry-user" }, "export-review", "export all expiring"));
      const queue = new Queue(APPROVAL_EXPIRY_QUEUE, { connection: { url: REDIS_URL }, prefix });
      try {
        const job = await until(async () => (await queue.getJob(expiryJobId(id))) ?? undefined);
        expect(await job.isDelayed()).toBe(true);
        expect(job.delay).toBeGreaterThan(59 * MINUTE);
        // The approval now expires in 1.5 s, and its job fires at once: early, so it waits for the approval's time.
        const expiresAt = new Date(Date.now() + 1500);
        await cp.db.approval.update({ where: { id }, data: { expiresAt } });
        await job.changeDelay(0);
        await new Promise((resolve) => setTimeout(resolve, 700));
        expect((await cp.db.approval.findUniqueOrThrow({ where: { id } })).status).toBe("pending");
        const expired = await until(async () => {
          const row = await cp.db.approval.findUniqueOrThrow({ where: { id } });
          return row.status === "expired" ? row : undefined;
        });
        expect(expired.decidedAt?.getTime()).toBeGreaterThanOrEqual(expiresAt.getTime());
        expect(expired.decidedAt?.getTime()).toBeLessThan(expiresAt.getTime() + 1000);
        const message = await stream.approval(id, undefined, 1_000);
        expect(message).toMatchObject({ status: "expired", inForce: false, decidedAt: expired.decidedAt?.getTime() });
        // The job is done, and gone: the approval's id could be scheduled again.
        await until(async () => ((await queue.getJob(expiryJobId(id))) ? undefined : true));
        // Once expired, the identical request opens a new approval.
        const again = await open(ask({ id: "expiry-user" }, "export-review", "export all expiring"));
        expect(again).toMatchObject({ created: true });
        expect(again.approvalId).not.toBe(id);
      } finally {
        await queue.close();
      }
    });
  });

  describe("events", () => {
    it("sends approval events (never the prompt) and one approval_requested alert per new approval", async () => {
      const researcher = people.researcher as Person;
      const request = ask(researcher, "export-review", "export all SECRET-PROMPT-TEXT");
      const { approvalId: id, url } = await open(request);
      await gateway.request({ ...request, sessionId: uuidv7() });
      expect((await decide(id, "deny", people["sec-1"] as Person, "no")).status).toBe(200);

      const events = (kind: string) =>
        receiver.events.filter(
          (event) => event.type === "approval" && event.approval.id === id && event.approval.event === kind,
        );
      const [requested] = await until(() => (events("requested").length ? events("requested") : undefined));
      expect(requested).toEqual({
        version: 1,
        id: `approval.${id}.requested`,
        type: "approval",
        time: requested.approval.requestedAt,
        source: "modelgate",
        approval: {
          event: "requested",
          id,
          subject: { id: "researcher", email: "researcher@example.com" },
          connection: "llama",
          model: "m",
          operation: "inference",
          policyId: policies["export-review"],
          policyName: "export-review",
          rule: 1,
          reason: request.reason,
          url,
          requestedAt: expect.any(String),
          expiresAt: expect.any(String),
          decidedAt: null,
          deciders: [],
        },
      });
      const [denied] = await until(() => (events("denied").length ? events("denied") : undefined));
      expect(denied.approval).toMatchObject({
        event: "denied",
        decidedAt: expect.any(String),
        deciders: [
          { id: "sec-1", email: "sec-1@example.com", decision: "deny", comment: "no", at: expect.any(String) },
        ],
      });
      expect(denied.time).toBe(denied.approval.decidedAt);

      // One alert for the approval, though two requests asked for it.
      const alertsFor = () =>
        receiver.events.filter((event) => event.type === "alert" && event.alert.details.approvalId === id);
      const [alert] = await until(() => (alertsFor().length ? alertsFor() : undefined));
      expect(alert.alert).toMatchObject({
        kind: "approval_requested",
        ruleName: "new-approvals",
        subject: "researcher",
        sessionIds: [request.sessionId],
        details: { approvalId: id, url, connection: "llama", policyName: "export-review" },
      });
      // The approvals of earlier tests: approved, expired (the delayed job's) events reached it too.
      expect(receiver.events.some((event) => event.type === "approval" && event.approval.event === "approved")).toBe(
        true,
      );
      expect(receiver.events.some((event) => event.type === "approval" && event.approval.event === "expired")).toBe(
        true,
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(alertsFor()).toHaveLength(1);
      expect(events("requested")).toHaveLength(1);
      expect(JSON.stringify(receiver.events)).not.toContain("SECRET-PROMPT-TEXT");
      // Every approval opened in this file raised its one alert.
      const approvals = await cp.db.approval.count();
      await until(async () =>
        (await cp.db.alert.count({ where: { kind: "approval_requested" } })) === approvals ? true : undefined,
      );
    });
  });
});

describe("approvals without Redis", () => {
  let database: TestDatabase;
  let policyId: string;
  const gatewayToken = GATEWAY_TOKEN;

  const start = (sweepIntervalMs: number): Promise<RunningControlPlane> =>
    startControlPlane({
      host: "127.0.0.1",
      port: 0,
      ops: { host: "127.0.0.1", port: 0 },
      processMetrics: false,
      grpc: { host: "127.0.0.1", port: 0 },
      databaseUrl: database.url,
      dbPoolSize: 3,
      inProcessAudit: true,
      adminToken: ADMIN_TOKEN,
      gatewayToken,
      approvals: { sweepIntervalMs, urlBase: "https://modelgate.example.com/console/approvals" },
      version: "test",
      logger: quietLogger().logger,
    } satisfies ControlPlaneOptions);

  const request = (prompt: string): ApprovalRequestInput => ({
    gatewayId: "gw-solo",
    sessionId: uuidv7(),
    subject: {
      key: "solo-key",
      id: "solo",
      email: "",
      groups: [],
      authMethod: "oidc",
      issuer: "https://idp.example.com",
    },
    connection: "llama",
    model: "m",
    operation: "inference",
    policyId,
    rule: 1,
    field: "",
    reason: "needs approval",
    bodySha256: sha256(prompt),
    prompt,
    promptTruncated: false,
  });

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.drop());

  it("arms in-process timers, also for what was pending before a restart, and sweeps what is overdue", async () => {
    let cp = await start(3_600_000);
    const created = await api(cp.url)("POST", "/policies", { body: ruleReview("solo") });
    policyId = created.body.id;
    let link = gatewayLink(cp.grpcAddress);
    const ticket = await link.request(request("export all one"));
    expect(ticket.url).toBe(`https://modelgate.example.com/console/approvals/${ticket.approvalId}`);
    // Time for a restart on a slow machine, so the timer (not the sweep at start) expires it.
    const expiresAt = new Date(Date.now() + 3000);
    await cp.db.approval.update({ where: { id: ticket.approvalId }, data: { expiresAt } });
    link.close();
    await cp.close();

    // The next control plane arms a timer for the pending approval at start; its sweep is an hour away.
    cp = await start(3_600_000);
    link = gatewayLink(cp.grpcAddress);
    const stream = link.subscribe();
    await stream.snapshot();
    const message = await stream.approval(ticket.approvalId, undefined, 5_000);
    expect(message).toMatchObject({ status: "expired", inForce: false });
    expect(message.decidedAt).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(message.decidedAt).toBeLessThan(expiresAt.getTime() + 1000);

    // An approval whose timer is far away, moved into the past: only a sweep
    // finds it, the one at start of the next control plane...
    const late = await link.request(request("export all two"));
    await cp.db.approval.update({ where: { id: late.approvalId }, data: { expiresAt: new Date(Date.now() - 1000) } });
    link.close();
    await cp.close();
    cp = await start(100);
    link = gatewayLink(cp.grpcAddress);
    const expiredBy = (id: string) =>
      until(async () => {
        const row = await cp.db.approval.findUniqueOrThrow({ where: { id } });
        return row.status === "expired" ? row : undefined;
      }, 3_000);
    try {
      expect((await expiredBy(late.approvalId)).decidedAt).not.toBeNull();
      // ...or a periodic one.
      const later = await link.request(request("export all three"));
      await cp.db.approval.update({ where: { id: later.approvalId }, data: { expiresAt: new Date(Date.now() - 1) } });
      const sweptAt = Date.now();
      await expiredBy(later.approvalId);
      expect(Date.now() - sweptAt).toBeLessThan(1000);
    } finally {
      link.close();
      await cp.close();
    }
  });
});
