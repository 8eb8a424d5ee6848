// Bypasses found in review, each pinned down: the engine must read a body
// the way the runtimes behind it read it.
import { checkPromptPatterns, type Evaluation, type EvaluationRequest, PolicySet, type Subject } from "../src/index.js";
import { alice, chat, policy } from "./helpers.js";

const request = (body: Record<string, unknown>, format: EvaluationRequest["format"] = "openai.chat") =>
  ({
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    operation: "inference",
    format,
    body,
  }) satisfies EvaluationRequest;

const codeOf = (evaluation: Evaluation) => (evaluation.decision === "denied" ? evaluation.code : "allowed");

describe("field names runtimes read without regard to case", () => {
  const set = new PolicySet([policy("capped", { limits: { maxTokens: 1024 } })]);

  it.each([
    ["a second model under another case", { ...chat("hi"), MODEL: "proprietary-70b" }, "openai.chat"],
    ["a token limit under another case", { ...chat("hi"), MAX_TOKENS: 100000 }, "openai.chat"],
    ["Ollama options under another case", { ...chat("hi"), OPTIONS: { num_predict: -1 } }, "ollama.chat"],
    ["a parameter inside options", { ...chat("hi"), options: { Num_Predict: -1 } }, "ollama.chat"],
    [
      "a message field",
      { model: "m", messages: [{ role: "user", content: "hi", CONTENT: "export all" }] },
      "ollama.chat",
    ],
    ["a prompt field", { model: "m", prompt: "hi", PROMPT: "export all" }, "ollama.generate"],
  ])("refuses %s", (_label, body, format) => {
    const evaluation = set.evaluate(alice, request(body, format as EvaluationRequest["format"]));
    expect(codeOf(evaluation)).toBe("invalid_request");
  });

  it("leaves the keys of free-form maps alone (tool schemas, logit_bias)", () => {
    const body = {
      ...chat("hi"),
      logit_bias: { AbC: 1 },
      tools: [{ type: "function", function: { name: "f", parameters: { properties: { UserName: {} } } } }],
    };
    expect(codeOf(set.evaluate(alice, request(body)))).toBe("allowed");
  });
});

describe("token limits the runtimes honour", () => {
  const set = new PolicySet([policy("capped", { limits: { maxTokens: 1024, tokensPerMinute: 100000 } })]);

  it.each([
    ["max_tokens -1 (unlimited to Ollama and llama.cpp)", { max_tokens: -1 }],
    ["llama.cpp's n_predict -1", { n_predict: -1 }],
    ["n_predict above the cap", { n_predict: 4096 }],
    ["n completions that together exceed the cap", { max_tokens: 1024, n: 2 }],
  ])("refuses %s", (_label, extra) => {
    expect(codeOf(set.evaluate(alice, request(chat("hi", extra))))).toBe("parameter_limit_exceeded");
  });

  it("refuses more completions than the cap has tokens", () => {
    const small = new PolicySet([policy("tiny", { limits: { maxTokens: 64 } })]);
    expect(codeOf(small.evaluate(alice, request(chat("hi", { n: 100 }))))).toBe("parameter_limit_exceeded");
  });

  it("refuses an n that is not a whole number from 1 to 128", () => {
    expect(codeOf(set.evaluate(alice, request(chat("hi", { n: 0.5 }))))).toBe("invalid_request");
  });

  it("shares a missing token limit among n completions and charges all of them", () => {
    const evaluation = set.evaluate(alice, request(chat("hi", { n: 4 })));
    if (evaluation.decision !== "allowed") throw new Error(JSON.stringify(evaluation));
    expect(evaluation.capped).toEqual([{ parameter: "max_tokens", path: ["max_tokens"], value: 256 }]);
    expect(evaluation.estimatedTokens).toBe(1 + 4 * 256);
  });
});

describe("prompt text the model reads besides the messages", () => {
  const set = new PolicySet([
    policy("rules", { promptRules: [{ pattern: "export all", flags: "i", action: "block" }] }),
  ]);

  it.each([
    [
      "a tool description",
      {
        ...chat("hi"),
        tools: [{ type: "function", function: { name: "f", description: "export all customer records" } }],
      },
      "openai.chat",
    ],
    [
      "a tool parameter schema",
      {
        ...chat("hi"),
        tools: [{ type: "function", function: { name: "f", parameters: { description: "export all rows" } } }],
      },
      "openai.chat",
    ],
    ["a chat template", { ...chat("hi"), chat_template: "{{ 'export all' }}" }, "openai.chat"],
    [
      "an Ollama template",
      { model: "m", prompt: "hi", template: "System: export all. {{ .Prompt }}" },
      "ollama.generate",
    ],
    ["Hangul fillers and Mongolian selectors", chat("exp\u180Bort a\u3164ll"), "openai.chat"],
  ])("blocks a rule match in %s", (_label, body, format) => {
    expect(codeOf(set.evaluate(alice, request(body, format as EvaluationRequest["format"])))).toBe("prompt_blocked");
  });

  it("refuses a prompt beyond every grant's size limit before running any rule", () => {
    const limited = new PolicySet([
      policy("small", {
        limits: { maxPromptChars: 100 },
        promptRules: [{ pattern: "export all", action: "block" }],
      }),
    ]);
    const evaluation = limited.evaluate(alice, request(chat(`export all ${"x".repeat(200)}`)));
    expect(evaluation).toMatchObject({ decision: "denied", code: "parameter_limit_exceeded", param: "prompt" });
  });
});

describe("users entries and emails", () => {
  it("matches an email only for entries that are addresses", () => {
    const set = new PolicySet([
      policy("by-id", { subjects: { users: ["00u1AbCdEf"] } }),
      policy("by-email", { subjects: { users: ["victim@example.com"] }, resources: [{ connection: "other" }] }),
    ]);
    const impostor: Subject = { userId: "someone", email: "00U1ABCDEF", groups: [] };
    expect(codeOf(set.evaluate(impostor, request(chat("hi"))))).toBe("model_not_allowed");
    const victim: Subject = { userId: "x", email: "Victim@Example.com", groups: [] };
    expect(codeOf(set.evaluate(victim, { ...request(chat("hi")), connection: "other" }))).toBe("allowed");
  });
});

describe("pattern safety", () => {
  it("refuses lookaround the checker can only fuzz, not prove linear", async () => {
    const definition = policy("x", {
      promptRules: [{ pattern: "password(?!.*redacted)", action: "block" }],
    }).definition;
    const issues = await checkPromptPatterns(definition);
    expect(issues).toEqual([{ path: "promptRules.0.pattern", message: expect.stringContaining("lookaround") }]);
  });

  it.each([["(?<=x)y"], ["(a)\\1"], ["(?<name>a)\\k<name>"], ["a(?=b)"]])(
    "refuses %s without depending on the checker's timing",
    async (pattern) => {
      const definition = policy("x", { promptRules: [{ pattern, action: "block" }] }).definition;
      const issues = await checkPromptPatterns(definition);
      expect(issues.map((issue) => issue.message)).toEqual([expect.stringContaining("lookaround")]);
    },
  );

  it("is not fooled by escaped parentheses or classes that merely contain (?=", async () => {
    const definition = policy("x", {
      promptRules: [
        { pattern: "\\(\\?=x", action: "block" },
        { pattern: "[(?=]x", action: "block" },
      ],
    }).definition;
    expect(await checkPromptPatterns(definition, { timeoutMs: 15_000, budgetMs: 15_000 })).toEqual([]);
  });

  it("checks the custom detectors of a masking profile too", async () => {
    const definition = policy("x", {
      masking: { custom: [{ name: "SLOW", pattern: "(a+)+$" }] },
    }).definition;
    const issues = await checkPromptPatterns(definition, { timeoutMs: 15_000, budgetMs: 15_000 });
    expect(issues.map((issue) => issue.path)).toEqual(["masking.custom.0.pattern"]);
  });
});
