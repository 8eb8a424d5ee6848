// Usage accounting on real Postgres: the session columns the store fills
// from a record, their place in the hash chain (sessions hashed before they
// existed still verify), the rollup the store keeps in the same transaction,
// and GET /api/v1/usage over it.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { type AuditRecord, SESSION_COLUMNS } from "@modelgate/audit";
import { uuidv7 } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import { OidcVerifier } from "@modelgate/identity";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import {
  CHAINED_FIELDS,
  CURRENT_CHAIN_VERSION,
  linkHash,
  metadataDigest,
  NOT_CHAINED_COLUMNS,
} from "../src/features/audit-integrity/chain.js";
import { purgeExpired } from "../src/features/audit-integrity/retention.js";
import { verifyChain } from "../src/features/audit-integrity/verify.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const run = promisify(execFile);
const AUDIENCE = "https://modelgate.test/api";
const HOUR_MS = 3_600_000;
const DAY = Date.parse("2026-03-02T00:00:00.000Z");

function record(at: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt: new Date(at).toISOString(),
    firstByteAt: new Date(at + 10).toISOString(),
    finishedAt: new Date(at + 300).toISOString(),
    subject: {
      id: "alice",
      email: "alice@example.com",
      name: "Alice Liddell",
      groups: ["data-science", "ops"],
      authMethod: "oidc",
    },
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "allowed",
    policyIds: [],
    capped: [],
    responseStatus: 200,
    latencyMs: 300,
    ttfbMs: 10,
    usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    response: { text: "Hi", truncated: false, bytes: 2 },
    events: [
      { offsetMs: 25, data: 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n' },
      { offsetMs: 30, data: "data: [DONE]\n\n" },
    ],
    ...overrides,
  };
}

/** The `sessions` columns that are neither in the current chained record nor deliberately left out of it. */
async function unchainedColumns(db: Database): Promise<string[]> {
  const columns = await db.$queryRaw<{ column_name: string }[]>`
    SELECT column_name FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'sessions' ORDER BY column_name`;
  const chained = new Set(CHAINED_FIELDS[CURRENT_CHAIN_VERSION].map((field) => SESSION_COLUMNS[field]));
  return columns
    .map((column) => column.column_name)
    .filter((column) => !chained.has(column as never) && !(column in NOT_CHAINED_COLUMNS));
}

describe("usage accounting", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  const store = () => createSessionStore({ db: cp.db });

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(async () => {
    await cp?.close();
  });

  describe("the session columns and the hash chain", () => {
    it("chains every stored session column: a column outside the chained record fails this test", async () => {
      // Every field the store writes is in the record the store hashes...
      expect([...CHAINED_FIELDS[CURRENT_CHAIN_VERSION]].sort()).toEqual(Object.keys(SESSION_COLUMNS).sort());
      // ...and every column of the table is one of them, or listed (with its reason) as not chained.
      expect(await unchainedColumns(cp.db)).toEqual([]);
      // What a column added without a new chain version looks like here.
      await cp.db.$executeRawUnsafe("ALTER TABLE sessions ADD COLUMN cost_cents integer");
      try {
        expect(await unchainedColumns(cp.db)).toEqual(["cost_cents"]);
      } finally {
        await cp.db.$executeRawUnsafe("ALTER TABLE sessions DROP COLUMN cost_cents");
      }
    });

    it("stores tokens, time to first token and the display name, covered by the chain", async () => {
      const stored = record(DAY + 5 * HOUR_MS);
      expect(await store().write(stored)).toBe("stored");
      const answer = await api("GET", `/api/v1/sessions/${stored.sessionId}`);
      expect(answer.body).toMatchObject({
        subject: { id: "alice", name: "Alice Liddell", email: "alice@example.com" },
        ttfbMs: 10,
        ttftMs: 25,
        latencyMs: 300,
        usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15 },
      });
      const [row] = await cp.db.$queryRaw<{ chain_version: number }[]>`
        SELECT chain_version FROM sessions WHERE id = ${stored.sessionId}`;
      expect(row?.chain_version).toBe(2);
      expect(await verifyChain(cp.db)).toMatchObject({ status: "ok" });

      for (const [column, value] of [
        ["prompt_tokens", 1],
        ["total_tokens", 9999],
        ["ttft_ms", 1],
        ["subject_name", "Mallory"],
      ] as const) {
        await cp.db.$executeRawUnsafe(`UPDATE sessions SET ${column} = $1 WHERE id = $2`, value, stored.sessionId);
        expect(await verifyChain(cp.db)).toMatchObject({
          status: "broken",
          firstBrokenAt: { sessionId: stored.sessionId, reason: "hash_mismatch", part: "metadata" },
        });
        await cp.db.$executeRaw`
          UPDATE sessions SET prompt_tokens = 10, total_tokens = 15, ttft_ms = 25, subject_name = 'Alice Liddell'
          WHERE id = ${stored.sessionId}`;
      }
      expect(await verifyChain(cp.db)).toMatchObject({ status: "ok" });
    });

    it("verifies sessions hashed before the usage columns (chain version 1), and refuses a value planted in them", async () => {
      const old = record(DAY + 6 * HOUR_MS);
      expect(await store().write(old)).toBe("stored");
      // Rewrite the session, the chain's last, as a control plane before the
      // migration stored it: the usage columns null, hashed with version 1.
      const [row] = await cp.db.$queryRawUnsafe<Record<string, unknown>[]>(
        `SELECT ${Object.values(SESSION_COLUMNS).join(", ")}, chain_seq, prev_hash, content_digest
           FROM sessions WHERE id = $1`,
        old.sessionId,
      );
      if (!row) throw new Error("not stored");
      const fields = Object.fromEntries(
        Object.entries(SESSION_COLUMNS).map(([field, column]) => [field, row[column]]),
      ) as Record<string, unknown>;
      const v1Hash = linkHash({
        version: 1,
        chainSeq: row.chain_seq as bigint,
        prevHash: row.prev_hash as string,
        metadataDigest: metadataDigest(fields, 1),
        contentDigest: row.content_digest as string,
      });
      await cp.db.$executeRaw`
        UPDATE sessions SET chain_version = 1, hash = ${v1Hash}, subject_name = NULL, prompt_tokens = NULL,
          completion_tokens = NULL, total_tokens = NULL, ttft_ms = NULL
        WHERE id = ${old.sessionId}`;
      await cp.db.$executeRaw`UPDATE audit_chain_head SET hash = ${v1Hash} WHERE id = 1`;
      expect(await verifyChain(cp.db)).toMatchObject({ status: "ok" });
      const independent = () =>
        run("python3", [path.resolve(import.meta.dirname, "../../../scripts/audit-chain-verify.py"), cp.database.url])
          .then(({ stdout }) => stdout.trim())
          .catch((error: { stdout?: string }) => error.stdout?.trim());
      expect(await independent()).toMatch(/^ok: /);

      // A value in a column version 1 never hashed would be covered by nothing.
      await cp.db.$executeRaw`UPDATE sessions SET total_tokens = 123456 WHERE id = ${old.sessionId}`;
      expect(await verifyChain(cp.db)).toMatchObject({
        status: "broken",
        firstBrokenAt: {
          sessionId: old.sessionId,
          reason: "hash_mismatch",
          part: "metadata",
          detail: "chain version 1 does not cover totalTokens, which the session has",
        },
      });
      expect(await independent()).toMatch(/hash_mismatch \(metadata\)/);
      await cp.db.$executeRaw`UPDATE sessions SET total_tokens = NULL WHERE id = ${old.sessionId}`;
      // Claiming the other version breaks the link too: the version is in its first line.
      await cp.db.$executeRaw`UPDATE sessions SET chain_version = 2 WHERE id = ${old.sessionId}`;
      expect(await verifyChain(cp.db)).toMatchObject({ status: "broken", firstBrokenAt: { reason: "hash_mismatch" } });
      await cp.db.$executeRaw`UPDATE sessions SET chain_version = 1 WHERE id = ${old.sessionId}`;
      expect(await verifyChain(cp.db)).toMatchObject({ status: "ok" });
    });
  });

  describe("GET /api/v1/usage", () => {
    let usageCp: RunningControlPlane;
    let call: ReturnType<typeof apiClient>;
    const bob: AuditRecord["subject"] = { id: "key-1", name: "ci-bot", groups: ["ops"], authMethod: "api_key" };

    beforeAll(async () => {
      usageCp = await startControlPlane();
      call = apiClient(usageCp);
      const write = createSessionStore({ db: usageCp.db });
      const records = [
        // Day 1, 10:00: alice twice on llama, once on mistral; bob once.
        record(DAY + 10 * HOUR_MS),
        record(DAY + 10 * HOUR_MS + 60_000),
        record(DAY + 10 * HOUR_MS + 120_000, {
          model: "mistral-7b",
          usage: { prompt_tokens: 100, completion_tokens: 50 },
        }),
        record(DAY + 10 * HOUR_MS + 180_000, { subject: bob, usage: { prompt_tokens: 1, completion_tokens: 1 } }),
        // Day 1, 11:00: bob, refused (no usage).
        record(DAY + 11 * HOUR_MS, { subject: bob, decision: "denied", responseStatus: 403, usage: undefined }),
        // Day 2, 09:00: alice; an unauthenticated refusal without subject, connection or model.
        record(DAY + 33 * HOUR_MS),
        record(DAY + 33 * HOUR_MS + 1, {
          subject: undefined,
          connection: undefined,
          model: undefined,
          decision: "denied",
          responseStatus: 401,
          usage: undefined,
        }),
      ];
      expect(await Promise.all(records.map((item) => write.write(item)))).toEqual(records.map(() => "stored"));
      // Delivered again (a retried job): counted once.
      expect(await write.write(records[0] as AuditRecord)).toBe("duplicate");
    });
    afterAll(async () => {
      await usageCp?.close();
    });

    const usage = async (query: string) => {
      const answer = await call("GET", `/api/v1/usage?${query}`);
      expect(answer.status).toBe(200);
      return answer.body;
    };
    const range = `from=${new Date(DAY).toISOString()}&to=${new Date(DAY + 2 * 24 * HOUR_MS).toISOString()}`;

    it("groups by subject per day, ranked by tokens, with the display name", async () => {
      expect(await usage(`groupBy=subject&interval=day&${range}`)).toEqual({
        groupBy: "subject",
        interval: "day",
        from: "2026-03-02T00:00:00.000Z",
        to: "2026-03-04T00:00:00.000Z",
        more: false,
        groups: [
          {
            key: "alice",
            label: "Alice Liddell",
            total: { requests: 4, promptTokens: 130, completionTokens: 65, totalTokens: 195 },
            buckets: [
              {
                start: "2026-03-02T00:00:00.000Z",
                requests: 3,
                promptTokens: 120,
                completionTokens: 60,
                totalTokens: 180,
              },
              {
                start: "2026-03-03T00:00:00.000Z",
                requests: 1,
                promptTokens: 10,
                completionTokens: 5,
                totalTokens: 15,
              },
            ],
          },
          {
            key: "key-1",
            label: "ci-bot",
            total: { requests: 2, promptTokens: 1, completionTokens: 1, totalTokens: 2 },
            buckets: [
              { start: "2026-03-02T00:00:00.000Z", requests: 2, promptTokens: 1, completionTokens: 1, totalTokens: 2 },
            ],
          },
          {
            key: null,
            label: null,
            total: { requests: 1, promptTokens: 0, completionTokens: 0, totalTokens: 0 },
            buckets: [
              { start: "2026-03-03T00:00:00.000Z", requests: 1, promptTokens: 0, completionTokens: 0, totalTokens: 0 },
            ],
          },
        ],
      });
    });

    it("groups by hour; a day is the sum of its hours", async () => {
      const hourly = await usage(`groupBy=model&interval=hour&${range}`);
      const daily = await usage(`groupBy=model&interval=day&${range}`);
      const llama = hourly.groups.find((group: { key: string }) => group.key === "llama-3.1-8b-instruct");
      expect(
        llama.buckets.map((bucket: { start: string; requests: number }) => [bucket.start, bucket.requests]),
      ).toEqual([
        ["2026-03-02T10:00:00.000Z", 3],
        ["2026-03-02T11:00:00.000Z", 1],
        ["2026-03-03T09:00:00.000Z", 1],
      ]);
      for (const group of daily.groups) {
        const hours = hourly.groups.find((other: { key: string | null }) => other.key === group.key);
        expect(hours.total).toEqual(group.total);
      }
    });

    it("counts a session in each of its subject's groups, and by connection", async () => {
      const groups = await usage(`groupBy=group&${range}`);
      expect(
        groups.groups.map((group: { key: string; total: { requests: number } }) => [group.key, group.total.requests]),
      ).toEqual([
        ["ops", 6],
        ["data-science", 4],
      ]);
      const connections = await usage(`groupBy=connection&${range}`);
      expect(
        connections.groups.map((group: { key: string | null; total: { totalTokens: number } }) => [
          group.key,
          group.total.totalTokens,
        ]),
      ).toEqual([
        ["llama", 197],
        [null, 0],
      ]);
    });

    it("answers the range rounded to whole buckets, and only the groups asked for", async () => {
      const narrow = await usage(
        `groupBy=subject&interval=hour&from=2026-03-02T10:30:00Z&to=2026-03-02T10:45:00%2B00:00&limit=1`,
      );
      expect(narrow).toMatchObject({ from: "2026-03-02T10:00:00.000Z", to: "2026-03-02T11:00:00.000Z", more: true });
      expect(narrow.groups).toEqual([
        expect.objectContaining({
          key: "alice",
          total: { requests: 3, promptTokens: 120, completionTokens: 60, totalTokens: 180 },
        }),
      ]);
      const empty = await usage("groupBy=model&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z");
      expect(empty).toMatchObject({ groups: [], more: false });
    });

    it.each([
      ["groupBy=team&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "query.groupBy"],
      ["from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "query.groupBy"],
      ["groupBy=model&to=2026-03-02T00:00:00Z", "query.from"],
      ["groupBy=model&from=yesterday&to=2026-03-02T00:00:00Z", "query.from"],
      ["groupBy=model&from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "query.to"],
      ["groupBy=model&from=2025-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "query.to"],
      ["groupBy=model&interval=hour&from=2026-01-01T00:00:00Z&to=2026-04-15T00:00:00Z", "query.to"],
      ["groupBy=model&interval=week&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "query.interval"],
      ["groupBy=model&limit=0&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "query.limit"],
      ["groupBy=model&limit=101&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "query.limit"],
      ["groupBy=model&user=x&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "query"],
    ])("refuses %s with 400", async (query, field) => {
      const answer = await call("GET", `/api/v1/usage?${query}`);
      expectProblem(answer, 400, "invalid_request");
      expect(JSON.stringify(answer.body)).toContain(field);
    });

    it("keeps usage through a content purge, and drops it with the sessions' metadata", async () => {
      const now = new Date(DAY + 40 * 24 * HOUR_MS);
      const noop = { info() {}, warn() {}, error() {}, debug() {} } as never;
      await purgeExpired({ db: usageCp.db, policy: { contentDays: 1 }, logger: noop, by: "test", now });
      expect((await usage(`groupBy=connection&${range}`)).groups).toHaveLength(2);
      const result = await purgeExpired({
        db: usageCp.db,
        policy: { contentDays: 1, metadataDays: 30 },
        logger: noop,
        by: "test",
        now,
      });
      expect(result.sessions).toBe(7);
      expect(result.usageRows).toBeGreaterThan(0);
      expect((await usage(`groupBy=connection&${range}`)).groups).toEqual([]);
      expect(await usageCp.db.usageRollup.count()).toBe(0);
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
      await createSessionStore({ db: oidcCp.db }).write(record(DAY));
    });
    afterAll(async () => {
      await oidcCp?.close();
      verifier?.close();
      await idp?.close();
    });

    it("auditors and admins read usage; approvers and others are refused", async () => {
      const call = apiClient(oidcCp);
      const query = `/api/v1/usage?groupBy=subject&from=${new Date(DAY).toISOString()}&to=${new Date(DAY + HOUR_MS).toISOString()}`;
      for (const groups of [["mg-auditors"], ["mg-admins"]]) {
        const token = await idp.mintAccessToken({ subject: "dora", email: "dora@example.com", groups });
        const answer = await call("GET", query, { token });
        expect(answer.status).toBe(200);
        expect(answer.body.groups).toHaveLength(1);
      }
      for (const groups of [["mg-approvers"], []]) {
        const token = await idp.mintAccessToken({ subject: "erin", email: "erin@example.com", groups });
        expectProblem(await call("GET", query, { token }), 403, "forbidden");
      }
      expectProblem(await call("GET", query, { token: null }), 401, "unauthenticated");
    });
  });
});
