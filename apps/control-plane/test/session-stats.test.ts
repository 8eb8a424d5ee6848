// The Overview's statistics (GET /sessions/stats) on a real Postgres:
// sessions stored at known instants with known decisions and masking, read
// by the service at a fixed clock (so bucket edges can be tested to the
// millisecond), and through the HTTP API at the real one.
import type { AuditRecord } from "@modelgate/audit";
import { uuidv7 } from "@modelgate/core";
import { OidcVerifier } from "@modelgate/identity";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import { createSessionService } from "../src/features/sessions/service.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const AUDIENCE = "https://modelgate.test/api";

function record(receivedAt: string, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt,
    finishedAt: receivedAt,
    subject: { id: "alice", groups: [], authMethod: "api_key" },
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "allowed",
    policyIds: [],
    capped: [],
    responseStatus: 200,
    latencyMs: 10,
    events: [],
    ...overrides,
  };
}

/** A refusal as the gateway records it: its decision, the error code it answered, and a free-text reason. */
function refusal(
  receivedAt: string,
  decision: AuditRecord["decision"],
  code: string,
  extra: Partial<AuditRecord> = {},
) {
  return record(receivedAt, {
    decision,
    reason: `policy ${uuidv7()} says no`,
    responseStatus: 403,
    error: { code, message: code.replaceAll("_", " ") },
    ...extra,
  });
}

/** The fixed clock: the hour window is [11:31, 12:31), the day window [05-09 12:45, 05-10 12:45). */
const NOW = new Date("2026-05-10T12:30:20.000Z");

const zeros = { requests: 0, refused: 0, masked: 0 };

describe("session statistics", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  const stats = (window: "hour" | "day") => createSessionService({ db: cp.db, now: () => NOW }).stats({ window });

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(async () => {
    await cp.close();
  });

  it("answers every bucket as zeros on an empty database", async () => {
    const hour = await stats("hour");
    expect(hour).toMatchObject({
      window: "hour",
      from: "2026-05-10T11:31:00.000Z",
      to: "2026-05-10T12:31:00.000Z",
      bucketSeconds: 60,
      totals: zeros,
      refusalsByReason: [],
      byConnection: [],
    });
    expect(hour.buckets).toHaveLength(60);
    expect(hour.buckets[0]).toEqual({ start: "2026-05-10T11:31:00.000Z", ...zeros });
    expect(hour.buckets[59]).toEqual({ start: "2026-05-10T12:30:00.000Z", ...zeros });

    const day = await stats("day");
    expect(day).toMatchObject({
      from: "2026-05-09T12:45:00.000Z",
      to: "2026-05-10T12:45:00.000Z",
      bucketSeconds: 900,
      totals: zeros,
    });
    expect(day.buckets).toHaveLength(96);
    expect(day.buckets.every((bucket) => bucket.requests + bucket.refused + bucket.masked === 0)).toBe(true);
    expect(day.buckets.map((bucket) => Date.parse(bucket.start) - Date.parse(day.from))).toEqual(
      Array.from({ length: 96 }, (_, index) => index * 900_000),
    );

    // Through the API too, at the real clock.
    const answer = await api("GET", "/api/v1/sessions/stats?window=day");
    expect(answer.status).toBe(200);
    expect(answer.body.buckets).toHaveLength(96);
    expect(answer.body.totals).toEqual(zeros);
    expect(Date.parse(answer.body.from) % 900_000).toBe(0);
    expect(Date.parse(answer.body.to) - Date.parse(answer.body.from)).toBe(86_400_000);
  });

  describe("with sessions", () => {
    beforeAll(async () => {
      const store = createSessionStore({ db: cp.db });
      const records = [
        // The hour window's edges: from is in, to is out.
        record("2026-05-10T11:30:59.999Z"),
        record("2026-05-10T11:31:00.000Z"),
        refusal("2026-05-10T12:30:59.999Z", "blocked", "prompt_blocked"),
        record("2026-05-10T12:31:00.000Z"),
        // Minute 12:00: masked answers, one recorded as approved; a zero count is no masking.
        record("2026-05-10T12:00:30.000Z", { connection: "mistral", decision: "masked", maskedCounts: { EMAIL: 2 } }),
        record("2026-05-10T12:00:45.000Z", {
          connection: "mistral",
          decision: "approved",
          maskedCounts: { PERSON: 1 },
        }),
        record("2026-05-10T12:00:50.000Z", { connection: "mistral", maskedCounts: { EMAIL: 0 } }),
        // Minute 12:10: every kind of refusal, and a failure that is none.
        refusal("2026-05-10T12:10:00.000Z", "denied", "unauthenticated", { connection: undefined, subject: undefined }),
        refusal("2026-05-10T12:10:10.000Z", "rate_limited", "rate_limited"),
        refusal("2026-05-10T12:10:20.000Z", "approval_required", "approval_required"),
        refusal("2026-05-10T12:10:25.000Z", "denied", "approval_denied"),
        record("2026-05-10T12:10:30.000Z", {
          decision: "error",
          responseStatus: 502,
          error: { code: "upstream_error", message: "x" },
        }),
        // A refusal recorded without an error code: grouped by its decision.
        record("2026-05-10T12:10:40.000Z", { decision: "denied", reason: "no grant", responseStatus: 403 }),
        refusal("2026-05-10T12:10:50.000Z", "blocked", "prompt_blocked"),
        // The day window's edges, and a session in neither window.
        record("2026-05-09T12:44:59.999Z"),
        refusal("2026-05-09T12:45:00.000Z", "blocked", "model_not_allowed", { connection: "mistral" }),
        record("2026-05-01T00:00:00.000Z"),
      ];
      for (const item of records) await store.write(item);
    });

    it("counts each session in its minute of the last hour, and none outside it", async () => {
      const hour = await stats("hour");
      const at = (start: string) => hour.buckets.find((bucket) => bucket.start === start);
      expect(hour.buckets).toHaveLength(60);
      expect(at("2026-05-10T11:31:00.000Z")).toEqual({
        start: "2026-05-10T11:31:00.000Z",
        requests: 1,
        refused: 0,
        masked: 0,
      });
      expect(at("2026-05-10T12:00:00.000Z")).toEqual({
        start: "2026-05-10T12:00:00.000Z",
        requests: 3,
        refused: 0,
        masked: 2,
      });
      expect(at("2026-05-10T12:10:00.000Z")).toEqual({
        start: "2026-05-10T12:10:00.000Z",
        requests: 7,
        refused: 6,
        masked: 0,
      });
      expect(at("2026-05-10T12:30:00.000Z")).toEqual({
        start: "2026-05-10T12:30:00.000Z",
        requests: 1,
        refused: 1,
        masked: 0,
      });
      const busy = [
        "2026-05-10T11:31:00.000Z",
        "2026-05-10T12:00:00.000Z",
        "2026-05-10T12:10:00.000Z",
        "2026-05-10T12:30:00.000Z",
      ];
      expect(
        hour.buckets.filter((bucket) => !busy.includes(bucket.start)).every((bucket) => bucket.requests === 0),
      ).toBe(true);
      expect(hour.totals).toEqual({ requests: 12, refused: 7, masked: 2 });
      expect(hour.refusalsByReason).toEqual([
        { reason: "prompt_blocked", count: 2 },
        { reason: "approval_denied", count: 1 },
        { reason: "approval_required", count: 1 },
        { reason: "denied", count: 1 },
        { reason: "rate_limited", count: 1 },
        { reason: "unauthenticated", count: 1 },
      ]);
      expect(hour.byConnection).toEqual([
        { connection: "llama", requests: 8, refused: 6 },
        { connection: "mistral", requests: 3, refused: 0 },
        { connection: null, requests: 1, refused: 1 },
      ]);
    });

    it("counts the last day in quarter hours", async () => {
      const day = await stats("day");
      expect(day.buckets).toHaveLength(96);
      expect(day.buckets[0]).toEqual({ start: "2026-05-09T12:45:00.000Z", requests: 1, refused: 1, masked: 0 });
      // 11:30:59.999 and 11:31 share the quarter from 11:30.
      expect(day.buckets.find((bucket) => bucket.start === "2026-05-10T11:30:00.000Z")?.requests).toBe(2);
      // 12:00:30 to 12:10:50: one quarter.
      expect(day.buckets[93]).toEqual({ start: "2026-05-10T12:00:00.000Z", requests: 10, refused: 6, masked: 2 });
      // 12:30:59.999 and 12:31: the last quarter, which holds now.
      expect(day.buckets[95]).toEqual({ start: "2026-05-10T12:30:00.000Z", requests: 2, refused: 1, masked: 0 });
      expect(day.totals).toEqual({ requests: 15, refused: 8, masked: 2 });
      expect(day.buckets.reduce((sum, bucket) => sum + bucket.requests, 0)).toBe(15);
      expect(day.refusalsByReason[0]).toEqual({ reason: "prompt_blocked", count: 2 });
      expect(day.refusalsByReason).toContainEqual({ reason: "model_not_allowed", count: 1 });
      expect(day.byConnection[1]).toEqual({ connection: "mistral", requests: 4, refused: 1 });
    });

    it("keeps the top 10 reasons and the top 20 connections, most first", async () => {
      const store = createSessionStore({ db: cp.db });
      // 25 connections with 1..25 refusals each, each with its own code, in another hour.
      for (let index = 1; index <= 25; index += 1) {
        for (let repeat = 0; repeat < index; repeat += 1) {
          const second = String(repeat % 60).padStart(2, "0");
          await store.write(
            refusal(`2026-05-11T09:${String(index).padStart(2, "0")}:${second}.000Z`, "blocked", `code_${index}`, {
              connection: `conn-${index}`,
            }),
          );
        }
      }
      const service = createSessionService({ db: cp.db, now: () => new Date("2026-05-11T09:59:00.000Z") });
      const hour = await service.stats({ window: "hour" });
      expect(hour.totals).toEqual({ requests: 325, refused: 325, masked: 0 });
      expect(hour.refusalsByReason).toEqual(
        Array.from({ length: 10 }, (_, index) => ({ reason: `code_${25 - index}`, count: 25 - index })),
      );
      expect(hour.byConnection.map((item) => item.connection)).toEqual(
        Array.from({ length: 20 }, (_, index) => `conn-${25 - index}`),
      );
      expect(hour.byConnection[0]).toEqual({ connection: "conn-25", requests: 25, refused: 25 });
    });

    it("reads the window at the real clock through the API", async () => {
      const store = createSessionStore({ db: cp.db });
      const recent = new Date(Date.now() - 3 * 3600_000);
      await store.write(record(recent.toISOString(), { connection: "recent" }));
      await store.write(record(new Date(Date.now() - 2 * 86_400_000).toISOString(), { connection: "recent" }));
      const answer = await api("GET", "/api/v1/sessions/stats?window=day");
      expect(answer.status).toBe(200);
      const { from, bucketSeconds, buckets } = answer.body;
      const index = Math.floor((recent.getTime() - Date.parse(from)) / (bucketSeconds * 1000));
      expect(buckets[index]).toMatchObject({ requests: 1 });
      expect(answer.body.totals).toEqual({ requests: 1, refused: 0, masked: 0 });
      expect(answer.body.byConnection).toEqual([{ connection: "recent", requests: 1, refused: 0 }]);

      // The window defaults to the hour, which holds neither.
      const hour = await api("GET", "/api/v1/sessions/stats");
      expect(hour.body).toMatchObject({ window: "hour", bucketSeconds: 60, totals: zeros });
      expect(hour.body.buckets).toHaveLength(60);
    });
  });

  it("refuses an unknown window or parameter, naming the field", async () => {
    for (const path of ["/api/v1/sessions/stats?window=week", "/api/v1/sessions/stats?window="]) {
      const answer = await api("GET", path);
      expectProblem(answer, 400, "invalid_request");
      expect(answer.body.errors).toEqual([{ path: "query.window", message: expect.any(String) }]);
    }
    const unknown = await api("GET", "/api/v1/sessions/stats?windw=day");
    expectProblem(unknown, 400, "invalid_request");
    expect(unknown.body.errors).toEqual([{ path: "query", message: expect.stringContaining("windw") }]);
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
    });
    afterAll(async () => {
      await oidcCp.close();
      verifier.close();
      await idp.close();
    });

    it("answers auditors and admins; an approver gets 403", async () => {
      const call = apiClient(oidcCp);
      for (const groups of [["mg-auditors"], ["mg-admins"]]) {
        const token = await idp.mintAccessToken({ subject: "dora", groups });
        expect((await call("GET", "/api/v1/sessions/stats", { token })).status).toBe(200);
      }
      for (const groups of [["mg-approvers"], ["data-science"]]) {
        const token = await idp.mintAccessToken({ subject: "eve", groups });
        expectProblem(await call("GET", "/api/v1/sessions/stats?window=day", { token }), 403, "forbidden");
      }
      expectProblem(await call("GET", "/api/v1/sessions/stats", { token: null }), 401, "unauthenticated");
    });
  });
});
