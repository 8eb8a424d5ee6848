import { hashSecret } from "@modelgate/core";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

describe("agents API", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
    for (const name of ["llama", "mistral"]) {
      const response = await api("POST", "/api/v1/connections", { body: { name, protocol: "openai", models: ["m"] } });
      expect(response.status).toBe(201);
    }
  });
  afterAll(() => cp.close());

  it("issues an agent token once and stores only its hash", async () => {
    const created = await api("POST", "/api/v1/connections/llama/agents", { body: { name: "gpu-1" } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(String),
      name: "gpu-1",
      connection: "llama",
      token: expect.any(String),
    });
    const { token, id } = created.body;
    expect(token).toMatch(/^mgagent_[0-9A-Za-z]{32}$/);

    const row = await cp.db.agent.findUniqueOrThrow({ where: { id } });
    expect(row.tokenHash).toBe(hashSecret(token));
    expect(JSON.stringify(row)).not.toContain(token);
    const audit = await cp.db.adminAuditLog.findMany({ where: { targetId: id } });
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit, (_key, value) => (typeof value === "bigint" ? String(value) : value))).not.toContain(
      token,
    );

    const listed = await api("GET", "/api/v1/agents?connection=llama");
    expect(listed.body.items).toEqual([
      {
        id,
        name: "gpu-1",
        connection: "llama",
        tokenPrefix: token.slice(0, 12),
        tunnel: {
          state: "disconnected",
          inFlight: 0,
          capacity: 0,
          runtimeHealthy: null,
          lastHeartbeatAt: null,
          gateways: [],
        },
        status: "active",
        version: null,
        lastSeenAt: null,
        createdAt: expect.any(String),
        revokedAt: null,
      },
    ]);
    expect(listed.text).not.toContain(token);
    expect(listed.text).not.toContain(row.tokenHash);
  });

  it("revokes an agent immediately; revoking again changes nothing", async () => {
    const created = await api("POST", "/api/v1/connections/mistral/agents", { body: { name: "gpu-2" } });
    const { id } = created.body;
    expect((await api("DELETE", `/api/v1/agents/${id}`)).status).toBe(204);
    const row = await cp.db.agent.findUniqueOrThrow({ where: { id } });
    expect(row.revokedAt).toBeInstanceOf(Date);

    expect((await api("DELETE", `/api/v1/agents/${id}`)).status).toBe(204);
    expect((await cp.db.agent.findUniqueOrThrow({ where: { id } })).revokedAt).toEqual(row.revokedAt);
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: "agent.revoke" } })).toBe(1);

    const listed = await api("GET", "/api/v1/agents?connection=mistral");
    expect(listed.body.items.find((agent: { id: string }) => agent.id === id)).toMatchObject({
      status: "revoked",
      revokedAt: row.revokedAt?.toISOString(),
    });
  });

  it("records one revocation when the same agent is revoked many times at once", async () => {
    const { id } = (await api("POST", "/api/v1/connections/mistral/agents", { body: { name: "raced" } })).body;
    const responses = await Promise.all(Array.from({ length: 6 }, () => api("DELETE", `/api/v1/agents/${id}`)));
    expect(responses.map((response) => response.status)).toEqual(Array(6).fill(204));
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: "agent.revoke" } })).toBe(1);
  });

  it("refuses a second active agent with the same name, but allows it once the first is revoked", async () => {
    const first = await api("POST", "/api/v1/connections/llama/agents", { body: { name: "twin" } });
    expect(first.status).toBe(201);
    expectProblem(await api("POST", "/api/v1/connections/llama/agents", { body: { name: "twin" } }), 409, "conflict");
    await api("DELETE", `/api/v1/agents/${first.body.id}`);
    expect((await api("POST", "/api/v1/connections/llama/agents", { body: { name: "twin" } })).status).toBe(201);
  });

  it("rejects bad input and creates no agent", async () => {
    const before = await cp.db.agent.count();
    expectProblem(await api("POST", "/api/v1/connections/nowhere/agents", { body: { name: "a" } }), 404, "not_found");
    expectProblem(
      await api("POST", "/api/v1/connections/llama/agents", { body: { name: "Bad Name" } }),
      400,
      "invalid_request",
    );
    expectProblem(await api("POST", "/api/v1/connections/llama/agents", { body: {} }), 400, "invalid_request");
    expectProblem(
      await api("POST", "/api/v1/connections/llama/agents", { body: { name: "a", connection: "mistral" } }),
      400,
      "invalid_request",
    );
    expect(await cp.db.agent.count()).toBe(before);

    expectProblem(await api("DELETE", "/api/v1/agents/not-a-uuid"), 400, "invalid_request");
    expectProblem(await api("DELETE", "/api/v1/agents/0190a5f0-0000-7000-8000-000000000000"), 404, "not_found");
    expectProblem(await api("GET", "/api/v1/agents?connection=UPPER"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/agents?cursor=42"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/agents?sort=name"), 400, "invalid_request");
  });

  it("pages through agents oldest first", async () => {
    await api("POST", "/api/v1/connections", { body: { name: "paged", protocol: "tgi", models: ["m"] } });
    const ids: string[] = [];
    for (const name of ["p1", "p2", "p3"]) {
      ids.push((await api("POST", "/api/v1/connections/paged/agents", { body: { name } })).body.id);
    }
    const first = await api("GET", "/api/v1/agents?connection=paged&limit=2");
    const second = await api("GET", `/api/v1/agents?connection=paged&limit=2&cursor=${first.body.nextCursor}`);
    expect([...first.body.items, ...second.body.items].map((agent: { id: string }) => agent.id)).toEqual(ids);
    expect(second.body.nextCursor).toBeNull();
  });

  it("deletes a connection's agents with it", async () => {
    await api("POST", "/api/v1/connections", { body: { name: "doomed", protocol: "ollama", models: ["m"] } });
    const agent = (await api("POST", "/api/v1/connections/doomed/agents", { body: { name: "a" } })).body;
    expect((await api("DELETE", "/api/v1/connections/doomed")).status).toBe(204);
    expect(await cp.db.agent.findUnique({ where: { id: agent.id } })).toBeNull();
    const [entry] = await cp.db.adminAuditLog.findMany({ where: { action: "connection.delete", targetId: "doomed" } });
    expect(entry?.before).toMatchObject({ agentIds: [agent.id] });
  });
});
