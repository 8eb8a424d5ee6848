import { OPERATIONS, policyDefinitionSchema, policyInputSchema } from "../src/index.js";

const valid = {
  name: "ds-public-llama",
  description: "optional",
  enabled: true,
  subjects: { groups: ["data-science"], users: [], apiKeys: [] },
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

/** The distinct paths of the issues a document gets, as "a.b.0" strings. */
function issuePaths(document: unknown): string[] {
  const result = policyInputSchema.safeParse(document);
  return result.success ? [] : [...new Set(result.error.issues.map((issue) => issue.path.join(".")))];
}

function withDefinition(patch: Record<string, unknown>): Record<string, unknown> {
  return { ...valid, ...patch };
}

describe("policyInputSchema", () => {
  it("validates approval settings: caps on the window, the expiry and approvers, and windowMinutes with window only", () => {
    const approval = (settings: Record<string, unknown>) => withDefinition({ approval: settings });
    expect(policyInputSchema.parse(approval({})).approval).toEqual({
      required: false,
      approverGroups: [],
      minApprovals: 1,
      grant: "request",
      expiresMinutes: 60,
    });
    expect(
      issuePaths(
        approval({
          required: true,
          approverGroups: ["security"],
          minApprovals: 2,
          grant: "window",
          windowMinutes: 1440,
        }),
      ),
    ).toEqual([]);
    expect(issuePaths(approval({ expiresMinutes: 7 * 24 * 60 }))).toEqual([]);
    expect(issuePaths(approval({ grant: "window", windowMinutes: 1441 }))).toEqual(["approval.windowMinutes"]);
    expect(issuePaths(approval({ expiresMinutes: 7 * 24 * 60 + 1 }))).toEqual(["approval.expiresMinutes"]);
    expect(issuePaths(approval({ expiresMinutes: 0 }))).toEqual(["approval.expiresMinutes"]);
    expect(issuePaths(approval({ minApprovals: 11 }))).toEqual(["approval.minApprovals"]);
    expect(issuePaths(approval({ grant: "window" }))).toEqual(["approval.windowMinutes"]);
    expect(issuePaths(approval({ grant: "request", windowMinutes: 5 }))).toEqual(["approval.windowMinutes"]);
    expect(issuePaths(approval({ grant: "forever" }))).toEqual(["approval.grant"]);
    expect(issuePaths(approval({ approverGroups: ["a", "a"] }))).toEqual(["approval.approverGroups.1"]);
    expect(issuePaths(approval({ approvers: ["a"] }))).toEqual(["approval"]);
  });

  it("accepts the documented example as it is", () => {
    expect(policyInputSchema.parse(valid)).toEqual(valid);
  });

  it("fills defaults: enabled, empty subject lists, all models, no limits or rules", () => {
    const parsed = policyInputSchema.parse({
      name: "minimal",
      subjects: { users: ["alice@example.com"] },
      resources: [{ connection: "llama" }],
      operations: ["inference"],
    });
    expect(parsed).toEqual({
      name: "minimal",
      enabled: true,
      subjects: { groups: [], users: ["alice@example.com"], apiKeys: [] },
      resources: [{ connection: "llama", models: ["*"] }],
      operations: ["inference"],
      limits: {},
      promptRules: [],
    });
  });

  it("refuses unknown keys at every level", () => {
    expect(issuePaths(withDefinition({ limit: { maxTokens: 5 } }))).toEqual([""]);
    expect(issuePaths(withDefinition({ subjects: { groups: ["a"], roles: ["x"] } }))).toEqual(["subjects"]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "llama", model: ["x"] }] }))).toEqual(["resources.0"]);
    expect(issuePaths(withDefinition({ limits: { maxToken: 5 } }))).toEqual(["limits"]);
    expect(issuePaths(withDefinition({ limits: { temperature: { maximum: 1 } } }))).toEqual(["limits.temperature"]);
    expect(issuePaths(withDefinition({ promptRules: [{ pattern: "x", action: "block", severity: "high" }] }))).toEqual([
      "promptRules.0",
    ]);
  });

  it("requires at least one subject", () => {
    expect(issuePaths(withDefinition({ subjects: {} }))).toEqual(["subjects"]);
    expect(issuePaths(withDefinition({ subjects: { groups: [], users: [], apiKeys: [] } }))).toEqual(["subjects"]);
  });

  it("refuses duplicates, control characters, bad API key ids and overlong lists", () => {
    expect(issuePaths(withDefinition({ subjects: { groups: ["a", "b", "a"] } }))).toEqual(["subjects.groups.2"]);
    expect(issuePaths(withDefinition({ subjects: { groups: ["a\nb"] } }))).toEqual(["subjects.groups.0"]);
    expect(issuePaths(withDefinition({ subjects: { groups: [""] } }))).toEqual(["subjects.groups.0"]);
    expect(issuePaths(withDefinition({ subjects: { groups: ["x".repeat(257)] } }))).toEqual(["subjects.groups.0"]);
    expect(issuePaths(withDefinition({ subjects: { apiKeys: ["not-a-uuid"] } }))).toEqual(["subjects.apiKeys.0"]);
    const key = "0194f5c2-7f3b-7cc3-8f00-123456789abc";
    expect(issuePaths(withDefinition({ subjects: { apiKeys: [key, key.toUpperCase()] } }))).toEqual([
      "subjects.apiKeys.1",
    ]);
    const many = Array.from({ length: 1001 }, (_, index) => `g${index}`);
    expect(issuePaths(withDefinition({ subjects: { groups: many } }))).toEqual(["subjects.groups"]);
  });

  it("checks resources: connection names, model patterns, counts and repeated connections", () => {
    expect(issuePaths(withDefinition({ resources: [] }))).toEqual(["resources"]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "Llama" }] }))).toEqual(["resources.0.connection"]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "-llama" }] }))).toEqual(["resources.0.connection"]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "a".repeat(64) }] }))).toEqual([
      "resources.0.connection",
    ]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "llama", models: [] }] }))).toEqual([
      "resources.0.models",
    ]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "llama", models: ["a", "a"] }] }))).toEqual([
      "resources.0.models.1",
    ]);
    expect(issuePaths(withDefinition({ resources: [{ connection: "llama" }, { connection: "llama" }] }))).toEqual([
      "resources.1.connection",
    ]);
    const many = Array.from({ length: 101 }, (_, index) => ({ connection: `c${index}` }));
    expect(issuePaths(withDefinition({ resources: many }))).toEqual(["resources"]);
  });

  it("accepts only the known operations, each once, at least one", () => {
    expect(issuePaths(withDefinition({ operations: [...OPERATIONS] }))).toEqual([]);
    expect(issuePaths(withDefinition({ operations: [] }))).toEqual(["operations"]);
    expect(issuePaths(withDefinition({ operations: ["inference", "admin"] }))).toEqual(["operations.1"]);
    expect(issuePaths(withDefinition({ operations: ["read", "read"] }))).toEqual(["operations"]);
  });

  it.each([
    [{ maxTokens: 0 }, "limits.maxTokens"],
    [{ maxTokens: 10_000_001 }, "limits.maxTokens"],
    [{ maxTokens: 1.5 }, "limits.maxTokens"],
    [{ maxTokens: "100" }, "limits.maxTokens"],
    [{ maxPromptChars: 100_000_001 }, "limits.maxPromptChars"],
    [{ requestsPerMinute: 0 }, "limits.requestsPerMinute"],
    [{ tokensPerMinute: 10_000_001 }, "limits.tokensPerMinute"],
    [{ temperature: { min: -0.1 } }, "limits.temperature.min"],
    [{ temperature: { max: 100.5 } }, "limits.temperature.max"],
    [{ temperature: { min: 1, max: 0.5 } }, "limits.temperature.min"],
    [{ temperature: {} }, "limits.temperature"],
  ])("refuses limits %j", (limits, path) => {
    expect(issuePaths(withDefinition({ limits }))).toEqual([path]);
  });

  it("accepts limits at the ends of their ranges", () => {
    const limits = {
      maxTokens: 10_000_000,
      maxPromptChars: 1,
      requestsPerMinute: 1,
      tokensPerMinute: 10_000_000,
      temperature: { min: 0, max: 100 },
    };
    expect(issuePaths(withDefinition({ limits }))).toEqual([]);
    expect(issuePaths(withDefinition({ limits: { temperature: { min: 0.7, max: 0.7 } } }))).toEqual([]);
  });

  it.each([
    [{ pattern: "x", flags: "g", action: "block" }, "promptRules.0.flags"],
    [{ pattern: "x", flags: "y", action: "block" }, "promptRules.0.flags"],
    [{ pattern: "x", flags: "u", action: "block" }, "promptRules.0.flags"],
    [{ pattern: "x", flags: "ii", action: "block" }, "promptRules.0.flags"],
    [{ pattern: "", action: "block" }, "promptRules.0.pattern"],
    [{ pattern: "x".repeat(513), action: "block" }, "promptRules.0.pattern"],
    [{ pattern: "x", action: "warn" }, "promptRules.0.action"],
    [{ pattern: "(unclosed", action: "block" }, "promptRules.0.pattern"],
    // Valid without the u flag, not with it: the engine always compiles with u.
    [{ pattern: "\\-", action: "block" }, "promptRules.0.pattern"],
    [{ pattern: "x", action: "block", description: "d".repeat(257) }, "promptRules.0.description"],
  ])("refuses prompt rule %j", (rule, path) => {
    expect(issuePaths(withDefinition({ promptRules: [rule] }))).toEqual([path]);
  });

  it("accepts the flags i, m and s in any order, and at most 100 rules", () => {
    expect(
      issuePaths(withDefinition({ promptRules: [{ pattern: "x", flags: "sim", action: "require_approval" }] })),
    ).toEqual([]);
    const rules = Array.from({ length: 101 }, () => ({ pattern: "x", action: "block" }));
    expect(issuePaths(withDefinition({ promptRules: rules }))).toEqual(["promptRules"]);
  });

  it("checks name and description", () => {
    expect(issuePaths({ ...valid, name: "" })).toEqual(["name"]);
    expect(issuePaths({ ...valid, name: "n".repeat(129) })).toEqual(["name"]);
    expect(issuePaths({ ...valid, name: "tab\there" })).toEqual(["name"]);
    expect(issuePaths({ ...valid, name: " padded" })).toEqual(["name"]);
    expect(issuePaths({ ...valid, description: "d".repeat(1025) })).toEqual(["description"]);
    expect(issuePaths({ ...valid, description: "two\r\nlines\tand a tab" })).toEqual([]);
    expect(issuePaths({ ...valid, description: "bell\u0007" })).toEqual(["description"]);
    expect(issuePaths({ ...valid, enabled: "yes" })).toEqual(["enabled"]);
  });
});

describe("policyDefinitionSchema", () => {
  it("is the document without name, description and enabled", () => {
    const { name: _name, description: _description, enabled: _enabled, ...definition } = valid;
    expect(policyDefinitionSchema.parse(definition)).toEqual(definition);
    expect(policyDefinitionSchema.safeParse(valid).success).toBe(false);
    expect(Object.keys(policyDefinitionSchema.shape).sort()).toEqual([
      "approval",
      "limits",
      "masking",
      "operations",
      "promptRules",
      "quota",
      "resources",
      "subjects",
    ]);
  });
});

describe("masking profile in a policy", () => {
  const base = { subjects: { groups: ["g"] }, resources: [{ connection: "llama" }], operations: ["inference"] };

  it("accepts the issue's profile and fills in defaults", () => {
    const parsed = policyDefinitionSchema.parse({
      ...base,
      masking: {
        entities: ["EMAIL", "CREDIT_CARD"],
        custom: [{ name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" }],
        denyList: [{ name: "PROJECT", terms: ["Project Falcon"] }],
        fields: ["choices[*].delta.content", "message.content", "response"],
      },
    });
    expect(parsed.masking).toMatchObject({ style: "label", onError: "block", maskPromptsInAudit: false });
    expect(parsed.masking?.custom[0]?.flags).toBe("");
  });

  it.each([
    ["an unknown entity", { entities: ["PASSPORT"] }],
    ["a lower-case custom name", { custom: [{ name: "employee", pattern: "x" }] }],
    ["a custom pattern that does not compile", { custom: [{ name: "X", pattern: "(" }] }],
    ["a field path that is not one", { entities: ["EMAIL"], fields: ["choices[*.content"] }],
    ["nothing to mask", { style: "hash" }],
    ["an unknown style", { entities: ["EMAIL"], style: "blur" }],
    ["an unknown key", { entities: ["EMAIL"], mode: "strict" }],
  ])("refuses %s", (_label, masking) => {
    expect(policyDefinitionSchema.safeParse({ ...base, masking }).success).toBe(false);
  });
});
