// The audit hash chain, its verification and retention, on real Postgres and
// Redis: records stored by the batching store, rows then edited or deleted
// directly in SQL the way someone with database access would.
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:net";
import path from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import type { AuditRecord, AuditStore } from "@modelgate/audit";
import { createLogger, uuidv7 } from "@modelgate/core";
import { createDatabaseClient } from "@modelgate/db";
import { Queue } from "bullmq";
import { GENESIS_HASH } from "../src/features/audit-integrity/chain.js";
import {
  purgeExpired,
  RETENTION_QUEUE,
  RETENTION_SCHEDULER_ID,
  type RetentionPolicy,
  type RunningRetention,
  startRetention,
} from "../src/features/audit-integrity/retention.js";
import { auditIntegrityRoutes } from "../src/features/audit-integrity/routes.js";
import { verifyChain } from "../src/features/audit-integrity/verify.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const DAY_MS = 24 * 60 * 60_000;
const run = promisify(execFile);

const logger = createLogger({
  name: "audit-integrity",
  level: "info",
  destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
});

/** A record as a gateway sends it, received `daysAgo` days before now (plus a few ms per record). */
let tick = 0;
function record(daysAgo = 0, overrides: Partial<AuditRecord> = {}): AuditRecord {
  tick += 1;
  const at = Date.now() - daysAgo * DAY_MS + tick;
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt: new Date(at).toISOString(),
    firstByteAt: new Date(at + 40).toISOString(),
    finishedAt: new Date(at + 120).toISOString(),
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
    usage: { prompt_tokens: 9, completion_tokens: 2 },
    request: { text: '{"messages":[{"role":"user","content":"Hello"}]}', truncated: false, bytes: 48 },
    response: { text: "Hi there", truncated: false, bytes: 8 },
    events: [
      { offsetMs: 40, data: 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n' },
      { offsetMs: 90, data: 'data: {"choices":[{"delta":{"content":" there"}}]}\n\n' },
    ],
    ...overrides,
  };
}

/** A loopback port where nothing listens: a Postgres that is down. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function writeAll(store: AuditStore, records: AuditRecord[]) {
  return Promise.all(records.map((item) => store.write(item)));
}

interface ChainRow {
  id: string;
  chain_seq: bigint;
  hash: string;
  prev_hash: string;
}

describe("audit hash chain", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  const chain = () =>
    cp.db.$queryRaw<ChainRow[]>`SELECT id, chain_seq, hash, prev_hash FROM sessions ORDER BY chain_seq`;
  /** The stored session at a chain position. */
  const at = async (seq: number) => (await chain())[seq - 1] as ChainRow;
  const verify = async (query = "") => {
    const answer = await api("GET", `/api/v1/audit/verify${query}`);
    expect(answer.status).toBe(200);
    return answer.body;
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(async () => {
    await cp.close();
  });

  it("verifies an empty chain", async () => {
    expect(await verify()).toEqual({
      status: "ok",
      checked: 0,
      start: { kind: "genesis", chainSeq: 1, prevHash: GENESIS_HASH },
      lastChainSeq: 0,
      headHash: GENESIS_HASH,
      contentPurged: 0,
      complete: true,
      headChainSeq: 0,
    });
  });

  it("writes concurrent records in batches, one link each, every caller told its own outcome", async () => {
    const store = createSessionStore({ db: cp.db, maxBatch: 50 });
    const records = Array.from({ length: 120 }, (_, index) =>
      record(0, index === 7 ? { decision: "blocked", reason: "prompt rule", response: undefined, events: [] } : {}),
    );
    // The first record twice in the same burst: one session, one duplicate.
    const outcomes = await writeAll(store, [...records, records[0] as AuditRecord]);
    expect(outcomes.filter((outcome) => outcome === "stored")).toHaveLength(120);
    expect(outcomes.at(-1)).toBe("duplicate");

    // Already stored: a duplicate, in a batch of its own or with a new record.
    const fresh = record();
    expect(await writeAll(store, [records[5] as AuditRecord, fresh])).toEqual(["duplicate", "stored"]);

    const rows = await chain();
    expect(rows.map((row) => Number(row.chain_seq))).toEqual(Array.from({ length: 121 }, (_, index) => index + 1));
    expect(rows.map((row) => row.id)).toEqual([...records.map((item) => item.sessionId), fresh.sessionId]);
    rows.forEach((row, index) => {
      expect(row.prev_hash).toBe(index === 0 ? GENESIS_HASH : rows[index - 1]?.hash);
    });
    const head = await cp.db.auditChainHead.findUniqueOrThrow({ where: { id: 1 } });
    expect({ chainSeq: head.chainSeq, hash: head.hash }).toEqual({ chainSeq: 121n, hash: rows.at(-1)?.hash });
    // 121 records written at once with batches of 50 were three transactions (then one for `fresh`).
    const [written] = await cp.db.$queryRaw<{ transactions: bigint }[]>`
      SELECT count(DISTINCT xmin::text) AS transactions FROM sessions`;
    expect(Number(written?.transactions)).toBe(4);
    expect(await cp.db.sessionEvent.count()).toBe(119 * 2 + 2);
  });

  it("verifies the untouched chain", async () => {
    const rows = await chain();
    expect(await verify()).toEqual({
      status: "ok",
      checked: rows.length,
      start: { kind: "genesis", chainSeq: 1, prevHash: GENESIS_HASH },
      lastChainSeq: rows.length,
      headHash: rows.at(-1)?.hash,
      contentPurged: 0,
      complete: true,
      headChainSeq: rows.length,
    });
    // Starting part-way takes that session's prev_hash as given.
    expect(await verify("?from=100")).toMatchObject({
      status: "ok",
      checked: rows.length - 99,
      start: { kind: "from", chainSeq: 100, prevHash: null },
    });
    // Small keyset batches walk the same chain.
    expect(await verifyChain(cp.db, { batchSize: 7 })).toMatchObject({ status: "ok", checked: rows.length });
  });

  it("walks the chain in parts, each linked to the one before, as the CLI shows progress", async () => {
    const rows = await chain();
    const parts: { checked: number; complete: boolean }[] = [];
    let query = "?limit=45";
    for (;;) {
      const part = await verify(query);
      expect(part).toMatchObject({ status: "ok", headChainSeq: rows.length });
      parts.push({ checked: part.checked, complete: part.complete });
      if (part.complete) break;
      query = `?limit=45&from=${part.lastChainSeq + 1}&prevHash=${part.headHash}`;
    }
    expect(parts).toEqual([
      { checked: 45, complete: false },
      { checked: 45, complete: false },
      { checked: rows.length - 90, complete: true },
    ]);
    // The link into a part is checked: a prev_hash that is not the previous part's last hash is a break.
    expect(await verify(`?from=46&prevHash=${"0".repeat(64)}`)).toMatchObject({
      status: "broken",
      firstBrokenAt: { chainSeq: 46, reason: "prev_hash_mismatch" },
    });
    const bad = await api("GET", "/api/v1/audit/verify?prevHash=abc");
    expect(bad.status).toBe(400);
    expect((await api("GET", `/api/v1/audit/verify?prevHash=${"0".repeat(64)}`)).status).toBe(400);
  });

  it("agrees with an independent implementation of the documented algorithm (scripts/audit-chain-verify.py)", async () => {
    // Text that canonical JSON must escape or keep exactly, an id Postgres
    // lowercases and a lone surrogate it cannot store.
    const tricky = record(0, {
      agentId: "0190ABCD-0000-7000-8000-00000000000F",
      subject: { id: "jürgen", groups: ["Grüppe 😀", "ops"], authMethod: "api_key" },
      request: { text: 'tab\t "quoted" \\ back\nline \u0001 ctl 😀 \ud800 lone', truncated: false, bytes: 50 },
    });
    expect(await createSessionStore({ db: cp.db }).write(tricky)).toBe("stored");
    const independent = () =>
      run("python3", [path.resolve(import.meta.dirname, "../../../scripts/audit-chain-verify.py"), cp.database.url])
        .then(({ stdout }) => stdout.trim())
        .catch((error: { stdout?: string }) => error.stdout?.trim());
    const rows = await chain();
    expect(await independent()).toBe(
      `ok: ${rows.length} sessions, last chain_seq ${rows.length}, head hash ${rows.at(-1)?.hash}`,
    );
    await cp.db.$executeRaw`UPDATE sessions SET subject_groups = '{ops}' WHERE id = ${tricky.sessionId}`;
    expect(await independent()).toBe(
      `broken at session ${tricky.sessionId} (chain_seq ${rows.length}): hash_mismatch (metadata)`,
    );
    await cp.db
      .$executeRaw`UPDATE sessions SET subject_groups = ${["Grüppe 😀", "ops"]} WHERE id = ${tricky.sessionId}`;
    expect(await verify()).toMatchObject({ status: "ok", checked: rows.length });
  });

  it.each([
    {
      what: "the decision",
      part: "metadata",
      edit: (id: string) => cp.db.$executeRaw`UPDATE sessions SET decision = 'allowed' WHERE id = ${id}`,
      undo: (id: string) => cp.db.$executeRaw`UPDATE sessions SET decision = 'blocked' WHERE id = ${id}`,
      seq: 8,
    },
    {
      what: "a number inside details",
      part: "metadata",
      edit: (id: string) =>
        cp.db
          .$executeRaw`UPDATE sessions SET details = jsonb_set(details, '{usage,completion_tokens}', '2000') WHERE id = ${id}`,
      undo: (id: string) =>
        cp.db
          .$executeRaw`UPDATE sessions SET details = jsonb_set(details, '{usage,completion_tokens}', '2') WHERE id = ${id}`,
      seq: 30,
    },
    {
      what: "the response body",
      part: "content",
      edit: (id: string) =>
        cp.db.$executeRaw`UPDATE session_contents SET response_body = 'Nothing to see' WHERE session_id = ${id}`,
      undo: (id: string) =>
        cp.db.$executeRaw`UPDATE session_contents SET response_body = 'Hi there' WHERE session_id = ${id}`,
      seq: 61,
    },
    {
      what: "one streamed chunk",
      part: "content",
      edit: (id: string) =>
        cp.db.$executeRaw`UPDATE session_events SET offset_ms = 41 WHERE session_id = ${id} AND seq = 0`,
      undo: (id: string) =>
        cp.db.$executeRaw`UPDATE session_events SET offset_ms = 40 WHERE session_id = ${id} AND seq = 0`,
      seq: 62,
    },
    {
      what: "the stored content digest",
      part: "content",
      edit: (id: string) => cp.db.$executeRaw`UPDATE sessions SET content_digest = ${"f".repeat(64)} WHERE id = ${id}`,
      undo: async (id: string, saved: { contentDigest: string | null }) =>
        cp.db.$executeRaw`UPDATE sessions SET content_digest = ${saved.contentDigest} WHERE id = ${id}`,
      seq: 90,
    },
    {
      what: "the stored hash",
      part: "metadata",
      edit: (id: string) => cp.db.$executeRaw`UPDATE sessions SET hash = ${"e".repeat(64)} WHERE id = ${id}`,
      undo: async (id: string, saved: { hash: string | null }) =>
        cp.db.$executeRaw`UPDATE sessions SET hash = ${saved.hash} WHERE id = ${id}`,
      seq: 100,
    },
  ])("reports an edit of $what as a hash mismatch at exactly that session", async ({ edit, undo, seq, part }) => {
    const target = await at(seq);
    const saved = await cp.db.session.findUniqueOrThrow({ where: { id: target.id } });
    expect(await edit(target.id)).toBe(1);
    const report = await verify();
    expect(report).toMatchObject({
      status: "broken",
      checked: seq - 1,
      firstBrokenAt: { sessionId: target.id, chainSeq: seq, reason: "hash_mismatch", part },
    });
    await undo(target.id, saved);
    expect(await verify()).toMatchObject({ status: "ok" });
  });

  it("reports a rewritten prev_hash as a broken link at that session", async () => {
    const target = await at(50);
    await cp.db.$executeRaw`UPDATE sessions SET prev_hash = ${"a".repeat(64)} WHERE id = ${target.id}`;
    expect(await verify()).toMatchObject({
      status: "broken",
      checked: 49,
      firstBrokenAt: { sessionId: target.id, chainSeq: 50, reason: "prev_hash_mismatch" },
    });
    await cp.db.$executeRaw`UPDATE sessions SET prev_hash = ${target.prev_hash} WHERE id = ${target.id}`;
    expect(await verify()).toMatchObject({ status: "ok" });
  });

  it("reports a streamed answer's search text that its body does not give; a null one searches the body", async () => {
    const streamed = record(0, { responseContentType: "text/event-stream; charset=utf-8" });
    streamed.response = { text: streamed.events.map((event) => event.data).join(""), truncated: false, bytes: 96 };
    expect(await createSessionStore({ db: cp.db }).write(streamed)).toBe("stored");
    const content = () => cp.db.sessionContent.findUniqueOrThrow({ where: { sessionId: streamed.sessionId } });
    expect((await content()).responseText).toBe("Hi there");
    const seq = (await chain()).length;
    expect(await verify()).toMatchObject({ status: "ok", checked: seq });

    // Planting words in it (or hiding the session from a search for its own) breaks verification there.
    await cp.db
      .$executeRaw`UPDATE session_contents SET response_text = 'nothing here' WHERE session_id = ${streamed.sessionId}`;
    expect(await verify()).toMatchObject({
      status: "broken",
      checked: seq - 1,
      firstBrokenAt: { sessionId: streamed.sessionId, chainSeq: seq, reason: "search_text_mismatch" },
    });
    // Null is what sessions stored before the column have: their body is searched, nothing is hidden.
    await cp.db.$executeRaw`UPDATE session_contents SET response_text = NULL WHERE session_id = ${streamed.sessionId}`;
    expect(await verify()).toMatchObject({ status: "ok", checked: seq });
    await cp.db
      .$executeRaw`UPDATE session_contents SET response_text = 'Hi there' WHERE session_id = ${streamed.sessionId}`;
    expect(await verify()).toMatchObject({ status: "ok", checked: seq });
  });

  it("does not take deleted content of a recent session for a retention purge", async () => {
    const target = await at(70);
    const saved = await cp.db.sessionContent.findUniqueOrThrow({ where: { sessionId: target.id } });
    const savedEvents = await cp.db.sessionEvent.findMany({ where: { sessionId: target.id } });
    expect(savedEvents).toHaveLength(2);
    await cp.db.$executeRaw`DELETE FROM session_contents WHERE session_id = ${target.id}`;
    await cp.db.$executeRaw`DELETE FROM session_events WHERE session_id = ${target.id}`;
    expect(await verify()).toMatchObject({
      status: "broken",
      firstBrokenAt: { sessionId: target.id, chainSeq: 70, reason: "hash_mismatch", part: "content" },
    });
    // Restored, the chain verifies again: the check is on the data, not a flag.
    await cp.db.sessionContent.create({ data: saved });
    await cp.db.sessionEvent.createMany({ data: savedEvents });
    expect(await verify()).toMatchObject({ status: "ok" });
  });

  it("reports a session deleted from the middle as a missing link at the next one", async () => {
    const gone = await at(40);
    const next = await at(41);
    await cp.db.$executeRaw`DELETE FROM sessions WHERE id = ${gone.id}`;
    expect(await verify()).toMatchObject({
      status: "broken",
      checked: 39,
      firstBrokenAt: { sessionId: next.id, chainSeq: 41, reason: "missing_link" },
    });
  });

  it("reports the last session deleted: the head still remembers it", async () => {
    const rows = await chain();
    const last = rows.at(-1) as ChainRow;
    await cp.db.$executeRaw`DELETE FROM sessions WHERE id = ${last.id}`;
    expect(await verify("?from=42")).toMatchObject({
      status: "broken",
      firstBrokenAt: { sessionId: null, chainSeq: Number(last.chain_seq), reason: "missing_link" },
    });
  });

  it("answers bad input with 400, and only to auditors and admins", async () => {
    expectProblem(await api("GET", "/api/v1/audit/verify?from=0"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/audit/verify?from=abc"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/audit/verify?since=1"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/audit/verify?from=100000"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/audit/verify", { token: null }), 401, "unauthenticated");
    expect(auditIntegrityRoutes({ db: cp.db }).map((route) => route.roles)).toEqual([["admin", "auditor"]]);
  });
});

describe("batched store: concurrency and failures", () => {
  let cp: RunningControlPlane;
  beforeAll(async () => {
    cp = await startControlPlane();
  });
  afterAll(async () => {
    await cp.close();
  });

  it("two control planes writing the same records at once make one chain and one session per record", async () => {
    // Each with its own connection pool, as two processes would have.
    const other = createDatabaseClient({ databaseUrl: cp.database.url, maxConnections: 4 });
    try {
      const records = Array.from({ length: 150 }, () => record());
      const stores = [createSessionStore({ db: cp.db, maxBatch: 20 }), createSessionStore({ db: other, maxBatch: 30 })];
      // Both get every record (a re-delivery racing the original), in opposite orders.
      const [first, second] = await Promise.all([
        writeAll(stores[0] as AuditStore, records),
        writeAll(stores[1] as AuditStore, [...records].reverse()),
      ]);
      const stored = [...(first ?? []), ...(second ?? [])].filter((outcome) => outcome === "stored");
      expect(stored).toHaveLength(150);
      expect(await cp.db.session.count()).toBe(150);
      expect(await cp.db.sessionEvent.count()).toBe(300);
      expect(await verifyChain(cp.db)).toMatchObject({ status: "ok", checked: 150, lastChainSeq: 150 });
    } finally {
      await other.$disconnect();
      await cp.db.$executeRaw`DELETE FROM sessions`;
      await cp.db.$executeRaw`UPDATE audit_chain_head SET chain_seq = 0, hash = ${GENESIS_HASH}`;
    }
  });

  it("a record Postgres refuses fails alone; the rest of its batch is stored and chained", async () => {
    const poison = record(0, { sessionId: `poison-${randomBytes(4).toString("hex")}` });
    // A real refusal from Postgres for that one row, whatever the cause.
    await cp.db.$executeRawUnsafe(`
      CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.id LIKE 'poison-%' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$`);
    await cp.db.$executeRawUnsafe(
      "CREATE TRIGGER refuse_poison BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    );
    const store = createSessionStore({ db: cp.db });
    const good = Array.from({ length: 9 }, () => record());
    const results = await Promise.allSettled([...good.slice(0, 4), poison, ...good.slice(4)].map(store.write));
    expect(results.map((result) => result.status)).toEqual([
      ...Array(4).fill("fulfilled"),
      "rejected",
      ...Array(5).fill("fulfilled"),
    ]);
    expect(await cp.db.session.count()).toBe(9);
    expect(await verifyChain(cp.db)).toMatchObject({ status: "ok", checked: 9 });
    await cp.db.$executeRawUnsafe("DROP TRIGGER refuse_poison ON sessions");
    // Retried by BullMQ once the cause is gone, it lands.
    expect(await store.write(poison)).toBe("stored");
    expect(await verifyChain(cp.db)).toMatchObject({ status: "ok", checked: 10 });
  });

  it("with Postgres down every caller of the batch is rejected, so BullMQ retries them all", async () => {
    const down = createDatabaseClient({
      databaseUrl: `postgresql://postgres@127.0.0.1:${await deadPort()}/modelgate`,
      maxConnections: 1,
    });
    try {
      const store = createSessionStore({ db: down });
      const results = await Promise.allSettled([record(), record(), record()].map(store.write));
      expect(results.map((result) => result.status)).toEqual(["rejected", "rejected", "rejected"]);
    } finally {
      await down.$disconnect();
    }
  });
});

describe("retention", () => {
  const prefix = `mgtest-retention-${randomBytes(4).toString("hex")}`;
  let cp: RunningControlPlane;
  let store: AuditStore;
  const policy: RetentionPolicy = { contentDays: 30, metadataDays: 60 };
  const purge = (override: RetentionPolicy = policy) =>
    purgeExpired({ db: cp.db, policy: override, logger, by: "test", batchSize: 3 });
  const ids = (records: AuditRecord[]) => records.map((item) => item.sessionId);
  const sessionsLeft = async (records: AuditRecord[]) => cp.db.session.count({ where: { id: { in: ids(records) } } });
  const contentsLeft = async (records: AuditRecord[]) =>
    (await cp.db.sessionContent.count({ where: { sessionId: { in: ids(records) } } })) +
    (await cp.db.sessionEvent.count({ where: { sessionId: { in: ids(records) } } }));

  const ancient = Array.from({ length: 7 }, () => record(100));
  const old = Array.from({ length: 5 }, () => record(40));
  const recent = Array.from({ length: 5 }, () => record(1));
  // Delivered late (after the recent ones) with an old receivedAt: chained after them.
  const late = [record(100)];

  beforeAll(async () => {
    cp = await startControlPlane();
    store = createSessionStore({ db: cp.db });
    for (const group of [ancient, old, recent, late]) await writeAll(store, group);
  });
  afterAll(async () => {
    await cp.close();
  });

  it("purges bodies and events past the content retention, keeps the metadata, and still verifies", async () => {
    const result = await purge({ contentDays: 30 });
    expect(result).toMatchObject({ contents: 13, events: 26, sessions: 0, checkpoint: null, refused: null });
    expect(await contentsLeft([...ancient, ...old, ...late])).toBe(0);
    expect(await contentsLeft(recent)).toBe(10 + 5);
    expect(await cp.db.session.count()).toBe(18);
    const kept = await cp.db.session.findUniqueOrThrow({ where: { id: old[0]?.sessionId } });
    expect(kept).toMatchObject({ decision: "allowed", subjectId: "alice", model: "llama-3.1-8b-instruct" });
    expect(await verifyChain(cp.db)).toMatchObject({ status: "ok", checked: 18, contentPurged: 13 });
    // Purged content cannot be edited, but its digest still can: that shows.
    const target = old[2]?.sessionId as string;
    const saved = await cp.db.session.findUniqueOrThrow({ where: { id: target } });
    await cp.db.$executeRaw`UPDATE sessions SET content_digest = ${"0".repeat(64)} WHERE id = ${target}`;
    expect(await verifyChain(cp.db)).toMatchObject({
      status: "broken",
      firstBrokenAt: { sessionId: target, reason: "hash_mismatch", part: "metadata" },
    });
    await cp.db.$executeRaw`UPDATE sessions SET content_digest = ${saved.contentDigest} WHERE id = ${target}`;
  });

  it("refuses to purge sessions over a broken link, deleting nothing", async () => {
    const target = ancient[3]?.sessionId as string;
    await cp.db.$executeRaw`UPDATE sessions SET decision = 'blocked' WHERE id = ${target}`;
    const result = await purge();
    expect(result.refused).toMatchObject({ sessionId: target, reason: "hash_mismatch" });
    expect(result.sessions).toBe(0);
    expect(await sessionsLeft(ancient)).toBe(7);
    expect(await cp.db.auditCheckpoint.count({ where: { kind: "chain" } })).toBe(0);
    await cp.db.$executeRaw`UPDATE sessions SET decision = 'allowed' WHERE id = ${target}`;
  });

  it("purges old sessions after a checkpoint at the cut, and verification starts there", async () => {
    const cut = await cp.db.session.findUniqueOrThrow({ where: { id: ancient.at(-1)?.sessionId } });
    // A walk in parts (the CLI's) that this purge overtakes.
    const firstPart = await verifyChain(cp.db, { limit: 3 });
    expect(firstPart).toMatchObject({ status: "ok", complete: false, lastChainSeq: 3 });
    const result = await purge();
    expect(result).toMatchObject({ sessions: 7, checkpoint: { chainSeq: 7, hash: cut.hash }, refused: null });
    // It goes on at the checkpoint instead of reporting the purged sessions missing.
    const nextPart =
      firstPart.status === "ok"
        ? await verifyChain(cp.db, { from: 4n, prevHash: firstPart.headHash ?? undefined, limit: 100 })
        : undefined;
    expect(nextPart).toMatchObject({ status: "ok", complete: true, checked: 11 });
    expect(await sessionsLeft(ancient)).toBe(0);
    // The late record is chained after sessions still kept: it waits for them.
    expect(await sessionsLeft([...old, ...recent, ...late])).toBe(11);
    expect(await cp.db.auditCheckpoint.findFirst({ where: { kind: "chain" } })).toMatchObject({
      chainSeq: 7n,
      hash: cut.hash,
      createdBy: "test",
    });
    expect(await verifyChain(cp.db)).toMatchObject({
      status: "ok",
      checked: 11,
      start: { kind: "checkpoint", chainSeq: 8, prevHash: cut.hash },
    });
    // Asked to start inside the purged part, it starts at the checkpoint.
    expect(await verifyChain(cp.db, { from: 3n })).toMatchObject({
      status: "ok",
      checked: 11,
      start: { kind: "checkpoint", chainSeq: 8 },
    });
  });

  it("removes settled approvals' prompts with the content, and the approvals with the metadata, never a pending one", async () => {
    const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
    const approval = (requestedDaysAgo: number, extra: Record<string, unknown> = {}) =>
      cp.db.approval.create({
        data: {
          id: randomUUID(),
          status: "denied",
          subjectKey: "k",
          subjectId: "alice",
          subjectGroups: [],
          authMethod: "oidc",
          connection: "llama",
          model: "m",
          operation: "inference",
          policyId: randomUUID(),
          policyName: "p",
          reason: "r",
          bodySha256: "0".repeat(64),
          prompt: "export all customer records",
          dedupeKey: randomBytes(32).toString("hex"),
          approverGroups: ["security"],
          minApprovals: 1,
          grantKind: "request",
          requestSessionId: randomUUID(),
          gatewayId: "gw",
          requestedAt: daysAgo(requestedDaysAgo),
          expiresAt: daysAgo(requestedDaysAgo - 1),
          ...extra,
        },
      });
    const ancientSettled = await approval(100);
    const oldSettled = await approval(40);
    const oldPending = await approval(40, { status: "pending", expiresAt: daysAgo(-1) });
    // Requested long ago, its window grant runs past the metadata cut-off: still in use.
    const stillGranting = await approval(100, { status: "approved", grantKind: "window", grantExpiresAt: daysAgo(-1) });
    const recent = await approval(1);
    const result = await purge();
    expect(result).toMatchObject({ approvalPrompts: 3, approvals: 1 });
    const left = await cp.db.approval.findMany({ select: { id: true, prompt: true, promptTruncated: true } });
    const byId = new Map(left.map((row) => [row.id, row]));
    expect(byId.has(ancientSettled.id)).toBe(false);
    expect(byId.get(oldSettled.id)).toEqual({ id: oldSettled.id, prompt: "", promptTruncated: true });
    expect(byId.get(stillGranting.id)?.prompt).toBe("");
    expect(byId.get(oldPending.id)?.prompt).toBe("export all customer records");
    expect(byId.get(recent.id)?.prompt).toBe("export all customer records");
  });

  it("is idempotent: a second run deletes nothing and writes no checkpoint", async () => {
    const checkpoints = await cp.db.auditCheckpoint.count();
    expect(await purge()).toEqual({
      contents: 0,
      events: 0,
      sessions: 0,
      approvalPrompts: 0,
      approvals: 0,
      usageRows: 0,
      checkpoint: null,
      refused: null,
    });
    expect(await cp.db.auditCheckpoint.count()).toBe(checkpoints);
    expect(await verifyChain(cp.db)).toMatchObject({ status: "ok", checked: 11 });
  });

  describe("as a BullMQ job", () => {
    let retention: RunningRetention;
    let inspect: Queue;
    const finished = async (jobId: string) => {
      await until(async () => ["completed", "failed"].includes(await inspect.getJobState(jobId)));
      const job = await inspect.getJob(jobId);
      expect(job?.failedReason).toBeUndefined();
      return job?.returnvalue;
    };

    beforeAll(async () => {
      inspect = new Queue(RETENTION_QUEUE, { connection: { url: REDIS_URL }, prefix });
      // A long interval: the test runs the purge itself, with runNow.
      retention = await startRetention({ redisUrl: REDIS_URL, db: cp.db, policy, logger, prefix, everyMs: DAY_MS });
    });
    afterAll(async () => {
      await retention.close();
      await inspect.obliterate({ force: true });
      await inspect.close();
    });

    it("is scheduled once however many control planes start, and purges on each run", async () => {
      const second = await startRetention({ redisUrl: REDIS_URL, db: cp.db, policy, logger, prefix, everyMs: DAY_MS });
      await second.close();
      const schedulers = await inspect.getJobSchedulers();
      expect(schedulers.map((scheduler) => scheduler.key)).toEqual([RETENTION_SCHEDULER_ID]);
      // BullMQ runs an `every` scheduler once at once: let that run finish, so
      // that the runs below are the ones that meet the new expired session.
      await until(async () => {
        const {
          completed = 0,
          wait = 0,
          active = 0,
          prioritized = 0,
        } = await inspect.getJobCounts("completed", "wait", "active", "prioritized");
        const dueSoon = (await inspect.getDelayed()).filter((job) => job.timestamp + job.delay < Date.now() + 60_000);
        return completed >= 1 && wait + active + prioritized === 0 && dueSoon.length === 0;
      });

      const expired = [record(45)];
      await writeAll(store, expired);
      expect(await contentsLeft(expired)).toBe(3);
      expect(await finished(await retention.runNow())).toMatchObject({ contents: 1, events: 2, sessions: 0 });
      expect(await contentsLeft(expired)).toBe(0);
      expect(await sessionsLeft(expired)).toBe(1);
      expect(await finished(await retention.runNow())).toEqual({
        contents: 0,
        events: 0,
        sessions: 0,
        approvalPrompts: 0,
        approvals: 0,
        usageRows: 0,
        checkpoint: null,
        refused: null,
      });
      expect(await verifyChain(cp.db)).toMatchObject({ status: "ok", checked: 12 });
    });
  });
});
