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
      rotatedAt: null,
      previousKeyExpiresAt: null,
    });
    const shown = await api("GET", `/api/v1/api-keys/${id}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual(listed.body.items.find((item: { id: string }) => item.id === id));
    expect(shown.text).not.toContain(row.keyHash);
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
    const missing = "0190a5f0-0000-7000-8000-000000000000";
    for (const [method, suffix, body] of [
      ["DELETE", "", undefined],
      ["GET", "", undefined],
      ["PATCH", "", { name: "x" }],
      ["POST", "/rotate", {}],
    ] as const) {
      expectProblem(await api(method, `/api/v1/api-keys/123${suffix}`, { body }), 400, "invalid_request");
      expectProblem(await api(method, `/api/v1/api-keys/${missing}${suffix}`, { body }), 404, "not_found");
    }
  });
});

describe("API key updates", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  const create = async (body: Record<string, unknown> = {}) =>
    (await api("POST", "/api/v1/api-keys", { body: { name: "svc", groups: ["a"], ...body } })).body as {
      id: string;
      key: string;
    };

  it("changes only the fields given, records before and after, and pushes the change", async () => {
    const { id, key } = await create({ expiresAt: new Date(Date.now() + 86_400_000).toISOString() });
    const original = (await api("GET", `/api/v1/api-keys/${id}`)).body;
    const revisionBefore = (await cp.db.configHead.findUniqueOrThrow({ where: { id: 1 } })).revision;

    const renamed = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { name: "renamed" } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toEqual({ ...original, name: "renamed" });

    const regrouped = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { groups: ["b", "c"] } });
    expect(regrouped.body).toEqual({ ...original, name: "renamed", groups: ["b", "c"] });

    const unexpiring = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { expiresAt: null } });
    expect(unexpiring.body).toEqual({ ...original, name: "renamed", groups: ["b", "c"], expiresAt: null });
    expect((await api("GET", `/api/v1/api-keys/${id}`)).body).toEqual(unexpiring.body);

    const later = new Date(Date.now() + 3_600_000).toISOString();
    const expiring = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { expiresAt: later, groups: [] } });
    expect(expiring.body).toMatchObject({ name: "renamed", groups: [], expiresAt: later, status: "active" });

    const entries = await cp.db.adminAuditLog.findMany({
      where: { targetId: id, action: "api_key.update" },
      orderBy: { id: "asc" },
    });
    expect(entries.map((entry) => [entry.before, entry.after])).toEqual([
      [original, renamed.body],
      [renamed.body, regrouped.body],
      [regrouped.body, unexpiring.body],
      [unexpiring.body, expiring.body],
    ]);
    const recorded = JSON.stringify(entries.map((entry) => [entry.before, entry.after]));
    expect(recorded).not.toContain(key);
    expect(recorded).not.toContain(hashSecret(key));
    // Each update is one configuration revision naming the key, for gateways.
    const changes = await cp.db.$queryRaw<{ revision: bigint }[]>`
      SELECT revision FROM config_changes WHERE kind = 'api_key' AND entity_id = ${id}::uuid AND revision > ${revisionBefore}`;
    expect(changes).toHaveLength(4);
  });

  it("brings an expired key back with a later expiry", async () => {
    const { id } = await create({ expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await cp.db.apiKey.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await api("GET", `/api/v1/api-keys/${id}`)).body.status).toBe("expired");
    const renewed = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { expiresAt: null } });
    expect(renewed.body).toMatchObject({ status: "active", expiresAt: null });
  });

  it.each([
    ["an empty patch", {}, "body"],
    ["an unknown field", { name: "x", key: "mg_mine" }, "body"],
    ["a change of id", { id: "0190a5f0-0000-7000-8000-000000000000" }, "body"],
    ["an expiry in the past", { expiresAt: "2020-01-01T00:00:00Z" }, "body.expiresAt"],
    ["an expiry that is now", { expiresAt: "now" }, "body.expiresAt"],
    ["an expiry without a time zone", { expiresAt: "2999-01-01T00:00:00" }, "body.expiresAt"],
    ["a blank name", { name: " " }, "body.name"],
    ["a null name", { name: null }, "body.name"],
    ["duplicate groups", { groups: ["a", "a"] }, "body.groups"],
    ["null groups", { groups: null }, "body.groups"],
    ["a group with a control character", { groups: ["a\u0007"] }, "body.groups.0"],
  ])("rejects %s with a precise problem and changes nothing", async (_case, body, path) => {
    const { id } = await create();
    const before = await cp.db.apiKey.findUniqueOrThrow({ where: { id } });
    const response = await api("PATCH", `/api/v1/api-keys/${id}`, { body });
    expectProblem(response, 400, "invalid_request");
    expect(response.body.errors.map((issue: { path: string }) => issue.path)).toContain(path);
    expect(await cp.db.apiKey.findUniqueOrThrow({ where: { id } })).toEqual(before);
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: "api_key.update" } })).toBe(0);
  });

  it("names an unknown field in the problem", async () => {
    const { id } = await create();
    const response = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { scopes: ["x"] } });
    expectProblem(response, 400, "invalid_request");
    expect(response.body.errors).toContainEqual({ path: "body", message: expect.stringContaining('"scopes"') });
  });

  it("refuses to change or rotate a revoked key with 409", async () => {
    const { id } = await create();
    expect((await api("DELETE", `/api/v1/api-keys/${id}`)).status).toBe(204);
    const before = await cp.db.apiKey.findUniqueOrThrow({ where: { id } });
    const patched = await api("PATCH", `/api/v1/api-keys/${id}`, { body: { name: "again" } });
    expectProblem(patched, 409, "conflict");
    expect(patched.body.detail).toContain("revoked");
    expectProblem(await api("POST", `/api/v1/api-keys/${id}/rotate`, { body: {} }), 409, "conflict");
    expect(await cp.db.apiKey.findUniqueOrThrow({ where: { id } })).toEqual(before);
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: { not: "api_key.revoke" } } })).toBe(1);
  });
});

describe("API key rotation", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  const create = async (body: Record<string, unknown> = {}) =>
    (await api("POST", "/api/v1/api-keys", { body: { name: "rotating", groups: ["g"], ...body } })).body as {
      id: string;
      key: string;
    };
  const rotate = (id: string, body: Record<string, unknown> = {}) =>
    api("POST", `/api/v1/api-keys/${id}/rotate`, { body });

  it("issues a new secret for the same key, keeps the old one's hash for an hour by default, and records it", async () => {
    const { id, key: oldKey } = await create();
    const started = Date.now();
    const rotated = await rotate(id);
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({
      id,
      name: "rotating",
      groups: ["g"],
      expiresAt: null,
      keyPrefix: rotated.body.key.slice(0, 7),
      key: expect.stringMatching(/^mg_[0-9A-Za-z]{32}$/),
      rotatedAt: expect.any(String),
      previousKeyExpiresAt: expect.any(String),
    });
    const newKey: string = rotated.body.key;
    expect(newKey).not.toBe(oldKey);
    const overlap = Date.parse(rotated.body.previousKeyExpiresAt) - Date.parse(rotated.body.rotatedAt);
    expect(overlap).toBe(3_600_000);
    expect(Date.parse(rotated.body.rotatedAt)).toBeGreaterThanOrEqual(started - 5);

    const row = await cp.db.apiKey.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      keyHash: hashSecret(newKey),
      previousKeyHash: hashSecret(oldKey),
      previousKeyExpiresAt: new Date(rotated.body.previousKeyExpiresAt),
      rotatedAt: new Date(rotated.body.rotatedAt),
    });
    expect(JSON.stringify(row)).not.toContain(newKey);

    const shown = await api("GET", `/api/v1/api-keys/${id}`);
    expect(shown.body).toMatchObject({
      id,
      keyPrefix: newKey.slice(0, 7),
      status: "active",
      rotatedAt: rotated.body.rotatedAt,
      previousKeyExpiresAt: rotated.body.previousKeyExpiresAt,
    });
    for (const secret of [newKey, oldKey, hashSecret(newKey), hashSecret(oldKey)]) {
      expect(shown.text).not.toContain(secret);
      expect((await api("GET", "/api/v1/api-keys?limit=500")).text).not.toContain(secret);
    }

    const [entry] = await cp.db.adminAuditLog.findMany({ where: { targetId: id, action: "api_key.rotate" } });
    expect(entry?.before).toMatchObject({ keyPrefix: oldKey.slice(0, 7), rotatedAt: null });
    expect(entry?.after).toEqual({ ...shown.body, overlapSeconds: 3600 });
    for (const secret of [newKey, oldKey, hashSecret(newKey), hashSecret(oldKey)]) {
      expect(JSON.stringify([entry?.before, entry?.after])).not.toContain(secret);
    }
  });

  it("refuses another rotation during the overlap, unless it stops every earlier secret at once", async () => {
    const { id, key: first } = await create();
    const second = (await rotate(id, { overlapSeconds: 600 })).body;
    const refused = await rotate(id, { overlapSeconds: 60 });
    expectProblem(refused, 409, "conflict");
    expect(refused.body.detail).toContain(`in progress until ${second.previousKeyExpiresAt}`);
    expectProblem(await rotate(id), 409, "conflict");
    expect((await cp.db.apiKey.findUniqueOrThrow({ where: { id } })).keyHash).toBe(hashSecret(second.key));

    const third = await rotate(id, { overlapSeconds: 0 });
    expect(third.status).toBe(200);
    expect(third.body.previousKeyExpiresAt).toBe(third.body.rotatedAt);
    const row = await cp.db.apiKey.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      keyHash: hashSecret(third.body.key),
      previousKeyHash: null,
      previousKeyExpiresAt: null,
    });
    expect([first, second.key].map(hashSecret)).not.toContain(row.keyHash);
    expect((await api("GET", `/api/v1/api-keys/${id}`)).body.previousKeyExpiresAt).toBeNull();
    // No overlap running now: a rotation with one is accepted again.
    expect((await rotate(id, { overlapSeconds: 60 })).status).toBe(200);
  });

  it("lets a later rotation start once the overlap has ended", async () => {
    const { id } = await create();
    await rotate(id, { overlapSeconds: 1 });
    await cp.db.apiKey.update({ where: { id }, data: { previousKeyExpiresAt: new Date(Date.now() - 1) } });
    expect((await api("GET", `/api/v1/api-keys/${id}`)).body.previousKeyExpiresAt).toBeNull();
    expect((await rotate(id, { overlapSeconds: 30 })).status).toBe(200);
  });

  it("never lets the old secret outlive the key", async () => {
    const expiresAt = new Date(Date.now() + 120_000).toISOString();
    const { id } = await create({ expiresAt });
    const rotated = await rotate(id, { overlapSeconds: 86_400 });
    expect(rotated.body.previousKeyExpiresAt).toBe(expiresAt);
  });

  it("refuses to rotate an expired key with 409", async () => {
    const { id } = await create({ expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await cp.db.apiKey.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const refused = await rotate(id);
    expectProblem(refused, 409, "conflict");
    expect(refused.body.detail).toContain("expired");
  });

  it("rotates once when the same key is rotated many times at once", async () => {
    const { id } = await create();
    const answers = await Promise.all(Array.from({ length: 6 }, () => rotate(id, { overlapSeconds: 300 })));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409, 409, 409, 409, 409]);
    const winner = answers.find((answer) => answer.status === 200)?.body;
    expect((await cp.db.apiKey.findUniqueOrThrow({ where: { id } })).keyHash).toBe(hashSecret(winner.key));
    expect(await cp.db.adminAuditLog.count({ where: { targetId: id, action: "api_key.rotate" } })).toBe(1);
  });

  it.each([
    ["a negative overlap", { overlapSeconds: -1 }],
    ["an overlap over 7 days", { overlapSeconds: 7 * 86_400 + 1 }],
    ["a fractional overlap", { overlapSeconds: 1.5 }],
    ["an overlap as a string", { overlapSeconds: "3600" }],
    ["an unknown field", { overlap: 60 }],
    ["a caller-chosen key", { key: "mg_mine" }],
  ])("rejects %s and rotates nothing", async (_case, body) => {
    const { id } = await create();
    const before = await cp.db.apiKey.findUniqueOrThrow({ where: { id } });
    expectProblem(await rotate(id, body), 400, "invalid_request");
    expect(await cp.db.apiKey.findUniqueOrThrow({ where: { id } })).toEqual(before);
  });

  it("accepts the longest overlap, and answers a bodiless request with 415", async () => {
    const { id } = await create();
    const rotated = await rotate(id, { overlapSeconds: 7 * 86_400 });
    expect(Date.parse(rotated.body.previousKeyExpiresAt) - Date.parse(rotated.body.rotatedAt)).toBe(7 * 86_400_000);
    const other = await create();
    expectProblem(
      await api("POST", `/api/v1/api-keys/${other.id}/rotate`, { rawBody: "", contentType: "text/plain" }),
      415,
      "unsupported_media_type",
    );
  });
});
