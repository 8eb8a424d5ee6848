import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

describe("connections API", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  it("creates, reads, updates and deletes a connection, recording each change", async () => {
    const created = await api("POST", "/api/v1/connections", {
      body: { name: "llama", protocol: "openai", models: ["llama-3.1-8b-instruct"], description: "vLLM on gpu-1" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      name: "llama",
      protocol: "openai",
      models: ["llama-3.1-8b-instruct"],
      description: "vLLM on gpu-1",
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });

    const fetched = await api("GET", "/api/v1/connections/llama");
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual(created.body);

    const updated = await api("PATCH", "/api/v1/connections/llama", {
      body: { models: ["llama-3.1-8b-instruct", "llama-3.1-70b-instruct"], description: null },
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      protocol: "openai",
      models: ["llama-3.1-8b-instruct", "llama-3.1-70b-instruct"],
      description: null,
    });

    const deleted = await api("DELETE", "/api/v1/connections/llama");
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe("");
    expectProblem(await api("GET", "/api/v1/connections/llama"), 404, "not_found");

    const log = await api("GET", "/api/v1/admin-audit-log?limit=10");
    expect(log.status).toBe(200);
    const entries = log.body.items.filter((entry: { targetId: string }) => entry.targetId === "llama");
    expect(entries.map((entry: { action: string }) => entry.action)).toEqual([
      "connection.delete",
      "connection.update",
      "connection.create",
    ]);
    const [deletion, update, creation] = entries;
    expect(creation).toMatchObject({ actor: "bootstrap-admin", actorType: "admin_token", before: null });
    expect(creation.after).toMatchObject({ name: "llama", models: ["llama-3.1-8b-instruct"] });
    expect(update.before).toMatchObject({ description: "vLLM on gpu-1" });
    expect(update.after).toMatchObject({ description: null });
    expect(deletion).toMatchObject({ after: null, before: expect.objectContaining({ name: "llama", agentIds: [] }) });
    expect(creation.requestId).toBe(created.headers.get("x-request-id"));
  });

  it("lists connections by name, one page at a time", async () => {
    for (const name of ["page-c", "page-a", "page-b"]) {
      const response = await api("POST", "/api/v1/connections", { body: { name, protocol: "ollama", models: ["m"] } });
      expect(response.status).toBe(201);
    }
    const first = await api("GET", "/api/v1/connections?limit=2");
    expect(first.body.items.map((item: { name: string }) => item.name)).toEqual(["page-a", "page-b"]);
    expect(first.body.nextCursor).toBe("page-b");
    const second = await api("GET", `/api/v1/connections?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items.map((item: { name: string }) => item.name)).toEqual(["page-c"]);
    expect(second.body.nextCursor).toBeNull();
  });

  it("refuses a second connection with the same name and keeps the first unchanged", async () => {
    const body = { name: "dup", protocol: "tgi", models: ["a"] };
    expect((await api("POST", "/api/v1/connections", { body })).status).toBe(201);
    const again = await api("POST", "/api/v1/connections", { body: { ...body, protocol: "openai", models: ["b"] } });
    expectProblem(again, 409, "conflict");
    expect((await api("GET", "/api/v1/connections/dup")).body).toMatchObject({ protocol: "tgi", models: ["a"] });
  });

  it.each([
    ["an upper-case name", { name: "Llama", protocol: "openai", models: ["m"] }, "body.name"],
    ["a name of 64 characters", { name: "a".repeat(64), protocol: "openai", models: ["m"] }, "body.name"],
    ["a name starting with a dash", { name: "-x", protocol: "openai", models: ["m"] }, "body.name"],
    ["an unknown protocol", { name: "x", protocol: "grpc", models: ["m"] }, "body.protocol"],
    ["no models", { name: "x", protocol: "openai", models: [] }, "body.models"],
    ["duplicate models", { name: "x", protocol: "openai", models: ["m", "m"] }, "body.models"],
    ["a model with a space", { name: "x", protocol: "openai", models: ["my model"] }, "body.models.0"],
    ["an unknown field", { name: "x", protocol: "openai", models: ["m"], url: "http://evil" }, "body"],
    ["a missing protocol", { name: "x", models: ["m"] }, "body.protocol"],
    [
      "a description with a control character",
      { name: "x", protocol: "openai", models: ["m"], description: "a\u0007" },
      "body.description",
    ],
    ["an array body", [1, 2], "body"],
    [
      "a description with a lone surrogate",
      { name: "x", protocol: "openai", models: ["m"], description: "a\ud800" },
      "body.description",
    ],
  ])("rejects %s with a precise problem and creates nothing", async (_case, body, path) => {
    const before = await cp.db.connection.count();
    const response = await api("POST", "/api/v1/connections", { body });
    expectProblem(response, 400, "invalid_request");
    expect(response.body.errors.map((issue: { path: string }) => issue.path)).toContain(path);
    expect(await cp.db.connection.count()).toBe(before);
  });

  it("rejects bad updates and leaves the connection as it was", async () => {
    await api("POST", "/api/v1/connections", { body: { name: "stable", protocol: "openai", models: ["m"] } });
    const original = (await api("GET", "/api/v1/connections/stable")).body;
    expectProblem(await api("PATCH", "/api/v1/connections/stable", { body: {} }), 400, "invalid_request");
    expectProblem(
      await api("PATCH", "/api/v1/connections/stable", { body: { name: "renamed" } }),
      400,
      "invalid_request",
    );
    expectProblem(await api("PATCH", "/api/v1/connections/stable", { body: { models: [] } }), 400, "invalid_request");
    expectProblem(await api("PATCH", "/api/v1/connections/missing", { body: { models: ["m"] } }), 404, "not_found");
    expectProblem(await api("PATCH", "/api/v1/connections/BAD", { body: { models: ["m"] } }), 400, "invalid_request");
    expect((await api("GET", "/api/v1/connections/stable")).body).toEqual(original);
  });

  it("rejects bad list parameters", async () => {
    expectProblem(await api("GET", "/api/v1/connections?limit=0"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/connections?limit=501"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/connections?limit=ten"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/connections?cursor=../x"), 400, "invalid_request");
    expectProblem(await api("GET", "/api/v1/connections?sort=name"), 400, "invalid_request");
  });
});
