// Audit sessions end to end on real Redis and Postgres: records enqueued the
// way a gateway does, stored by the audit worker, read through the API.
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { Writable } from "node:stream";
import {
  AUDIT_QUEUE,
  type AuditQueue,
  type AuditRecord,
  type AuditWorker,
  createAuditQueue,
  processAuditJob,
  startAuditWorker,
} from "@modelgate/audit";
import { createLogger, uuidv7 } from "@modelgate/core";
import { createDatabaseClient } from "@modelgate/db";
import { OidcVerifier } from "@modelgate/identity";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import { Queue } from "bullmq";
import { sessionRoutes } from "../src/features/sessions/routes.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const AUDIENCE = "https://modelgate.test/api";

const logger = createLogger({
  name: "audit-worker",
  level: "info",
  destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
});

let clock = Date.parse("2026-03-01T12:00:00.000Z");
/** A record as a gateway would send it; each one a second later than the last unless `receivedAt` is given. */
function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  clock += 1000;
  const receivedAt = new Date(clock).toISOString();
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt,
    firstByteAt: new Date(clock + 40).toISOString(),
    finishedAt: new Date(clock + 120).toISOString(),
    subject: { id: "alice", email: "alice@example.com", groups: ["data-science"], authMethod: "oidc" },
    clientIp: "10.0.0.7",
    userAgent: "OpenAI/Python 1.99",
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    endpoint: "/v1/chat/completions",
    method: "POST",
    operation: "inference",
    decision: "allowed",
    policyIds: ["01900000-0000-7000-8000-000000000001"],
    capped: [],
    responseStatus: 200,
    latencyMs: 120,
    ttfbMs: 40,
    request: { text: '{"messages":[{"role":"user","content":"Hello"}]}', truncated: false, bytes: 48 },
    response: { text: "Hi there", truncated: false, bytes: 8 },
    events: [],
    ...overrides,
  };
}

async function until(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A loopback port where nothing listens: a Postgres that is down. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("audit sessions", () => {
  const prefix = `mgtest-sessions-${randomBytes(4).toString("hex")}`;
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  let producer: AuditQueue;
  let worker: AuditWorker;
  let inspect: Queue;
  const count = () => cp.db.session.count();

  // The data set the query tests read, stored once.
  const dataset: AuditRecord[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
    producer = createAuditQueue({ connection: REDIS_URL, prefix });
    inspect = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix });
    worker = await startAuditWorker({
      connection: REDIS_URL,
      prefix,
      store: createSessionStore({ db: cp.db }),
      logger,
      retry: { baseMs: 100, maxMs: 400 },
    });
  });
  afterAll(async () => {
    await worker.close();
    await producer.close();
    await inspect.obliterate({ force: true });
    await inspect.close();
    await cp.close();
  });

  it("stores exactly one session per record, with its content and events", async () => {
    const sameInstant = "2026-03-01T11:00:00.000Z";
    dataset.push(
      record({
        events: [
          { offsetMs: 40, data: 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n' },
          { offsetMs: 90, data: 'data: {"choices":[{"delta":{"content":" there"}}]}\n\n' },
          { offsetMs: 120, data: "data: [DONE]\n\n" },
        ],
        usage: { prompt_tokens: 9, completion_tokens: 2 },
        capped: [{ parameter: "max_tokens", value: 1024 }],
        subject: {
          id: "alice",
          email: "alice@example.com",
          groups: ["data-science"],
          authMethod: "oidc",
          issuer: "https://idp.example.com",
        },
      }),
      record({
        subject: { id: "bob-key", groups: ["ops", "data-science"], authMethod: "api_key", tokenId: "k1" },
        decision: "blocked",
        reason: "prompt rule: bulk export",
        responseStatus: 403,
        response: undefined,
        request: { text: "please EXPORT ALL customer records", truncated: false, bytes: 34 },
      }),
      record({ connection: "mistral", model: "mistral-7b", decision: "masked", maskedCounts: { email: 2 } }),
      record({ subject: undefined, decision: "denied", responseStatus: 401, request: undefined, response: undefined }),
      record({
        decision: "rate_limited",
        response: { text: "x".repeat(100), truncated: true, bytes: 5_000_000 },
      }),
      // Two sessions received in the same millisecond: the id breaks the tie.
      record({ receivedAt: sameInstant, finishedAt: sameInstant, firstByteAt: undefined }),
      record({ receivedAt: sameInstant, finishedAt: sameInstant, firstByteAt: undefined }),
      record({ response: { text: "save 50% with code_A", truncated: false, bytes: 20 } }),
      ...Array.from({ length: 8 }, () => record()),
    );
    for (const item of dataset) await producer.enqueue(item);
    await until(async () => (await count()) === dataset.length);

    const first = dataset[0] as AuditRecord;
    const answer = await api("GET", `/api/v1/sessions/${first.sessionId}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      id: first.sessionId,
      receivedAt: first.receivedAt,
      firstByteAt: first.firstByteAt,
      finishedAt: first.finishedAt,
      subject: { id: "alice", email: "alice@example.com", name: null, groups: ["data-science"], authMethod: "oidc" },
      clientIp: "10.0.0.7",
      userAgent: "OpenAI/Python 1.99",
      connection: "llama",
      model: "llama-3.1-8b-instruct",
      agentId: null,
      endpoint: "/v1/chat/completions",
      method: "POST",
      decision: "allowed",
      policyIds: first.policyIds,
      reason: null,
      responseStatus: 200,
      latencyMs: 120,
      ttfbMs: 40,
      // Not streamed: the first token came with the first byte. Total = prompt + completion.
      ttftMs: 40,
      usage: { promptTokens: 9, completionTokens: 2, totalTokens: 11 },
      details: {
        recordVersion: 1,
        gatewayId: "gw-1",
        operation: "inference",
        issuer: "https://idp.example.com",
        capped: [{ parameter: "max_tokens", value: 1024 }],
        usage: { prompt_tokens: 9, completion_tokens: 2 },
        request: { bytes: 48, truncated: false },
        response: { bytes: 8, truncated: false },
      },
      content: { requestBody: first.request?.text, responseBody: "Hi there", truncated: false },
      events: first.events.map((event, seq) => ({ seq, ...event })),
      // The hash chain's link (audit-integrity.test.ts checks its values).
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      prevHash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });

    const truncated = await api("GET", `/api/v1/sessions/${dataset[4]?.sessionId}`);
    expect(truncated.body.content).toMatchObject({ truncated: true });
    expect(truncated.body.details.response).toEqual({ bytes: 5_000_000, truncated: true });
    const refused = await api("GET", `/api/v1/sessions/${dataset[3]?.sessionId}`);
    expect(refused.body).toMatchObject({ subject: null, content: null, events: [] });
  });

  it("never duplicates a session: re-sent, re-added after completion, or processed twice", async () => {
    const before = await count();
    const again = dataset[1] as AuditRecord;
    await producer.enqueue(again);

    // The job gone from Redis (removeOnComplete) and the record sent again:
    // BullMQ takes it as new, the store recognises it.
    await (await inspect.getJob(again.sessionId))?.remove();
    await producer.enqueue(again);
    await until(async () => (await inspect.getJob(again.sessionId))?.returnvalue === "duplicate");

    // A delivery processed twice (a stalled job re-run by another worker).
    const store = createSessionStore({ db: cp.db });
    const job = { id: again.sessionId, data: again };
    expect(await processAuditJob(job, store, logger)).toBe("duplicate");
    const fresh = record();
    const results = await Promise.all([
      processAuditJob({ id: fresh.sessionId, data: fresh }, store, logger),
      processAuditJob({ id: fresh.sessionId, data: fresh }, store, logger),
    ]);
    expect(results.sort()).toEqual(["duplicate", "stored"]);

    expect(await count()).toBe(before + 1);
    expect(await cp.db.sessionEvent.count({ where: { sessionId: dataset[0]?.sessionId } })).toBe(3);
    expect(await cp.db.sessionContent.count({ where: { sessionId: again.sessionId } })).toBe(1);
    await cp.db.session.delete({ where: { id: fresh.sessionId } });
  });

  it("stores a batch whose events need more than one statement, each session whole and linked in order", async () => {
    const store = createSessionStore({ db: cp.db });
    const long = record({
      events: Array.from({ length: 12_000 }, (_, seq) => ({ offsetMs: seq, data: `chunk ${seq}` })),
    });
    const short = [record({ events: [{ offsetMs: 1, data: "one" }] }), record()];
    // Written in the same turn: one batch, one transaction.
    const outcomes = await Promise.all([short[0], long, short[1]].map((item) => store.write(item as AuditRecord)));
    expect(outcomes).toEqual(["stored", "stored", "stored"]);
    expect(await cp.db.sessionEvent.count({ where: { sessionId: long.sessionId } })).toBe(12_000);
    const last = await cp.db.sessionEvent.findFirst({
      where: { sessionId: long.sessionId },
      orderBy: { seq: "desc" },
    });
    expect(last?.data).toBe("chunk 11999");
    const rows = await cp.db.session.findMany({
      where: { id: { in: [short[0], long, short[1]].map((item) => item?.sessionId as string) } },
      select: { id: true, chainSeq: true, prevHash: true, hash: true },
      orderBy: { chainSeq: "asc" },
    });
    expect(rows.map((row) => row.id)).toEqual([short[0]?.sessionId, long.sessionId, short[1]?.sessionId]);
    // Consecutive links: each session's previous hash is the one before it.
    expect(rows[1]?.prevHash).toBe(rows[0]?.hash);
    expect(rows[2]?.prevHash).toBe(rows[1]?.hash);
    expect(Number(rows[2]?.chainSeq) - Number(rows[0]?.chainSeq)).toBe(2);
    const head = await cp.db.$queryRaw<{ hash: string }[]>`SELECT hash FROM audit_chain_head WHERE id = 1`;
    expect(head[0]?.hash).toBe(rows[2]?.hash);
    // The query tests below read their own data set only.
    await cp.db.session.deleteMany({ where: { id: { in: rows.map((row) => row.id) } } });
  });

  it("stores text Postgres cannot hold (U+0000) as U+FFFD and counts it, rather than refuse the record", async () => {
    const nul = String.fromCharCode(0);
    const item = record({ request: { text: `a${nul}b${nul}`, truncated: false, bytes: 4 } });
    await producer.enqueue(item);
    await until(async () => (await cp.db.session.findUnique({ where: { id: item.sessionId } })) !== null);
    const answer = await api("GET", `/api/v1/sessions/${item.sessionId}`);
    expect(answer.body.content.requestBody).toBe("a\uFFFDb\uFFFD");
    expect(answer.body.details.nulReplaced).toBe(2);
    await cp.db.session.delete({ where: { id: item.sessionId } });
  });

  it("an invalid record lands nowhere, stays in the failed set and does not hold up the next one", async () => {
    const before = await count();
    const invalid = { ...record(), latencyMs: -1 };
    const valid = record();
    await producer.enqueue(invalid);
    await producer.enqueue(valid);
    await until(async () => (await cp.db.session.findUnique({ where: { id: valid.sessionId } })) !== null);
    await until(async () => (await inspect.getJob(invalid.sessionId))?.failedReason !== undefined);
    const failed = await inspect.getJob(invalid.sessionId);
    expect(await failed?.getState()).toBe("failed");
    expect(failed?.attemptsMade).toBe(1);
    expect(await cp.db.session.findUnique({ where: { id: invalid.sessionId } })).toBeNull();
    expect(await count()).toBe(before + 1);
    await cp.db.session.delete({ where: { id: valid.sessionId } });
  });

  it("records wait in Redis while Postgres is unreachable and land once it answers", async () => {
    const outagePrefix = `${prefix}-outage`;
    const outageQueue = createAuditQueue({ connection: REDIS_URL, prefix: outagePrefix });
    const outageInspect = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: outagePrefix });
    const down = createDatabaseClient({
      databaseUrl: `postgresql://postgres@127.0.0.1:${await deadPort()}/modelgate`,
      maxConnections: 1,
    });
    const before = await count();
    const burst = Array.from({ length: 5 }, () => record());
    const failing = await startAuditWorker({
      connection: REDIS_URL,
      prefix: outagePrefix,
      store: createSessionStore({ db: down }),
      logger,
      retry: { baseMs: 100, maxMs: 200 },
    });
    try {
      for (const item of burst) await outageQueue.enqueue(item);
      // Every record has failed at least once and is waiting for its retry.
      await until(async () => {
        const jobs = await Promise.all(burst.map((item) => outageInspect.getJob(item.sessionId)));
        return jobs.every((job) => (job?.attemptsMade ?? 0) >= 1);
      });
      expect(await count()).toBe(before);
    } finally {
      await failing.close();
      await down.$disconnect();
    }

    const recovered = await startAuditWorker({
      connection: REDIS_URL,
      prefix: outagePrefix,
      store: createSessionStore({ db: cp.db }),
      logger,
      retry: { baseMs: 100, maxMs: 200 },
    });
    try {
      await until(async () => (await count()) === before + burst.length);
      expect(await outageInspect.getFailedCount()).toBe(0);
    } finally {
      await recovered.close();
      await outageQueue.close();
      await outageInspect.obliterate({ force: true });
      await outageInspect.close();
      await cp.db.session.deleteMany({ where: { id: { in: burst.map((item) => item.sessionId) } } });
    }
  });

  describe("GET /sessions", () => {
    const ids = (answer: { body: { items: { id: string }[] } }) => answer.body.items.map((item) => item.id);
    /** The data set newest first, as the API orders it. */
    const newestFirst = (items: AuditRecord[]) =>
      [...items]
        .sort((a, b) => b.receivedAt.localeCompare(a.receivedAt) || (b.sessionId < a.sessionId ? -1 : 1))
        .map((item) => item.sessionId);

    it("lists newest first, metadata only", async () => {
      const answer = await api("GET", "/api/v1/sessions?limit=500");
      expect(answer.status).toBe(200);
      expect(ids(answer)).toEqual(newestFirst(dataset));
      expect(answer.body.nextCursor).toBeNull();
      const item = answer.body.items[0];
      expect(item).not.toHaveProperty("content");
      expect(item).not.toHaveProperty("events");
      expect(item).not.toHaveProperty("details");
    });

    it.each([
      ["user by id", "user=bob-key", (r: AuditRecord) => r.subject?.id === "bob-key"],
      ["user by email", "user=alice%40example.com", (r: AuditRecord) => r.subject?.email === "alice@example.com"],
      ["group", "group=ops", (r: AuditRecord) => r.subject?.groups.includes("ops") === true],
      ["connection", "connection=mistral", (r: AuditRecord) => r.connection === "mistral"],
      ["model", "model=mistral-7b", (r: AuditRecord) => r.model === "mistral-7b"],
      ["decision", "decision=blocked", (r: AuditRecord) => r.decision === "blocked"],
      [
        "text in the prompt, any case",
        "q=export%20all",
        (r: AuditRecord) => r.request?.text.includes("EXPORT") === true,
      ],
      ["text in the response", "q=HI%20THERE", (r: AuditRecord) => r.response?.text === "Hi there"],
      ["a LIKE wildcard taken literally", "q=%25", (r: AuditRecord) => r.response?.text.includes("%") === true],
      ['an underscore taken literally (o_e would match "code")', "q=o_e", () => false],
      [
        "a time range",
        "from=2026-03-01T12:00:03.000Z&to=2026-03-01T12:00:06.000Z",
        (r: AuditRecord) => r.receivedAt >= "2026-03-01T12:00:03.000Z" && r.receivedAt < "2026-03-01T12:00:06.000Z",
      ],
      [
        "several filters at once",
        "group=data-science&decision=allowed&connection=llama",
        (r: AuditRecord) =>
          r.subject?.groups.includes("data-science") === true && r.decision === "allowed" && r.connection === "llama",
      ],
    ])("filters by %s", async (_label, query, expected) => {
      const answer = await api("GET", `/api/v1/sessions?limit=500&${query}`);
      expect(answer.status).toBe(200);
      const want = newestFirst(dataset.filter(expected));
      expect(ids(answer)).toEqual(want);
      if (!_label.startsWith("an underscore")) expect(want.length).toBeGreaterThan(0);
    });

    it("pages without duplicates or gaps, also while new sessions arrive", async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const answer = await api("GET", `/api/v1/sessions?limit=4${cursor ? `&cursor=${cursor}` : ""}`);
        expect(answer.status).toBe(200);
        seen.push(...ids(answer));
        cursor = answer.body.nextCursor;
        pages += 1;
        // A newer session arriving mid-listing must not shift later pages.
        if (pages === 1) await createSessionStore({ db: cp.db }).write(record());
      } while (cursor);
      expect(seen).toEqual(newestFirst(dataset));
      expect(pages).toBe(Math.ceil(dataset.length / 4));
    });

    it("refuses a forged cursor, an unknown filter and an inverted range", async () => {
      expectProblem(await api("GET", "/api/v1/sessions?cursor=bm9wZQ"), 400, "invalid_request");
      expectProblem(await api("GET", "/api/v1/sessions?usr=alice"), 400, "invalid_request");
      expectProblem(await api("GET", "/api/v1/sessions?decision=perhaps"), 400, "invalid_request");
      expectProblem(
        await api("GET", "/api/v1/sessions?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z"),
        400,
        "invalid_request",
      );
    });

    it("answers 404 for an unknown session", async () => {
      expectProblem(await api("GET", `/api/v1/sessions/${uuidv7()}`), 404, "not_found");
    });
  });

  describe("roles", () => {
    let idp: TestIdentityProvider;
    let verifier: OidcVerifier;
    let oidcCp: RunningControlPlane;

    beforeAll(async () => {
      idp = await startTestIdentityProvider({ audience: AUDIENCE });
      verifier = new OidcVerifier({
        issuers: [{ issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" }],
        allowInsecureRequests: true,
      });
      await verifier.start();
      oidcCp = await startControlPlane({
        oidc: { verifier, roleGroups: { admin: ["mg-admins"], auditor: ["mg-auditors"], approver: ["mg-approvers"] } },
      });
      await createSessionStore({ db: oidcCp.db }).write(dataset[0] as AuditRecord);
    });
    afterAll(async () => {
      await oidcCp.close();
      verifier.close();
      await idp.close();
    });

    it("auditors and admins read sessions; nobody else", async () => {
      expect(
        sessionRoutes({
          list: async () => ({ items: [], nextCursor: null }),
          stats: async () => {
            throw new Error();
          },
          get: async () => {
            throw new Error();
          },
          replay: async () => {
            throw new Error();
          },
        }).map((route) => route.roles),
      ).toEqual([
        ["admin", "auditor"],
        ["admin", "auditor"],
        ["admin", "auditor"],
        ["admin", "auditor"],
      ]);
      const call = apiClient(oidcCp);
      const id = dataset[0]?.sessionId;
      for (const groups of [["mg-auditors"], ["mg-admins"]]) {
        const token = await idp.mintAccessToken({ subject: "dora", email: "dora@example.com", groups });
        expect((await call("GET", "/api/v1/sessions", { token })).body.items).toHaveLength(1);
        expect((await call("GET", `/api/v1/sessions/${id}`, { token })).status).toBe(200);
      }
      for (const groups of [["mg-approvers"], ["data-science"]]) {
        const token = await idp.mintAccessToken({ subject: "eve", email: "eve@example.com", groups });
        expectProblem(await call("GET", "/api/v1/sessions", { token }), 403, "forbidden");
        expectProblem(await call("GET", `/api/v1/sessions/${id}`, { token }), 403, "forbidden");
      }
      expectProblem(await call("GET", "/api/v1/sessions", { token: null }), 401, "unauthenticated");
    });
  });
});
