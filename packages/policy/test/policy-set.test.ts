import { type Evaluation, type EvaluationRequest, PolicySet, type Subject } from "../src/index.js";
import { alice, bob, chat, policy } from "./helpers.js";

const inference = (body: Record<string, unknown> = chat("hello"), extra: Partial<EvaluationRequest> = {}) =>
  ({
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    operation: "inference",
    format: "openai.chat",
    body,
    ...extra,
  }) satisfies EvaluationRequest;

function denial(evaluation: Evaluation) {
  if (evaluation.decision !== "denied") throw new Error(`expected a denial, got ${JSON.stringify(evaluation)}`);
  return evaluation;
}

function allowance(evaluation: Evaluation) {
  if (evaluation.decision !== "allowed") throw new Error(`expected an allowance, got ${JSON.stringify(evaluation)}`);
  return evaluation;
}

describe("PolicySet: who and what is granted", () => {
  it("denies everything without policies", () => {
    const set = new PolicySet([]);
    expect(set.evaluate(alice, inference())).toEqual({
      decision: "denied",
      code: "model_not_allowed",
      policyIds: [],
      reasons: ['no policy grants access to model "llama-3.1-8b-instruct" on connection "llama"'],
    });
    expect(set.size).toBe(0);
  });

  it("allows a subject whose group, connection, model and operation a policy grants", () => {
    const ds = policy("ds-public-llama");
    const evaluation = allowance(new PolicySet([ds]).evaluate(alice, inference()));
    expect(evaluation).toEqual({
      decision: "allowed",
      policyIds: [ds.id],
      reasons: ['allowed by policy "ds-public-llama"'],
      effectiveLimits: {},
      capped: [],
      rateLimit: undefined,
      estimatedTokens: 2,
    });
  });

  it("never names policies of other subjects when it denies", () => {
    const set = new PolicySet([policy("secret-project", { subjects: { groups: ["secret"] } })]);
    const evaluation = denial(set.evaluate(bob, inference()));
    expect(evaluation.code).toBe("model_not_allowed");
    expect(evaluation.policyIds).toEqual([]);
    expect(evaluation.reasons.join(" ")).not.toContain("secret-project");
  });

  it("answers operation_not_allowed when the subject's policy covers the model but not the operation", () => {
    const ds = policy("ds-chat", { operations: ["inference", "models.list"] });
    const set = new PolicySet([ds]);
    const evaluation = denial(
      set.evaluate(alice, { ...inference(), operation: "embeddings", format: "openai.embeddings" }),
    );
    expect(evaluation).toEqual({
      decision: "denied",
      code: "operation_not_allowed",
      policyIds: [ds.id],
      reasons: [
        'operation "embeddings" is not allowed on model "llama-3.1-8b-instruct" on connection "llama"',
        'policy "ds-chat" allows only "inference" and "models.list" there',
      ],
    });
  });

  it("answers model_not_allowed for another model or connection, even when the operation is granted elsewhere", () => {
    const set = new PolicySet([policy("ds", { resources: [{ connection: "llama", models: ["llama-3.1-*"] }] })]);
    expect(denial(set.evaluate(alice, inference(chat("x"), { model: "mixtral-8x7b" }))).code).toBe("model_not_allowed");
    expect(denial(set.evaluate(alice, inference(chat("x"), { connection: "gpt" }))).code).toBe("model_not_allowed");
    expect(denial(set.evaluate(alice, inference(chat("x"), { model: "mixtral-8x7b", operation: "raw" }))).code).toBe(
      "model_not_allowed",
    );
  });

  it("ignores disabled policies entirely", () => {
    const off = policy("off", { operations: ["models.list"] }, { enabled: false });
    const set = new PolicySet([off, policy("off-too", {}, { enabled: false })]);
    expect(set.size).toBe(0);
    expect(denial(set.evaluate(alice, inference())).code).toBe("model_not_allowed");
  });

  it.each([
    ["*", "anything/at:all", true],
    ["llama-3.1-8b-instruct", "llama-3.1-8b-instruct", true],
    ["llama-3.1-8b-instruct", "llama-3.1-8b-instruct-q4", false],
    ["llama-3.1-8b-instruct*", "llama-3.1-8b-instruct-q4", true],
    ["llama-3.1-8b-instruct*", "Llama-3.1-8b-instruct", false],
    ["*:8b", "qwen2.5:8b", true],
    ["*:8b", "qwen2.5:8b-q4", false],
    ["meta-llama/*-Instruct", "meta-llama/Llama-3.1-70B-Instruct", true],
    ["a*b*c", "abc", true],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "acb", false],
    ["ab*ba", "aba", false],
    ["a*a*a*a*a*a*b", `${"a".repeat(10_000)}`, false],
    ["llama.3", "llama-3", false],
    ["llama?", "llama1", false],
  ])("model pattern %s matches %s: %s", (pattern, model, expected) => {
    const set = new PolicySet([policy("p", { resources: [{ connection: "llama", models: [pattern] }] })]);
    expect(set.evaluate(alice, inference(chat("x"), { model })).decision).toBe(expected ? "allowed" : "denied");
  });

  it("grants the connection to requests that name no model, whatever the model patterns", () => {
    const set = new PolicySet([
      policy("p", { resources: [{ connection: "llama", models: ["only-this"] }], operations: ["models.list"] }),
    ]);
    const request: EvaluationRequest = { connection: "llama", operation: "models.list", format: "none" };
    expect(set.evaluate(alice, request).decision).toBe("allowed");
  });

  it("matches users by id exactly or by email case-insensitively, and API keys by id", () => {
    const key = "0194f5c2-7f3b-7cc3-8f00-123456789abc";
    const set = new PolicySet([
      policy("by-id", { subjects: { users: ["u-carol"] } }),
      policy("by-email", { subjects: { users: ["DAVE@example.com"] } }),
      policy("by-key", { subjects: { apiKeys: [key.toUpperCase()] } }),
    ]);
    const person = (userId: string, email?: string): Subject => ({ userId, email, groups: [] });
    expect(set.evaluate(person("u-carol"), inference()).decision).toBe("allowed");
    expect(set.evaluate(person("U-CAROL"), inference()).decision).toBe("denied");
    expect(set.evaluate(person("u-dave", "dave@EXAMPLE.com"), inference()).decision).toBe("allowed");
    expect(set.evaluate(person("u-dave"), inference()).decision).toBe("denied");
    expect(set.evaluate({ userId: key, groups: [], apiKeyId: key }, inference()).decision).toBe("allowed");
    expect(set.evaluate(person(""), inference()).decision).toBe("denied");
  });

  it("counts a policy once when the subject matches it several ways", () => {
    const p = policy("p", { subjects: { groups: ["a", "b"], users: ["u-x"] }, operations: ["models.list"] });
    const evaluation = denial(new PolicySet([p]).evaluate({ userId: "u-x", groups: ["a", "b"] }, inference()));
    expect(evaluation.policyIds).toEqual([p.id]);
    expect(evaluation.reasons).toHaveLength(2);
  });

  it("matches groups exactly", () => {
    const set = new PolicySet([policy("p")]);
    expect(set.evaluate({ userId: "x", groups: ["Data-Science"] }, inference()).decision).toBe("denied");
    expect(set.evaluate({ userId: "x", groups: ["ops", "data-science"] }, inference()).decision).toBe("allowed");
  });
});

describe("PolicySet: limits", () => {
  it("picks the most permissive allowing grant: the highest token cap, no cap highest", () => {
    const small = policy("small", { limits: { maxTokens: 256, requestsPerMinute: 10 } });
    const large = policy("large", { limits: { maxTokens: 4096, requestsPerMinute: 5, tokensPerMinute: 1000 } });
    const evaluation = allowance(
      new PolicySet([small, large]).evaluate(alice, inference(chat("hi", { max_tokens: 100 }))),
    );
    expect(evaluation.policyIds).toEqual([large.id]);
    expect(evaluation.effectiveLimits).toEqual({ maxTokens: 4096, requestsPerMinute: 5, tokensPerMinute: 1000 });
    expect(evaluation.rateLimit).toEqual({ policyId: large.id, requestsPerMinute: 5, tokensPerMinute: 1000 });

    const unlimited = policy("unlimited", { limits: { requestsPerMinute: 1 } });
    const winner = allowance(new PolicySet([small, large, unlimited]).evaluate(alice, inference()));
    expect(winner.policyIds).toEqual([unlimited.id]);
    expect(winner.capped).toEqual([]);
  });

  it("breaks ties by request rate, then token rate, then policy id", () => {
    const a = policy("a", { limits: { maxTokens: 100, requestsPerMinute: 10, tokensPerMinute: 500 } }, { id: "b-id" });
    const b = policy("b", { limits: { maxTokens: 100, requestsPerMinute: 20, tokensPerMinute: 100 } }, { id: "c-id" });
    const c = policy("c", { limits: { maxTokens: 100, requestsPerMinute: 20 } }, { id: "d-id" });
    const d = policy("d", { limits: { maxTokens: 100, requestsPerMinute: 20 } }, { id: "a-id" });
    const winner = (policies: (typeof a)[]) =>
      allowance(new PolicySet(policies).evaluate(alice, inference())).policyIds;
    expect(winner([a, b])).toEqual(["c-id"]);
    expect(winner([b, c])).toEqual(["d-id"]);
    expect(winner([c, d])).toEqual(["a-id"]);
    expect(winner([d, c])).toEqual(["a-id"]);
  });

  it("skips a grant the request breaks and uses one it satisfies", () => {
    const generous = policy("generous", { limits: { maxTokens: 8000, temperature: { max: 0.5 } } });
    const strict = policy("strict", { limits: { maxTokens: 1024, temperature: { max: 1 } } });
    const evaluation = allowance(
      new PolicySet([generous, strict]).evaluate(alice, inference(chat("hi", { max_tokens: 500, temperature: 0.9 }))),
    );
    expect(evaluation.policyIds).toEqual([strict.id]);
  });

  it("denies when each grant allows one parameter but none allows the request", () => {
    const generous = policy("generous", { limits: { maxTokens: 8000, temperature: { max: 0.5 } } });
    const strict = policy("strict", { limits: { maxTokens: 1024, temperature: { max: 1 } } });
    const evaluation = denial(
      new PolicySet([generous, strict]).evaluate(alice, inference(chat("hi", { max_tokens: 4000, temperature: 0.9 }))),
    );
    expect(evaluation).toEqual({
      decision: "denied",
      code: "parameter_limit_exceeded",
      param: "max_tokens",
      policyIds: [generous.id, strict.id],
      reasons: [
        'max_tokens 4000 exceeds the limit 1024 of policy "strict"',
        'temperature 0.9 exceeds the maximum 0.5 of policy "generous"',
      ],
    });
  });

  it("names the most permissive grant's limit when every grant refuses the same parameter", () => {
    const set = new PolicySet([
      policy("ds-public-llama", { limits: { maxTokens: 1024 } }),
      policy("tiny", { limits: { maxTokens: 16 } }),
    ]);
    const evaluation = denial(set.evaluate(alice, inference(chat("hi", { max_tokens: 4000 }))));
    expect(evaluation.param).toBe("max_tokens");
    expect(evaluation.reasons).toEqual(['max_tokens 4000 exceeds the limit 1024 of policy "ds-public-llama"']);
  });

  it("checks max_tokens and max_completion_tokens both", () => {
    const set = new PolicySet([policy("p", { limits: { maxTokens: 1024 } })]);
    const both = denial(set.evaluate(alice, inference(chat("hi", { max_tokens: 10, max_completion_tokens: 5000 }))));
    expect(both.param).toBe("max_completion_tokens");
    const completion = allowance(set.evaluate(alice, inference(chat("hi", { max_completion_tokens: 1000 }))));
    expect(completion.capped).toEqual([]);
    expect(completion.estimatedTokens).toBe(1 + 1000);
  });

  it.each([
    ["openai.chat", chat("hi"), { parameter: "max_tokens", path: ["max_tokens"], value: 512 }],
    ["openai.completions", { prompt: "hi" }, { parameter: "max_tokens", path: ["max_tokens"], value: 512 }],
    [
      "ollama.generate",
      { prompt: "hi" },
      { parameter: "options.num_predict", path: ["options", "num_predict"], value: 512 },
    ],
    [
      "ollama.chat",
      { messages: [{ role: "user", content: "hi" }], options: { temperature: 0.1 } },
      { parameter: "options.num_predict", path: ["options", "num_predict"], value: 512 },
    ],
    [
      "tgi.generate",
      { inputs: "hi" },
      { parameter: "parameters.max_new_tokens", path: ["parameters", "max_new_tokens"], value: 512 },
    ],
  ] as const)("caps a %s request that sets no token limit", (format, body, edit) => {
    const cap = policy("capped", { limits: { maxTokens: 512 } });
    const evaluation = allowance(new PolicySet([cap]).evaluate(alice, inference({ ...body }, { format })));
    expect(evaluation.capped).toEqual([edit]);
    expect(evaluation.reasons).toEqual([
      'allowed by policy "capped"',
      `${edit.parameter} set to 512, the limit of policy "capped", as the request set none`,
    ]);
    expect(evaluation.estimatedTokens).toBe(1 + 512);
  });

  it("caps a null token parameter (clients send null for 'not set'), and never caps embeddings", () => {
    const set = new PolicySet([policy("p", { limits: { maxTokens: 64 }, operations: ["inference", "embeddings"] })]);
    expect(allowance(set.evaluate(alice, inference(chat("hi", { max_tokens: null })))).capped).toHaveLength(1);
    const embeddings = allowance(
      set.evaluate(alice, inference({ input: "abcdefgh" }, { operation: "embeddings", format: "openai.embeddings" })),
    );
    expect(embeddings.capped).toEqual([]);
    expect(embeddings.estimatedTokens).toBe(2);
  });

  it("never changes the body: the gateway applies the edits", () => {
    const body = chat("hi");
    const copy = structuredClone(body);
    new PolicySet([policy("p", { limits: { maxTokens: 64 } })]).evaluate(alice, inference(body));
    expect(body).toEqual(copy);
  });

  it("treats Ollama's negative num_predict as unlimited: above any cap", () => {
    const capped = new PolicySet([policy("p", { limits: { maxTokens: 1024 } })]);
    const body = { prompt: "hi", options: { num_predict: -1 } };
    const evaluation = denial(capped.evaluate(alice, inference(body, { format: "ollama.generate" })));
    expect(evaluation.param).toBe("options.num_predict");
    expect(evaluation.reasons).toEqual(['options.num_predict -1 (unlimited) exceeds the limit 1024 of policy "p"']);

    const open = new PolicySet([policy("p")]);
    const allowed = allowance(open.evaluate(alice, inference(body, { format: "ollama.generate" })));
    expect(allowed.estimatedTokens).toBe(1);
  });

  it.each([
    ["openai.chat", chat("hi", { max_tokens: "100" }), "max_tokens"],
    ["openai.chat", chat("hi", { max_completion_tokens: [1] }), "max_completion_tokens"],
    ["ollama.generate", { prompt: "hi", options: { num_predict: "many" } }, "options.num_predict"],
    ["ollama.generate", { prompt: "hi", options: "fast" }, "options"],
    ["tgi.generate", { inputs: "hi", parameters: { max_new_tokens: true } }, "parameters.max_new_tokens"],
    ["openai.chat", chat("hi", { temperature: "hot" }), "temperature"],
    ["ollama.chat", { messages: [], options: { temperature: {} } }, "options.temperature"],
  ] as const)("refuses a limited %s parameter that is not a number (%j)", (format, body, param) => {
    const set = new PolicySet([policy("p", { limits: { maxTokens: 100, temperature: { max: 1 } } })]);
    const evaluation = denial(set.evaluate(alice, inference({ ...body }, { format })));
    expect(evaluation.code).toBe("invalid_request");
    expect(evaluation.param).toBe(param);
    expect(evaluation.reasons).toEqual([`${param} must be ${param === "options" ? "an object" : "a number"}`]);
  });

  it("passes a malformed parameter no grant limits on to the runtime", () => {
    const set = new PolicySet([policy("p")]);
    expect(set.evaluate(alice, inference(chat("hi", { temperature: "hot" }))).decision).toBe("allowed");
  });

  it("checks temperature against min and max, for each format's parameter", () => {
    const set = new PolicySet([policy("p", { limits: { temperature: { min: 0.2, max: 1 } } })]);
    expect(set.evaluate(alice, inference(chat("hi", { temperature: 0.2 }))).decision).toBe("allowed");
    expect(set.evaluate(alice, inference(chat("hi", { temperature: 1 }))).decision).toBe("allowed");
    expect(set.evaluate(alice, inference(chat("hi"))).decision).toBe("allowed");
    expect(denial(set.evaluate(alice, inference(chat("hi", { temperature: 1.5 }))))).toMatchObject({
      param: "temperature",
      reasons: ['temperature 1.5 exceeds the maximum 1 of policy "p"'],
    });
    expect(denial(set.evaluate(alice, inference(chat("hi", { temperature: 0 }))))).toMatchObject({
      param: "temperature",
      reasons: ['temperature 0 is below the minimum 0.2 of policy "p"'],
    });
    const ollama = inference({ prompt: "hi", options: { temperature: 2 } }, { format: "ollama.generate" });
    expect(denial(set.evaluate(alice, ollama)).param).toBe("options.temperature");
    const tgi = inference({ inputs: "hi", parameters: { temperature: 0.1 } }, { format: "tgi.generate" });
    expect(denial(set.evaluate(alice, tgi)).param).toBe("parameters.temperature");
  });

  it("counts maxPromptChars in code points, before normalisation", () => {
    const set = new PolicySet([policy("p", { limits: { maxPromptChars: 4 } })]);
    expect(set.evaluate(alice, inference(chat("😀😀😀😀"))).decision).toBe("allowed");
    expect(set.evaluate(alice, inference(chat("ｅｘｐｏ"))).decision).toBe("allowed");
    const evaluation = denial(set.evaluate(alice, inference(chat("😀😀😀😀😀"))));
    expect(evaluation).toMatchObject({
      code: "parameter_limit_exceeded",
      param: "prompt",
      reasons: ['prompt of 5 characters exceeds the limit 4 of policy "p"'],
    });
  });

  it("estimates tokens as a quarter of the prompt's code points plus the generation bound", () => {
    const set = new PolicySet([policy("p", { limits: { maxTokens: 100 } })]);
    const prompt = "x".repeat(401);
    expect(allowance(set.evaluate(alice, inference(chat(prompt)))).estimatedTokens).toBe(101 + 100);
    expect(allowance(set.evaluate(alice, inference(chat(prompt, { max_tokens: 7 })))).estimatedTokens).toBe(101 + 7);
    const open = new PolicySet([policy("p")]);
    expect(allowance(open.evaluate(alice, inference(chat(prompt)))).estimatedTokens).toBe(101);
  });

  it("hands out limits the caller cannot change for later requests", () => {
    const set = new PolicySet([policy("p", { limits: { maxTokens: 10, temperature: { max: 1 } } })]);
    const limits = allowance(set.evaluate(alice, inference())).effectiveLimits;
    expect(() => {
      limits.maxTokens = 99;
    }).toThrow(TypeError);
    expect(Object.isFrozen(limits.temperature)).toBe(true);
  });
});

describe("PolicySet: prompt rules", () => {
  const exportRule = {
    pattern: "(export|dump) (all|every)",
    flags: "i",
    action: "block",
    description: "bulk export",
  } as const;

  it("blocks a matching prompt and names the rule and the policy", () => {
    const ds = policy("ds-public-llama", { promptRules: [exportRule] });
    const evaluation = denial(new PolicySet([ds]).evaluate(alice, inference(chat("Please EXPORT ALL customers"))));
    expect(evaluation).toEqual({
      decision: "denied",
      code: "prompt_blocked",
      policyIds: [ds.id],
      reasons: ['the prompt is blocked by rule "bulk export" of policy "ds-public-llama" (field "messages.0.content")'],
      param: "messages.0.content",
      promptRule: { policyId: ds.id, rule: 0, field: "messages.0.content" },
    });
  });

  it("sees through full-width letters and zero-width characters", () => {
    const set = new PolicySet([policy("p", { promptRules: [exportRule] })]);
    expect(set.evaluate(alice, inference(chat("ｅｘｐｏｒｔ ａｌｌ rows"))).decision).toBe("denied");
    expect(set.evaluate(alice, inference(chat("ex\u200bport\u00ad a\u2060ll"))).decision).toBe("denied");
    expect(set.evaluate(alice, inference(chat("export\u{e0020}all"))).decision).toBe("allowed");
    expect(set.evaluate(alice, inference(chat("report on all regions"))).decision).toBe("allowed");
  });

  it("applies the rules of every grant: a permissive grant does not lift another's block", () => {
    const open = policy("open", { limits: { maxTokens: 100_000 } });
    const guarded = policy("guarded", {
      limits: { maxTokens: 10 },
      promptRules: [{ pattern: "secret", action: "block" }],
    });
    const set = new PolicySet([open, guarded]);
    const evaluation = denial(set.evaluate(alice, inference(chat("tell me the secret"))));
    expect(evaluation).toMatchObject({
      code: "prompt_blocked",
      policyIds: [guarded.id],
      reasons: ['the prompt is blocked by a prompt rule of policy "guarded" (field "messages.0.content")'],
    });
    expect(allowance(set.evaluate(alice, inference(chat("hello")))).policyIds).toEqual([open.id]);
  });

  it("does not apply rules of policies that do not grant the request", () => {
    const other = policy("other-connection", {
      resources: [{ connection: "gpt" }],
      promptRules: [{ pattern: "secret", action: "block" }],
    });
    const embeddingsOnly = policy("embeddings-only", {
      operations: ["embeddings"],
      promptRules: [{ pattern: "secret", action: "block" }],
    });
    const set = new PolicySet([policy("plain"), other, embeddingsOnly]);
    expect(set.evaluate(alice, inference(chat("the secret"))).decision).toBe("allowed");
  });

  it("allows a prompt a require_approval rule matches, naming the rule and the policy's approval settings", () => {
    const p = policy("p", {
      promptRules: [
        { pattern: "salary", action: "require_approval", description: "payroll" },
        { pattern: "password", action: "block" },
      ],
      approval: { approverGroups: ["security"], minApprovals: 2, grant: "window", windowMinutes: 30 },
    });
    const set = new PolicySet([p]);
    const held = allowance(set.evaluate(alice, inference(chat("what is the salary band?"))));
    expect(held.approvals).toEqual([
      {
        policyId: p.id,
        policyName: "p",
        rule: 0,
        field: "messages.0.content",
        reason: 'the prompt needs approval under rule "payroll" of policy "p" (field "messages.0.content")',
        approverGroups: ["security"],
        minApprovals: 2,
        grant: "window",
        windowMinutes: 30,
        expiresMinutes: 60,
      },
    ]);
    expect(held.reasons).toContain(held.approvals?.[0]?.reason);
    // A block rule overrides an approval rule: nothing a human could approve.
    const blocked = denial(set.evaluate(alice, inference(chat("salary and password"))));
    expect(blocked.code).toBe("prompt_blocked");
    expect(blocked.reasons[0]).toContain("blocked by a prompt rule");
    expect(allowance(set.evaluate(alice, inference(chat("hello")))).approvals).toBeUndefined();
  });

  it("takes the defaults when a policy with require_approval rules has no approval block", () => {
    const p = policy("p", { promptRules: [{ pattern: "salary", action: "require_approval" }] });
    const held = allowance(new PolicySet([p]).evaluate(alice, inference(chat("salary"))));
    expect(held.approvals?.[0]).toMatchObject({
      rule: 0,
      approverGroups: [],
      minApprovals: 1,
      grant: "request",
      windowMinutes: undefined,
      expiresMinutes: 60,
    });
  });

  it("never holds for approval a request the policies refuse anyway", () => {
    const p = policy("p", {
      limits: { maxTokens: 100 },
      promptRules: [{ pattern: "salary", action: "require_approval" }],
      approval: { required: true },
    });
    const refused = denial(new PolicySet([p]).evaluate(alice, inference({ ...chat("salary"), max_tokens: 500 })));
    expect(refused.code).toBe("parameter_limit_exceeded");
  });

  it("holds every request of a grant with approval.required, unless another grant admits it outright", () => {
    const guarded = policy("guarded", { approval: { required: true, approverGroups: ["security"] } });
    const held = allowance(new PolicySet([guarded]).evaluate(alice, inference()));
    expect(held.approvals).toHaveLength(1);
    expect(held.approvals?.[0]).toMatchObject({
      policyId: guarded.id,
      rule: undefined,
      field: "",
      reason: 'policy "guarded" grants this only with approval',
      approverGroups: ["security"],
    });
    expect(held.policyIds[0]).toBe(guarded.id);
    // A second grant without the requirement admits it, even if the guarded one is more permissive.
    const plain = policy("plain", { limits: { maxTokens: 10 } });
    const both = allowance(new PolicySet([guarded, plain]).evaluate(alice, inference()));
    expect(both.approvals).toBeUndefined();
    expect(both.policyIds[0]).toBe(plain.id);
    // Its limits still apply: a request only the guarded grant admits needs approval.
    const big = allowance(
      new PolicySet([guarded, plain]).evaluate(alice, inference({ ...chat("hi"), max_tokens: 50 })),
    );
    expect(big.approvals?.map((approval) => approval.policyId)).toEqual([guarded.id]);
  });

  it("within one policy, asks for the prompt rule's approval, which stands for the grant's", () => {
    const guarded = policy("guarded", {
      approval: { required: true, approverGroups: ["security"] },
      promptRules: [{ pattern: "salary", action: "require_approval", description: "payroll" }],
    });
    const set = new PolicySet([guarded]);
    expect(allowance(set.evaluate(alice, inference(chat("salary")))).approvals).toEqual([
      expect.objectContaining({ policyId: guarded.id, rule: 0 }),
    ]);
    expect(allowance(set.evaluate(alice, inference(chat("weather")))).approvals).toEqual([
      expect.objectContaining({ policyId: guarded.id, rule: undefined }),
    ]);
  });

  it("needs both when another policy's rule matches a request a guarded grant admits: neither's approvers stand in", () => {
    // The guarded grant wins (it allows the larger max_tokens); the lax policy's rule matches the prompt.
    const guarded = policy("guarded", {
      approval: { required: true, approverGroups: ["security"], minApprovals: 3 },
    });
    const lax = policy("lax", {
      limits: { maxTokens: 10 },
      promptRules: [{ pattern: "export", action: "require_approval" }],
      approval: { grant: "window", windowMinutes: 1440 },
    });
    const held = allowance(
      new PolicySet([guarded, lax]).evaluate(alice, inference({ ...chat("export the table"), max_tokens: 500 })),
    );
    expect(held.approvals?.map((approval) => [approval.policyId, approval.rule])).toEqual([
      [lax.id, 0],
      [guarded.id, undefined],
    ]);
  });

  it("matches rules across messages, tool-call arguments and every format", () => {
    const set = new PolicySet([
      policy("p", {
        operations: ["inference", "embeddings"],
        promptRules: [{ pattern: "forbidden", action: "block" }],
      }),
    ]);
    const cases: EvaluationRequest[] = [
      inference({
        messages: [
          { role: "user", content: "hi" },
          { role: "assistant", tool_calls: [{ function: { name: "f", arguments: '{"x":"forbidden"}' } }] },
        ],
      }),
      inference({ prompt: ["ok", "forbidden"] }, { format: "openai.completions" }),
      inference({ input: "forbidden" }, { operation: "embeddings", format: "openai.embeddings" }),
      inference({ system: "forbidden", prompt: "hi" }, { format: "ollama.generate" }),
      inference({ messages: [{ role: "user", content: "forbidden" }] }, { format: "ollama.chat" }),
      inference({ input: ["forbidden"] }, { operation: "embeddings", format: "ollama.embed" }),
      inference({ inputs: "forbidden" }, { format: "tgi.generate" }),
    ];
    for (const request of cases) expect(denial(set.evaluate(alice, request)).code).toBe("prompt_blocked");
  });

  it("refuses non-text prompts where prompt rules or a prompt size limit apply", () => {
    const ruled = new PolicySet([
      policy("ruled", { operations: ["inference", "embeddings"], promptRules: [{ pattern: "x", action: "block" }] }),
    ]);
    const tokens = inference({ prompt: [1, 2, 3] }, { format: "openai.completions" });
    expect(denial(ruled.evaluate(alice, tokens))).toEqual({
      decision: "denied",
      code: "invalid_request",
      param: "prompt",
      policyIds: [expect.any(String)],
      reasons: ['prompt must be text when prompt rules apply (policy "ruled")'],
    });
    const image = chat("", { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] });
    expect(denial(ruled.evaluate(alice, inference(image))).code).toBe("invalid_request");

    const sized = new PolicySet([policy("sized", { limits: { maxPromptChars: 100 } })]);
    expect(denial(sized.evaluate(alice, tokens)).code).toBe("invalid_request");

    const open = new PolicySet([policy("open")]);
    expect(open.evaluate(alice, tokens).decision).toBe("allowed");
  });

  it("refuses requests whose prompt it cannot read where prompt rules apply", () => {
    const set = new PolicySet([
      policy("p", {
        operations: ["raw", "read", "embeddings", "inference"],
        promptRules: [{ pattern: "x", action: "block" }],
      }),
    ]);
    const raw: EvaluationRequest = { connection: "llama", operation: "raw", format: "none" };
    expect(denial(set.evaluate(alice, raw)).code).toBe("invalid_request");
    const tgiEmbed: EvaluationRequest = { connection: "llama", operation: "embeddings", format: "none", body: {} };
    expect(denial(set.evaluate(alice, tgiEmbed)).code).toBe("invalid_request");
    expect(set.evaluate(alice, { connection: "llama", operation: "read", format: "none" }).decision).toBe("allowed");
    expect(denial(set.evaluate(alice, inference(undefined, { body: undefined }))).code).toBe("invalid_request");

    // The same raw request is allowed by a policy without prompt rules.
    const split = new PolicySet([
      policy("raw", { operations: ["raw"] }),
      policy("chat", { promptRules: [{ pattern: "x", action: "block" }] }),
    ]);
    expect(split.evaluate(alice, raw).decision).toBe("allowed");
  });
});

describe("PolicySet: routing helpers", () => {
  const set = new PolicySet([
    policy("chat", { resources: [{ connection: "llama", models: ["llama-*"] }], operations: ["inference"] }),
    policy("list", {
      resources: [{ connection: "llama", models: ["llama-3*", "mistral-7b"] }, { connection: "qwen" }],
      operations: ["models.list"],
    }),
    policy("off", { resources: [{ connection: "closed" }] }, { enabled: false }),
  ]);

  it("mayUse: any grant of any operation on the connection (and model)", () => {
    expect(set.mayUse(alice, "llama")).toBe(true);
    expect(set.mayUse(alice, "llama", "llama-2-13b")).toBe(true);
    expect(set.mayUse(alice, "llama", "mistral-7b")).toBe(true);
    expect(set.mayUse(alice, "llama", "gemma")).toBe(false);
    expect(set.mayUse(alice, "qwen", "anything")).toBe(true);
    expect(set.mayUse(alice, "closed")).toBe(false);
    expect(set.mayUse(bob, "llama")).toBe(false);
  });

  it("allowedModels: the models a subject may use with an operation, in the given order", () => {
    const models = ["mistral-7b", "llama-3.1-8b", "llama-2-13b", "gemma"];
    expect(set.allowedModels(alice, "llama", models)).toEqual(["mistral-7b", "llama-3.1-8b"]);
    expect(set.allowedModels(alice, "llama", models, "inference")).toEqual(["llama-3.1-8b", "llama-2-13b"]);
    expect(set.allowedModels(alice, "llama", models, "embeddings")).toEqual([]);
    expect(set.allowedModels(bob, "llama", models)).toEqual([]);
    expect(set.allowedModels(alice, "qwen", ["a", "b"])).toEqual(["a", "b"]);
  });
});

describe("PolicySet: policies it cannot use", () => {
  it("skips a policy whose pattern does not compile, reports it, and keeps the others", () => {
    const good = policy("good");
    const bad = policy("bad", { operations: ["inference", "embeddings"] });
    bad.definition.promptRules.push({ pattern: "(unclosed", flags: "", action: "block" });
    const set = new PolicySet([bad, good]);
    expect(set.size).toBe(1);
    expect(set.errors).toEqual([{ policyId: bad.id, message: expect.stringMatching(/promptRules\.0\.pattern/) }]);
    // Fail closed: the bad policy's rule is gone, and so is its grant of embeddings.
    const embeddings = denial(
      set.evaluate(alice, { ...inference(), operation: "embeddings", format: "openai.embeddings" }),
    );
    expect(embeddings).toMatchObject({ code: "operation_not_allowed", policyIds: [good.id] });
  });

  it("skips definitions the schema refuses (an unknown field from a newer control plane) and repeated ids", () => {
    const newer = policy("newer");
    (newer.definition as Record<string, unknown>).masking = { emails: true };
    const first = policy("first");
    const again = { ...policy("again", { operations: ["embeddings"] }), id: first.id };
    const set = new PolicySet([newer, first, again]);
    expect(set.size).toBe(1);
    expect(set.errors).toEqual([
      { policyId: newer.id, message: expect.stringMatching(/^invalid definition/) },
      { policyId: first.id, message: expect.stringMatching(/duplicate/) },
    ]);
  });

  it("never throws, whatever it is given", () => {
    const garbage = [{ id: "x", name: "x", revision: 1, enabled: true, definition: null }] as never;
    expect(() => new PolicySet(garbage)).not.toThrow();
    expect(new PolicySet(garbage).errors).toHaveLength(1);
  });
});
