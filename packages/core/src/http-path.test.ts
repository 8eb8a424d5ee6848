import { resolveRuntimePath, UnsafePathError } from "./http-path.js";

describe("resolveRuntimePath", () => {
  it.each([
    ["", "/api/chat", "/api/chat"],
    ["/", "/v1/chat/completions", "/v1/chat/completions"],
    ["/ollama", "/api/tags?verbose=1", "/ollama/api/tags?verbose=1"],
    ["/ollama/", "/api/tags/", "/ollama/api/tags/"],
    ["", "/models/llama%203", "/models/llama%203"],
  ])("joins %j and %j", (base, path, expected) => {
    expect(resolveRuntimePath(base, path)).toBe(expected);
  });

  it.each([
    "api/chat",
    "//evil.example/api",
    "/../admin",
    "/api/../../admin",
    "/api/./chat",
    "/api/%2e%2e/admin",
    "/api/%2E%2E/admin",
    "/api/%252e%252e/admin",
    "/api/.%2e/admin",
    "/api%2fadmin",
    "/api%5cadmin",
    "/api\\..\\admin",
    "/api//chat",
    "/api/chat#frag",
    "/api/%zz",
    "/api/%",
    "/api/\u0000",
    "/api/ chat",
    "/api/%0d%0aHost:%20evil",
    "/a/%25252525252e%25252525252e",
    `/${"a".repeat(9000)}`,
  ])("refuses %j", (path) => {
    expect(() => resolveRuntimePath("/base", path)).toThrow(UnsafePathError);
  });
});
