import { describe, expect, it } from "@jest/globals";
import { FieldPathError, parseFieldPath } from "../src/json-path.js";
import { DEFAULT_FIELDS } from "../src/response-fields.js";
import { FieldSelector, type JsonDocument } from "../src/response-selector.js";

describe("parseFieldPath", () => {
  it("parses names, [*] and [N]", () => {
    expect(parseFieldPath("choices[*].delta.tool_calls[2].function.arguments").segments).toEqual([
      { kind: "key", name: "choices" },
      { kind: "any" },
      { kind: "key", name: "delta" },
      { kind: "key", name: "tool_calls" },
      { kind: "index", index: 2 },
      { kind: "key", name: "function" },
      { kind: "key", name: "arguments" },
    ]);
    expect(parseFieldPath("response")).toEqual({ text: "response", segments: [{ kind: "key", name: "response" }] });
    expect(parseFieldPath("a[*][0].$b-c_9").segments).toHaveLength(4);
  });

  it("accepts every default field", () => {
    for (const fields of Object.values(DEFAULT_FIELDS)) {
      for (const field of fields) expect(parseFieldPath(field).text).toBe(field);
    }
  });

  it("accepts 16 parts and 256 characters, no more", () => {
    const parts = (count: number) => Array.from({ length: count }, (_, index) => `p${index}`).join(".");
    expect(parseFieldPath(parts(16)).segments).toHaveLength(16);
    expect(() => parseFieldPath(parts(17))).toThrow(/at most 16 parts/);
    expect(parseFieldPath("a".repeat(256)).text).toHaveLength(256);
    expect(() => parseFieldPath("a".repeat(257))).toThrow(/at most 256 characters/);
  });

  it.each([
    ["", /must not be empty/],
    [".a", /expected a name .* at character 1/],
    ["a.", /expected a name .* at character 3/],
    ["a..b", /expected a name .* at character 3/],
    ["[*].a", /expected a name/],
    ["a[", /expected "\.", "\[\*\]" or "\[N\]" at character 2/],
    ["a[x]", /at character 2/],
    ["a[-1]", /at character 2/],
    ["a[1234567]", /at most 6 digits/],
    ["a.*", /expected a name/],
    ["a['b']", /at character 2/],
    ["a b", /at character 2/],
    ["a/b", /at character 2/],
    ["choices[*]..text", /at character 12/],
  ])("refuses %j", (path, message) => {
    expect(() => parseFieldPath(path)).toThrow(FieldPathError);
    expect(() => parseFieldPath(path)).toThrow(message);
  });
});

describe("matching", () => {
  const select = (document: JsonDocument, paths: string[]) =>
    new FieldSelector(paths.map(parseFieldPath)).matches(document);
  const names = (root: unknown, path: string) =>
    select([root], [path]).map((match) => `${match.name}=${JSON.stringify(match.value)}`);

  it("names array elements by their index property when they have one", () => {
    const chunk = {
      choices: [
        {
          index: 1,
          delta: { tool_calls: [{ index: 3, function: { arguments: "{" } }, { function: { arguments: "}" } }] },
        },
      ],
    };
    expect(names(chunk, "choices[*].delta.tool_calls[*].function.arguments")).toEqual([
      'choices[1].delta.tool_calls[3].function.arguments="{"',
      'choices[1].delta.tool_calls[1].function.arguments="}"',
    ]);
    expect(names(chunk, "choices[0].delta.tool_calls[1].function.arguments")).toEqual([
      'choices[1].delta.tool_calls[1].function.arguments="}"',
    ]);
  });

  it("selects values of any type, and nothing through a missing or mistyped step", () => {
    const root = { a: [{ b: 1 }, { b: null }, { b: { c: "x" } }, "s", { c: "no b" }], s: "t" };
    expect(names(root, "a[*].b")).toEqual(["a[0].b=1", "a[1].b=null", 'a[2].b={"c":"x"}']);
    expect(names(root, "a[9].b")).toEqual([]);
    expect(names(root, "s[*]")).toEqual([]);
    expect(names(root, "a.b")).toEqual([]);
    expect(names("text", "a")).toEqual([]);
  });

  it("follows own properties only", () => {
    expect(names({ a: {} }, "a.constructor")).toEqual([]);
    expect(names(JSON.parse('{"__proto__":{"x":"y"}}'), "__proto__.x")).toEqual(['__proto__.x="y"']);
  });

  it("selects each value once, and every string when no path is given", () => {
    const document: JsonDocument = [{ choices: [{ text: "a" }, { index: 5, text: "b" }], n: 1, m: [["c"]] }];
    const collect = (paths: string[]) => select(document, paths).map((match) => match.name);
    expect(collect(["choices[*].text", "choices[0].text"])).toEqual(["choices[0].text", "choices[5].text"]);
    expect(collect(["choices[0].text", "choices[*].text", "choices[1].text"])).toEqual([
      "choices[0].text",
      "choices[5].text",
    ]);
    expect(collect([])).toEqual(["choices[0].text", "choices[5].text", "m[0][0]"]);
    expect(select(["bare"], []).map((match) => match.name)).toEqual([""]);
  });

  it("walks shared prefixes once and stops at a selected value", () => {
    const document: JsonDocument = [{ message: { content: "x", thinking: "y" }, response: "z" }];
    expect(select(document, ["message.content", "response", "message.thinking"]).map((match) => match.name)).toEqual([
      "message.content",
      "message.thinking",
      "response",
    ]);
    expect(select(document, ["message.content", "message"]).map((match) => match.name)).toEqual(["message"]);
  });
});
