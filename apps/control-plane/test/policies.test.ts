import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const DS_POLICY = {
  name: "ds-public-llama",
  subjects: { groups: ["data-science"] },
  resources: [{ connection: "llama", models: ["llama-3.1-8b-instruct*"] }],
  operations: ["inference", "embeddings", "models.list"],
  limits: {
    maxTokens: 1024,
    temperature: { min: 0, max: 1 },
    maxPromptChars: 20000,
    requestsPerMinute: 60,
    tokensPerMinute: 50000,
  },
  promptRules: [{ pattern: "(export|dump) (all|every)", flags: "i", action: "block", description: "bulk export" }],
};

describe("policies API", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
  });
  afterAll(() => cp.close());

  it("creates, reads, replaces and deletes a policy, auditing each change", async () => {
    const created = await api("POST", "/api/v1/policies", { body: DS_POLICY });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ ...DS_POLICY, enabled: true, revision: 1, description: null });
    const { id } = created.body;

    expect((await api("GET", `/api/v1/policies/${id}`)).body).toEqual(created.body);
    const listed = await api("GET", "/api/v1/policies");
    expect(listed.body.items.map((item: { id: string }) => item.id)).toContain(id);

    const replaced = await api("PUT", `/api/v1/policies/${id}`, {
      body: { ...DS_POLICY, limits: { maxTokens: 2048 }, enabled: false },
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ revision: 2, enabled: false, limits: { maxTokens: 2048 } });

    expect((await api("DELETE", `/api/v1/policies/${id}`)).status).toBe(204);
    expectProblem(await api("GET", `/api/v1/policies/${id}`), 404, "not_found");
    expectProblem(await api("DELETE", `/api/v1/policies/${id}`), 404, "not_found");

    const actions = await cp.db.adminAuditLog.findMany({ where: { targetId: id }, orderBy: { id: "asc" } });
    expect(actions.map((entry) => entry.action)).toEqual(["policy.create", "policy.update", "policy.delete"]);
    expect(actions[1]?.before).toMatchObject({ revision: 1, limits: { maxTokens: 1024 } });
    expect(actions[1]?.after).toMatchObject({ revision: 2, limits: { maxTokens: 2048 } });
  });

  it("refuses a second policy with the same name", async () => {
    const body = { ...DS_POLICY, name: "unique-name" };
    expect((await api("POST", "/api/v1/policies", { body })).status).toBe(201);
    expectProblem(await api("POST", "/api/v1/policies", { body }), 409, "conflict");
  });

  it.each([
    ["an unknown field (a typo must not be ignored)", { ...DS_POLICY, name: "typo", limit: { maxTokens: 1 } }],
    ["no operations", { ...DS_POLICY, name: "no-ops", operations: [] }],
    ["an unknown operation", { ...DS_POLICY, name: "bad-op", operations: ["delete-everything"] }],
    ["a negative token cap", { ...DS_POLICY, name: "neg", limits: { maxTokens: -1 } }],
    ["temperature min above max", { ...DS_POLICY, name: "temp", limits: { temperature: { min: 1, max: 0.5 } } }],
    [
      "a regex that does not compile",
      { ...DS_POLICY, name: "bad-re", promptRules: [{ pattern: "(unclosed", action: "block" }] },
    ],
    [
      "a regex with catastrophic backtracking",
      { ...DS_POLICY, name: "redos", promptRules: [{ pattern: "(a+)+$", action: "block" }] },
    ],
    [
      "a regex with quadratic backtracking",
      { ...DS_POLICY, name: "quadratic", promptRules: [{ pattern: "[a-z]+@[a-z]+\\.com", action: "block" }] },
    ],
    ["a global flag", { ...DS_POLICY, name: "flag", promptRules: [{ pattern: "x", flags: "g", action: "block" }] }],
  ])("refuses %s and stores nothing", async (_label, body) => {
    const before = await cp.db.policy.count();
    const answer = await api("POST", "/api/v1/policies", { body });
    expectProblem(answer, 400, "invalid_request");
    expect(answer.body.errors.length).toBeGreaterThan(0);
    expect(await cp.db.policy.count()).toBe(before);
  });

  it("names the unsafe pattern and why", async () => {
    const answer = await api("POST", "/api/v1/policies", {
      body: {
        ...DS_POLICY,
        name: "redos-detail",
        promptRules: [
          { pattern: "fine", action: "block" },
          { pattern: "(x+x+)+y", action: "block" },
        ],
      },
    });
    expectProblem(answer, 400, "invalid_request");
    expect(answer.body.errors).toEqual([{ path: "body.promptRules.1.pattern", message: expect.any(String) }]);
  });

  it("a refused replacement leaves the stored policy as it was", async () => {
    const { id } = (await api("POST", "/api/v1/policies", { body: { ...DS_POLICY, name: "keep-me" } })).body;
    const refused = await api("PUT", `/api/v1/policies/${id}`, {
      body: { ...DS_POLICY, name: "keep-me", promptRules: [{ pattern: "(a|a)*$", action: "block" }] },
    });
    expectProblem(refused, 400, "invalid_request");
    expect((await api("GET", `/api/v1/policies/${id}`)).body).toMatchObject({
      revision: 1,
      promptRules: DS_POLICY.promptRules,
    });
  });

  it.each([
    ["a NUL character in a pattern", { promptRules: [{ pattern: "a\u0000b", action: "block" }] }],
    ["an unpaired surrogate in a description", { description: "broken \ud800 text" }],
  ])("refuses %s (Postgres could not store it) and stores nothing", async (_label, change) => {
    const before = await cp.db.policy.count();
    const answer = await api("POST", "/api/v1/policies", { body: { ...DS_POLICY, name: "unstorable", ...change } });
    expectProblem(answer, 400, "invalid_request");
    expect(await cp.db.policy.count()).toBe(before);
  });

  it("a stored policy this version cannot read is still deletable, and the dry run skips it", async () => {
    const { id } = (await api("POST", "/api/v1/policies", { body: { ...DS_POLICY, name: "from-the-future" } })).body;
    // As a newer control plane would leave it after a rollback.
    await cp.db
      .$executeRaw`UPDATE policies SET definition = definition || '{"futureField": true}'::jsonb WHERE id = ${id}::uuid`;
    const dryRun = await api("POST", "/api/v1/policies/evaluate", {
      body: {
        subject: { groups: ["data-science"] },
        request: { connection: "llama", model: "llama-3.1-8b-instruct", operation: "inference" },
      },
    });
    expect(dryRun.status).toBe(200);
    expect(dryRun.body.policyIds).not.toContain(id);
    expect((await api("DELETE", `/api/v1/policies/${id}`)).status).toBe(204);
    expect(await cp.db.policy.count({ where: { id } })).toBe(0);
  });

  describe("dry run", () => {
    beforeAll(async () => {
      await api("POST", "/api/v1/policies", { body: { ...DS_POLICY, name: "dry-run-ds" } });
      await api("POST", "/api/v1/policies", {
        body: {
          name: "dry-run-ops",
          subjects: { groups: ["ops"] },
          resources: [{ connection: "llama" }],
          operations: ["read"],
        },
      });
    });

    const evaluate = (subject: object, request: object) =>
      api("POST", "/api/v1/policies/evaluate", { body: { subject, request } });

    it("allows a granted request and caps a missing max_tokens", async () => {
      const answer = await evaluate(
        { groups: ["data-science"], user: "alice" },
        {
          connection: "llama",
          model: "llama-3.1-8b-instruct",
          operation: "inference",
          body: { messages: [{ role: "user", content: "hello" }] },
        },
      );
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({
        decision: "allowed",
        policyIds: [expect.any(String)],
        capped: [{ parameter: "max_tokens", value: 1024 }],
        effectiveLimits: { maxTokens: 1024, requestsPerMinute: 60 },
        rateLimit: { requestsPerMinute: 60, tokensPerMinute: 50000 },
      });
      expect(answer.body.reasons.length).toBeGreaterThan(0);
    });

    it.each([
      [
        "a model outside the grant",
        { groups: ["data-science"] },
        { connection: "llama", model: "proprietary-70b", operation: "inference" },
        "model_not_allowed",
      ],
      [
        "an operation outside the grant",
        { groups: ["ops"] },
        { connection: "llama", operation: "inference", model: "llama-3.1-8b-instruct" },
        "operation_not_allowed",
      ],
      [
        "max_tokens above the cap",
        { groups: ["data-science"] },
        {
          connection: "llama",
          model: "llama-3.1-8b-instruct",
          operation: "inference",
          body: { max_tokens: 4096, messages: [{ role: "user", content: "hi" }] },
        },
        "parameter_limit_exceeded",
      ],
      [
        "a blocked prompt in full-width letters",
        { groups: ["data-science"] },
        {
          connection: "llama",
          model: "llama-3.1-8b-instruct",
          operation: "inference",
          body: { messages: [{ role: "user", content: "please ｅｘｐｏｒｔ ａｌｌ records" }] },
        },
        "prompt_blocked",
      ],
      [
        "a subject with no grant at all",
        { groups: ["nobody"] },
        { connection: "llama", operation: "read" },
        "model_not_allowed",
      ],
    ])("denies %s", async (_label, subject, request, code) => {
      const answer = await evaluate(subject, request);
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ decision: "denied", code });
    });

    it("refuses a malformed dry run", async () => {
      expectProblem(await evaluate({ groups: "data-science" }, { connection: "llama" }), 400, "invalid_request");
    });
  });
});
