// Prompt rules read every string of the body a runtime may render into the
// prompt, say which field matched, and read text in the same normal form as
// masking's deny-lists.
import { Masker, type MaskingProfile } from "@modelgate/masking";
import { OBFUSCATED_PHRASES } from "@modelgate/masking/testing";
import fc from "fast-check";
import { type Evaluation, type EvaluationRequest, PolicySet } from "../src/index.js";
import { normalizeRulePattern } from "../src/rule-pattern.js";
import { alice, chat, policy } from "./helpers.js";

type Body = Record<string, unknown>;

const request = (body: Body, format: EvaluationRequest["format"] = "openai.chat"): EvaluationRequest => ({
  connection: "llama",
  model: "llama-3.1-8b-instruct",
  operation: "inference",
  format,
  body,
});

const rules = new PolicySet([
  policy("rules", { promptRules: [{ pattern: "export all", flags: "i", action: "block", description: "bulk" }] }),
]);

const fieldOf = (evaluation: Evaluation) =>
  evaluation.decision === "denied" && evaluation.code === "prompt_blocked" ? evaluation.promptRule?.field : "allowed";

const PHRASE = "please export all rows";

describe("prompt rules read every string a runtime may render", () => {
  const cases: [string, Body, string, EvaluationRequest["format"]?][] = [
    ["vLLM documents", { ...chat("hi"), documents: [{ title: "q3", text: PHRASE }] }, "documents.0.text"],
    [
      "a chat_template_kwargs value",
      { ...chat("hi"), chat_template_kwargs: { note: PHRASE } },
      "chat_template_kwargs.note",
    ],
    [
      "a chat_template_kwargs key",
      { ...chat("hi"), chat_template_kwargs: { [PHRASE]: true } },
      "chat_template_kwargs.*",
    ],
    [
      "a message's name",
      {
        model: "m",
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "hi" },
          { role: "user", name: PHRASE, content: "hi" },
        ],
      },
      "messages.2.name",
    ],
    [
      "a role outside the known ones",
      { model: "m", messages: [{ role: `user\n${PHRASE}`, content: "hi" }] },
      "messages.0.role",
    ],
    [
      "a tool call id",
      {
        model: "m",
        messages: [
          {
            role: "assistant",
            tool_calls: [{ id: PHRASE, type: "function", function: { name: "f", arguments: "{}" } }],
          },
        ],
      },
      "messages.0.tool_calls.0.id",
    ],
    [
      "a field no format knows",
      { ...chat("hi"), next_release_field: { deep: [[PHRASE]] } },
      "next_release_field.deep.0.0",
    ],
    [
      "a JSON schema's property name",
      {
        ...chat("hi"),
        response_format: { type: "json_schema", json_schema: { name: "s", schema: { properties: { [PHRASE]: {} } } } },
      },
      "response_format.json_schema.schema.properties.*",
    ],
    ["a reasoning effort outside its words", { ...chat("hi"), reasoning_effort: PHRASE }, "reasoning_effort"],
    [
      "Ollama's options",
      { model: "m", prompt: "hi", options: { mirostat_hint: PHRASE } },
      "options.mirostat_hint",
      "ollama.generate",
    ],
    [
      "a TGI grammar",
      { inputs: "hi", parameters: { grammar: { type: "regex", value: PHRASE } } },
      "parameters.grammar.value",
      "tgi.generate",
    ],
  ];
  // Every row gets a format: Jest would pass its done callback for a missing one.
  it.each(cases.map(([label, body, field, format = "openai.chat"]) => [label, body, field, format] as const))(
    "blocks a match in %s, naming the field",
    (_label, body, field, format) => {
      expect(fieldOf(rules.evaluate(alice, request(body, format)))).toBe(field);
    },
  );

  it.each<[string, Body]>([
    ["the model name", { ...chat("hi"), model: PHRASE }],
    ["stop sequences", { ...chat("hi"), stop: [PHRASE] }],
    ["the end-user id", { ...chat("hi"), user: PHRASE }],
    ["known roles and types", { model: "m", messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }] }],
    ["numbers and booleans", { ...chat("hi"), seed: 1, stream: true, logit_bias: { "50256": -100 } }],
  ])("does not read %s", (_label, body) => {
    const evaluation = rules.evaluate(alice, { ...request(body), model: "llama-3.1-8b-instruct" });
    expect(evaluation.decision).toBe("allowed");
  });

  it("does not read Ollama's keep_alive, or stop sequences in options", () => {
    const body = { model: "m", prompt: "hi", keep_alive: PHRASE, options: { stop: [PHRASE] } };
    expect(rules.evaluate(alice, request(body, "ollama.generate")).decision).toBe("allowed");
  });

  it("keeps prompt text out of the reported path: a free-form key that is not a name reads *", () => {
    const body = { ...chat("hi"), metadata: { "card 4111 1111 1111 1111": { note: PHRASE } } };
    const evaluation = rules.evaluate(alice, request(body));
    expect(fieldOf(evaluation)).toBe("metadata.*.note");
    expect(JSON.stringify(evaluation)).not.toContain("4111");
  });

  it("counts what it reads against maxPromptChars", () => {
    const limited = new PolicySet([policy("small", { limits: { maxPromptChars: 50 } })]);
    const evaluation = limited.evaluate(alice, request({ ...chat("hi"), documents: [{ text: "x".repeat(60) }] }));
    expect(evaluation).toMatchObject({ code: "parameter_limit_exceeded", param: "prompt" });
  });

  it("reads a deeply nested body without running out of stack", () => {
    let deep: unknown = PHRASE;
    for (let depth = 0; depth < 100_000; depth++) deep = [deep];
    const evaluation = rules.evaluate(alice, request({ ...chat("hi"), extra: deep }));
    expect(fieldOf(evaluation)).toMatch(/^extra\.0\.0\./);
  });
});

describe("prompt rules and deny-lists read the same normal form", () => {
  const masking = (terms: string[]): MaskingProfile => ({
    entities: [],
    custom: [],
    denyList: [{ name: "TERM", terms }],
    style: "label",
    fields: [],
    onError: "block",
    maskPromptsInAudit: false,
  });

  const phrases = [
    ...OBFUSCATED_PHRASES.map((phrase) => ({ ...phrase, matches: true })),
    { kind: "a letter missing", text: "expor all", normal: "expor all", matches: false },
    { kind: "a space missing", text: "export\u200ball", normal: "exportall", matches: false },
    { kind: "a different word", text: "exports all", normal: "exports all", matches: false },
  ];

  it.each(phrases.map((phrase) => [phrase.kind, phrase]))("agree on %s", (_kind, phrase) => {
    const prompt = `please ${phrase.text} rows`;
    const term = phrase.matches ? phrase.normal : "export all";
    const ruled = new PolicySet([policy("r", { promptRules: [{ pattern: term, flags: "i", action: "block" }] })]);
    const blocked = ruled.evaluate(alice, request(chat(prompt))).decision === "denied";
    const masked = new Masker(masking([term])).maskText(prompt).text !== prompt;
    expect({ blocked, masked }).toEqual({ blocked: phrase.matches, masked: phrase.matches });
  });
});

describe("rule patterns read as the prompt does", () => {
  const blocks = (pattern: string, prompt: string, flags = "") =>
    new PolicySet([policy("r", { promptRules: [{ pattern, flags, action: "block" }] })]).evaluate(
      alice,
      request(chat(prompt)),
    ).decision === "denied";

  it.each([
    ["an accented word", "contraseña", "la contraseña es", true],
    ["an accented word, decomposed in the prompt", "contraseña", "la contrasen\u0303a es", true],
    ["a Cyrillic word", "пароль", "мой пароль", true],
    ["a Cyrillic word with Latin look-alikes in the prompt", "пароль", "мой пapoль", true],
    ["a Greek word", "κωδικός", "ο κωδικος", true],
    ["an escaped accent", "caf\\u00e9", "un café", true],
    ["an accent in a class", "caf[éè]", "un cafe", true],
    ["a run of spaces", "export  all", "export all", true],
    ["a tab escape", "export\\tall", "export\tall", true],
    ["a range left as written", "[а-я]{3}", "лиш", true],
    // Documented: a range spans code points, and look-alikes read as Latin letters outside it.
    ["a Cyrillic range, not the look-alikes", "^[а-я]+$", "пароль", false],
    ["a property escape", "\\p{Script=Han}{2}", "東京", true],
    ["a Cyrillic word does not match another", "пароль", "мой логин", false],
  ])("%s", (_label, pattern, prompt, expected) => {
    expect(blocks(pattern, prompt)).toBe(expected);
  });

  it("leaves ASCII patterns as written", () => {
    for (const pattern of ["(export|dump) (all|every)", "\\bssn:\\s+\\d{3}", "[a-z]{2,}@corp\\.com", "a\\.b"]) {
      expect(normalizeRulePattern(pattern)).toBe(pattern);
    }
  });

  it("turns every pattern that compiles into one that compiles", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        "a",
        "é",
        "e\u0301",
        "（",
        "）",
        "ｘ",
        "ﬁ",
        "⑴",
        "а",
        "\u200b",
        " ",
        "  ",
        "\t",
        "\u00a0",
        "𝐀",
        "-",
      ),
      fc.constantFrom(
        "\\u00e9",
        "\\u{1d400}",
        "\\x41",
        "\\t",
        "\\n",
        "\\s",
        "\\d",
        "\\b",
        "\\.",
        "\\-",
        "\\p{L}",
        "\\ud835\\udc00",
      ),
      fc.constantFrom("[éa-z]", "[^ё\\-]", "[а-я]", "[\\u00e0-\\u00ff]", "[-é]", "[é-]", "[（]", "[\\p{Lu}é]", "[ﬁ]"),
      fc.constantFrom("(?:", "(?<n1>", "(", ")", "|", "*", "+", "?", "{2}", "{1,3}", "^", "$", "."),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const pattern = pieces.join("");
        try {
          new RegExp(pattern, "u");
        } catch {
          return; // only patterns that compile as written are stored
        }
        expect(() => new RegExp(normalizeRulePattern(pattern), "u")).not.toThrow();
      }),
      { numRuns: 3000, seed: 42 },
    );
  });

  it("writes literals so that they stay literals", () => {
    expect(normalizeRulePattern("（x）")).toBe("\\(x\\)");
    expect(normalizeRulePattern("ﬁ+")).toBe("(?:fi)+");
    expect(normalizeRulePattern("e\u0301?")).toBe("e(?:)?");
    expect(normalizeRulePattern("(?<név>é)\\k<név>")).toBe("(?<név>e)\\k<név>");
    expect(normalizeRulePattern("[^ё\\-]")).toBe("[^e\\-]");
  });
});
