// Every API change to what gateways enforce gets exactly one configuration
// revision, naming the entities it touched, in the transaction that makes
// it; changes gateways do not enforce get none, and neither does a request
// that changes nothing or fails.
import { apiClient, type RunningControlPlane, startControlPlane } from "./harness.js";

describe("configuration changes", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  async function head(): Promise<number> {
    return Number((await cp.db.configHead.findUniqueOrThrow({ where: { id: 1 } })).revision);
  }

  /** Runs one request; returns what the revisions it added name, one list per revision. */
  async function changesOf(request: () => Promise<{ status: number }>, status: number) {
    const before = await head();
    expect((await request()).status).toBe(status);
    const rows = await cp.db.configChange.findMany({
      where: { revision: { gt: BigInt(before) } },
      orderBy: [{ revision: "asc" }, { kind: "asc" }, { entityId: "asc" }],
    });
    const revisions = new Map<number, string[]>();
    for (const row of rows) {
      const named = revisions.get(Number(row.revision)) ?? [];
      named.push(`${row.kind}:${row.entityId}`);
      revisions.set(Number(row.revision), named);
    }
    expect([...revisions.keys()]).toEqual(Array.from({ length: revisions.size }, (_, index) => before + index + 1));
    expect(await head()).toBe(before + revisions.size);
    return [...revisions.values()];
  }

  const policyBody = (name: string, enabled = true) => ({
    name,
    enabled,
    subjects: { groups: ["ops"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
  });

  it("records one revision per change to connections, agents, API keys and policies", async () => {
    const connection = { name: "llama", protocol: "openai", models: ["m"] };
    expect(await changesOf(() => api("POST", "/api/v1/connections", { body: connection }), 201)).toEqual([
      [expect.stringMatching(/^connection:/)],
    ]);
    const connectionId = (await cp.db.connection.findUniqueOrThrow({ where: { name: "llama" } })).id;
    expect(
      await changesOf(() => api("PATCH", "/api/v1/connections/llama", { body: { models: ["m", "n"] } }), 200),
    ).toEqual([[`connection:${connectionId}`]]);

    let agentId = "";
    expect(
      await changesOf(async () => {
        const created = await api("POST", "/api/v1/connections/llama/agents", { body: { name: "gpu-1" } });
        agentId = created.body.id;
        return created;
      }, 201),
    ).toEqual([[expect.stringMatching(/^agent:/)]]);
    expect(await changesOf(() => api("DELETE", `/api/v1/agents/${agentId}`), 204)).toEqual([[`agent:${agentId}`]]);
    // Revoking again changes nothing, so it publishes nothing.
    expect(await changesOf(() => api("DELETE", `/api/v1/agents/${agentId}`), 204)).toEqual([]);

    let keyId = "";
    expect(
      await changesOf(async () => {
        const created = await api("POST", "/api/v1/api-keys", { body: { name: "ci", groups: [] } });
        keyId = created.body.id;
        return created;
      }, 201),
    ).toEqual([[`api_key:${keyId}`]]);
    expect(await changesOf(() => api("DELETE", `/api/v1/api-keys/${keyId}`), 204)).toEqual([[`api_key:${keyId}`]]);
    expect(await changesOf(() => api("DELETE", `/api/v1/api-keys/${keyId}`), 204)).toEqual([]);

    let policyId = "";
    expect(
      await changesOf(async () => {
        const created = await api("POST", "/api/v1/policies", { body: policyBody("ops") });
        policyId = created.body.id;
        return created;
      }, 201),
    ).toEqual([[`policy:${policyId}`]]);
    // Disabling is a change too: gateways drop the policy.
    expect(
      await changesOf(() => api("PUT", `/api/v1/policies/${policyId}`, { body: policyBody("ops", false) }), 200),
    ).toEqual([[`policy:${policyId}`]]);
    expect(await changesOf(() => api("DELETE", `/api/v1/policies/${policyId}`), 204)).toEqual([[`policy:${policyId}`]]);
  });

  it("names a deleted connection's agents in the same revision, since they go with it", async () => {
    expect(
      (await api("POST", "/api/v1/connections", { body: { name: "doomed", protocol: "openai", models: ["m"] } }))
        .status,
    ).toBe(201);
    const agents = [];
    for (const name of ["a", "b"]) {
      agents.push((await api("POST", "/api/v1/connections/doomed/agents", { body: { name } })).body.id as string);
    }
    const connectionId = (await cp.db.connection.findUniqueOrThrow({ where: { name: "doomed" } })).id;
    const [deleted] = await changesOf(() => api("DELETE", "/api/v1/connections/doomed"), 204);
    expect(deleted?.sort()).toEqual([...agents.map((id) => `agent:${id}`), `connection:${connectionId}`].sort());
  });

  it("records nothing for changes gateways do not enforce, or that fail", async () => {
    expect(
      await changesOf(
        () => api("POST", "/api/v1/alert-rules", { body: { name: "quiet", kind: "approval_requested" } }),
        201,
      ),
    ).toEqual([]);
    expect(await changesOf(() => api("POST", "/api/v1/policies", { body: policyBody("taken") }), 201)).toHaveLength(1);
    // A duplicate name rolls the transaction back, revision included.
    expect(await changesOf(() => api("POST", "/api/v1/policies", { body: policyBody("taken") }), 409)).toEqual([]);
    expect(await changesOf(() => api("DELETE", "/api/v1/connections/missing"), 404)).toEqual([]);
  });

  it("keeps revisions gapless and one per change when changes race", async () => {
    const before = await head();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        api("POST", "/api/v1/api-keys", { body: { name: `race-${index}`, groups: [] } }),
      ),
    );
    expect(responses.every((response) => response.status === 201)).toBe(true);
    const rows = await cp.db.configChange.findMany({ where: { revision: { gt: BigInt(before) } } });
    expect(rows.map((row) => Number(row.revision)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, index) => before + index + 1),
    );
    expect(new Set(rows.map((row) => row.entityId))).toEqual(new Set(responses.map((response) => response.body.id)));
  });
});
