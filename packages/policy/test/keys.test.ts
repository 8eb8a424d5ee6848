// Field names a Go runtime would fold onto a real field (Unicode simple case
// folding: "ſ" is "s", the Kelvin sign is "k", upper case is lower case)
// must be refused wherever a runtime maps keys onto fields, and kept in
// free-form maps, for every format.
import fc from "fast-check";
import { type Evaluation, type EvaluationRequest, PolicySet } from "../src/index.js";
import { alice, policy } from "./helpers.js";

/** Characters a loose matcher reads as each ASCII letter: its upper case, fold partners, full-width, dotted and dotless i. */
function variants(char: string): string[] {
  const code = char.charCodeAt(0);
  const found = new Set<string>();
  if (/[a-z]/.test(char)) {
    found.add(char.toUpperCase());
    found.add(String.fromCharCode(0xff41 + code - 0x61)); // full-width lower
    found.add(String.fromCharCode(0xff21 + code - 0x61)); // full-width upper
  }
  if (/[0-9]/.test(char)) found.add(String.fromCharCode(0xff10 + code - 0x30));
  if (char === "_") found.add("\uff3f");
  if (char === "s") found.add("\u017f"); // long s
  if (char === "k") found.add("\u212a"); // Kelvin sign
  if (char === "i") {
    found.add("\u0130"); // İ
    found.add("\u0131"); // ı
  }
  if (char === "a") found.add("\u0430"); // Cyrillic а: not a fold, but no runtime field has it either
  return [...found];
}

/** A name with at least one character replaced by a look-alike from its class. */
function loose(name: string): fc.Arbitrary<string> {
  const positions = [...name].map((char, index) => ({ char, index })).filter(({ char }) => variants(char).length > 0);
  return fc
    .tuple(
      fc.constantFrom(...positions),
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }),
      fc.nat(),
    )
    .map(([forced, others, pick]) =>
      [...name]
        .map((char, index) => {
          const options = variants(char);
          if (options.length === 0 || (index !== forced.index && !others[index])) return char;
          return options[(pick + index) % options.length] as string;
        })
        .join(""),
    );
}

type Body = Record<string, unknown>;
type Format = EvaluationRequest["format"];

/** One object of a request a runtime maps onto fields: where it sits, a field name of it, and how to reach it. */
interface Level {
  format: Format;
  path: (string | number)[];
  name: string;
}

const OPENAI_CHAT: Body = {
  model: "m",
  messages: [
    { role: "user", content: [{ type: "text", text: "hi" }] },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
    },
  ],
  tools: [{ type: "function", function: { name: "f", description: "d", parameters: { type: "object" } } }],
  response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object" } } },
  stream_options: { include_usage: true },
  tool_choice: { type: "function", function: { name: "f" } },
  logit_bias: { "50256": -100 },
  metadata: { team: "ds" },
  chat_template_kwargs: { enable_thinking: false },
  documents: [{ title: "t", text: "x" }],
};

const OLLAMA_CHAT: Body = {
  model: "m",
  messages: [
    { role: "user", content: "hi" },
    { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: { q: "x" } } }] },
  ],
  options: { num_predict: 16, temperature: 0.5 },
  format: { type: "object", properties: { answer: { type: "string" } } },
};

const OLLAMA_GENERATE: Body = { model: "m", prompt: "hi", options: { num_predict: 16 } };
const TGI: Body = {
  inputs: "hi",
  parameters: { max_new_tokens: 16, grammar: { type: "json", value: { type: "object" } } },
};

const BODIES: Partial<Record<Format, Body>> = {
  "openai.chat": OPENAI_CHAT,
  "ollama.chat": OLLAMA_CHAT,
  "ollama.generate": OLLAMA_GENERATE,
  "tgi.generate": TGI,
};

const FIELD_LEVELS: Level[] = [
  { format: "openai.chat", path: [], name: "max_tokens" },
  { format: "openai.chat", path: [], name: "messages" },
  { format: "openai.chat", path: ["messages", 0], name: "content" },
  { format: "openai.chat", path: ["messages", 0, "content", 0], name: "text" },
  { format: "openai.chat", path: ["messages", 1, "tool_calls", 0], name: "function" },
  { format: "openai.chat", path: ["messages", 1, "tool_calls", 0, "function"], name: "arguments" },
  { format: "openai.chat", path: ["tools", 0], name: "type" },
  { format: "openai.chat", path: ["tools", 0, "function"], name: "description" },
  { format: "openai.chat", path: ["response_format"], name: "json_schema" },
  { format: "openai.chat", path: ["response_format", "json_schema"], name: "schema" },
  { format: "openai.chat", path: ["stream_options"], name: "include_usage" },
  { format: "openai.chat", path: ["tool_choice"], name: "function" },
  { format: "ollama.chat", path: [], name: "options" },
  { format: "ollama.chat", path: ["options"], name: "num_predict" },
  { format: "ollama.chat", path: ["messages", 0], name: "images" },
  { format: "ollama.chat", path: ["messages", 1, "tool_calls", 0, "function"], name: "arguments" },
  { format: "ollama.generate", path: [], name: "system" },
  { format: "ollama.generate", path: ["options"], name: "temperature" },
  { format: "tgi.generate", path: [], name: "parameters" },
  { format: "tgi.generate", path: ["parameters"], name: "max_new_tokens" },
  { format: "tgi.generate", path: ["parameters", "grammar"], name: "value" },
];

/** Free-form maps: their keys are data, any spelling is kept. */
const FREE_MAPS: Level[] = [
  { format: "openai.chat", path: ["logit_bias"], name: "token" },
  { format: "openai.chat", path: ["metadata"], name: "project_key" },
  { format: "openai.chat", path: ["chat_template_kwargs"], name: "enable_thinking" },
  { format: "openai.chat", path: ["documents", 0], name: "title" },
  { format: "openai.chat", path: ["tools", 0, "function", "parameters"], name: "properties" },
  { format: "openai.chat", path: ["response_format", "json_schema", "schema"], name: "required" },
  { format: "ollama.chat", path: ["format", "properties"], name: "answer_text" },
  { format: "ollama.chat", path: ["messages", 1, "tool_calls", 0, "function", "arguments"], name: "query" },
  { format: "tgi.generate", path: ["parameters", "grammar", "value"], name: "properties" },
];

function withKey(level: Level, key: string): Body {
  const body = structuredClone(BODIES[level.format] as Body);
  let target: Record<string | number, unknown> = body;
  for (const step of level.path) target = target[step] as Record<string | number, unknown>;
  target[key] = 1;
  return body;
}

const set = new PolicySet([
  policy("capped", {
    resources: [{ connection: "llama" }],
    limits: { maxTokens: 1024 },
    promptRules: [{ pattern: "forbidden", action: "block" }],
  }),
]);

const evaluate = (level: Level, body: Body): Evaluation =>
  set.evaluate(alice, {
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    operation: "inference",
    format: level.format,
    body,
  });

describe("field names a runtime could fold onto a field", () => {
  it.each(Object.keys(BODIES))("the %s base body is allowed", (format) => {
    expect(evaluate({ format: format as Format, path: [], name: "" }, BODIES[format as Format] as Body).decision).toBe(
      "allowed",
    );
  });

  it("are refused at every level a runtime maps onto fields, naming the path", () => {
    const case_ = fc.constantFrom(...FIELD_LEVELS).chain((level) => loose(level.name).map((key) => ({ level, key })));
    fc.assert(
      fc.property(case_, ({ level, key }) => {
        const evaluation = evaluate(level, withKey(level, key));
        expect(evaluation).toMatchObject({
          decision: "denied",
          code: "invalid_request",
          param: [...level.path, key].join("."),
        });
      }),
      { numRuns: 1500, seed: 1701 },
    );
  });

  it("are kept in free-form maps", () => {
    const case_ = fc.constantFrom(...FREE_MAPS).chain((level) => loose(level.name).map((key) => ({ level, key })));
    fc.assert(
      fc.property(case_, ({ level, key }) => {
        expect(evaluate(level, withKey(level, key)).decision).toBe("allowed");
      }),
      { numRuns: 500, seed: 1702 },
    );
  });

  it.each([
    ["a long s", "me\u017f\u017fages"],
    ["a Kelvin sign", "max_to\u212aens"],
    ["a dotted capital I", "\u0130mages"],
    ["a hyphen", "max-tokens"],
    ["an empty key", ""],
  ])("refuses %s in a body key", (_label, key) => {
    const level: Level = { format: "ollama.chat", path: [], name: "" };
    expect(evaluate(level, withKey(level, key))).toMatchObject({ code: "invalid_request", param: key });
  });
});
