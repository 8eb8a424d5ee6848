import { hashSecret } from "@modelgate/core";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

describe("API keys API", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  it("creates a key shown once, stores only its hash, and never lists it", async () => {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const created = await api("POST", "/api/v1/api-keys", {
      body: { name: "ci pipeline", groups: ["data-science", "Okta Group With Spaces"], expiresAt },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.any(String),
      name: "ci pipeline",
      groups: ["data-science", "Okta Group With Spaces"],
      expiresAt,
      key: expect.stringMatching(/^mg_[0-9A-Za-z]{32}$/),
    });
    const { key, id } = created.body;
    const row = await cp.db.apiKey.findUniqueOrThrow({ where: { id } });
    expect(row.keyHash).toBe(hashSecret(key));
    expect(JSON.stringify(row)).not.toContain(key);

    const listed = await api("GET", "/api/v1/api-keys");
    expect(listed.status).toBe(200);
    expect(listed.text).not.toContain(key);
    expect(listed.text).not.toContain(row.keyHash);
    expect(listed.body.items.find((item: { id: string }) => item.id === id)).toEqual({
      id,
      name: "ci pipeline",
      groups: ["data-science", "Okta Group With Spaces"],
      keyPrefix: key.slice(0, 7),
      status: "active",
      expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      createdAt: expect.any(String),
      createdBy: "bootstrap-admin",
    });
  });

  it("revokes a key immediately", async () => {
    const { id } = (await api("POST", "/api/v1/api-keys", { body: { name: "temp", groups: [] } })).body;
    expect((await api("DELETE", `/api/v1/api-keys/${id}`)).status).toBe(204);
    const listed = await api("GET", "/api/v1/api-keys?limit=500");
    expect(listed.body.items.find((item: { id: string }) => item.id === id)).toMatchObject({ status: "revoked" });
    expect((await api("DELETE", `/api/v1/api-keys/${id}`)).status).toBe(204);
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: "api_key.revoke" } })).toBe(1);
  });

  it("shows a key past its expiry as expired", async () => {
    const { id } = (
      await api("POST", "/api/v1/api-keys", {
        body: { name: "short", groups: [], expiresAt: new Date(Date.now() + 60_000).toISOString() },
      })
    ).body;
    await cp.db.apiKey.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const listed = await api("GET", "/api/v1/api-keys?limit=500");
    expect(listed.body.items.find((item: { id: string }) => item.id === id)).toMatchObject({ status: "expired" });
  });

  it.each([
    ["an expiry in the past", { name: "k", groups: [], expiresAt: "2020-01-01T00:00:00Z" }],
    ["an expiry without a time zone", { name: "k", groups: [], expiresAt: "2999-01-01T00:00:00" }],
    ["an expiry that is not a date", { name: "k", groups: [], expiresAt: "tomorrow" }],
    ["duplicate groups", { name: "k", groups: ["a", "a"] }],
    ["a group that is not a string", { name: "k", groups: [42] }],
    ["an empty group", { name: "k", groups: [""] }],
    ["101 groups", { name: "k", groups: Array.from({ length: 101 }, (_, index) => `g${index}`) }],
    ["a blank name", { name: "   ", groups: [] }],
    ["a name of 129 characters", { name: "n".repeat(129), groups: [] }],
    ["missing groups", { name: "k" }],
    ["a caller-chosen key", { name: "k", groups: [], key: "mg_mine" }],
  ])("rejects %s and creates no key", async (_case, body) => {
    const before = await cp.db.apiKey.count();
    expectProblem(await api("POST", "/api/v1/api-keys", { body }), 400, "invalid_request");
    expect(await cp.db.apiKey.count()).toBe(before);
  });

  it.each([
    ["a group", '{"name":"k","groups":["g\\ud800"]}'],
    ["the name", '{"name":"k\\udfff","groups":[]}'],
  ])("rejects a lone UTF-16 surrogate in %s and stores nothing", async (_case, rawBody) => {
    const before = await cp.db.apiKey.count();
    const response = await api("POST", "/api/v1/api-keys", { rawBody });
    expectProblem(response, 400, "invalid_request");
    expect(await cp.db.apiKey.count()).toBe(before);
  });

  it("records one revocation when the same key is revoked many times at once", async () => {
    const { id } = (await api("POST", "/api/v1/api-keys", { body: { name: "raced", groups: [] } })).body;
    const responses = await Promise.all(Array.from({ length: 6 }, () => api("DELETE", `/api/v1/api-keys/${id}`)));
    expect(responses.map((response) => response.status)).toEqual(Array(6).fill(204));
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: "api_key.revoke" } })).toBe(1);
  });

  it("rejects bad ids", async () => {
    expectProblem(await api("DELETE", "/api/v1/api-keys/123"), 400, "invalid_request");
    expectProblem(await api("DELETE", "/api/v1/api-keys/0190a5f0-0000-7000-8000-000000000000"), 404, "not_found");
  });
});
