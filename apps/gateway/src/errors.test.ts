import fc from "fast-check";
import { type ErrorDialect, errorBody, errorDialectFor } from "./errors.js";

describe("errorDialectFor", () => {
  it.each<[string, ErrorDialect]>([
    ["/v1/chat/completions", "openai"],
    ["/v1/models?x=1", "openai"],
    ["/c/local/v1/chat/completions", "openai"],
    ["/c/local/api/chat", "ollama"],
    ["/c/local/api/generate?stream=false", "ollama"],
    ["/c/local/api", "ollama"],
    // An `ollama` client pointed at the gateway itself reads its 404.
    ["/api/chat", "ollama"],
    ["/c/tgi/generate", "tgi"],
    ["/c/tgi/generate_stream", "tgi"],
    ["/c/tgi/generate/", "tgi"],
    ["/c/tgi/info", "tgi"],
    ["/c/tgi/", "tgi"],
    ["/c/tgi", "tgi"],
    ["/generate", "tgi"],
    // Anthropic's Messages API, on the gateway and under a connection.
    ["/v1/messages", "anthropic"],
    ["/v1/messages/?beta=true", "anthropic"],
    ["/c/local/v1/messages", "anthropic"],
    ["/v1/messages/batches", "openai"],
    // Paths of no particular API get the gateway's own shape.
    ["/", "openai"],
    ["/c/local/health", "openai"],
    ["/c/local/metrics", "openai"],
    ["/c/local/apis", "openai"],
    ["/c/local/v10/x", "openai"],
    ["/nothing", "openai"],
    ["http://169.254.169.254/latest/meta-data", "openai"],
  ])("%s → %s", (url, dialect) => {
    expect(errorDialectFor(url)).toBe(dialect);
  });

  it("never depends on the connection's name, so it reveals nothing about which exist", () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9._~%-]{1,24}$/);
    const rest = fc.oneof(
      fc.constantFrom("", "/", "/api/chat", "/api/generate", "/v1/chat/completions", "/generate_stream", "/health"),
      fc.array(segment, { maxLength: 4 }).map((segments) => segments.map((part) => `/${part}`).join("")),
    );
    fc.assert(
      fc.property(segment, segment, rest, (one, other, path) => {
        expect(errorDialectFor(`/c/${one}${path}`)).toBe(errorDialectFor(`/c/${other}${path}`));
      }),
    );
  });
});

describe("errorBody", () => {
  it("keeps a machine-readable code in every dialect, and the message where each client reads it", () => {
    expect(errorBody("prompt_blocked", "no", null, "openai")).toEqual({
      error: { message: "no", type: "permission_error", code: "prompt_blocked", param: null },
    });
    expect(errorBody("prompt_blocked", "no", null, "ollama")).toEqual({ error: "no", code: "prompt_blocked" });
    expect(errorBody("prompt_blocked", "no", null, "tgi")).toEqual({
      error: "no",
      error_type: "validation",
      code: "prompt_blocked",
    });
    expect(errorBody("rate_limited", "slow down", null, "tgi")).toMatchObject({ error_type: "overloaded" });
    expect(errorBody("upstream_timeout", "late", null, "tgi")).toMatchObject({ error_type: "incomplete_generation" });
    expect(errorBody("token_malformed", "bad", null, "tgi")).toMatchObject({ error_type: "authentication" });
    expect(errorBody("prompt_blocked", "no", "messages.0.content", "anthropic")).toEqual({
      type: "error",
      error: { type: "permission_error", message: "no", code: "prompt_blocked", param: "messages.0.content" },
    });
    expect(errorBody("rate_limited", "slow", null, "anthropic")).toMatchObject({ error: { type: "rate_limit_error" } });
    expect(errorBody("no_agent_available", "x", null, "anthropic")).toMatchObject({
      error: { type: "overloaded_error" },
    });
    expect(errorBody("not_found", "x", null, "anthropic")).toMatchObject({ error: { type: "not_found_error" } });
  });
});

describe("errorBody with extra fields (an approval's id and URL)", () => {
  const fields = { approval_id: "0b3c", approval_url: "https://cp.example/api/v1/approvals/0b3c" };
  it("puts them beside the code in every dialect, where each API's clients keep the body", () => {
    expect(errorBody("approval_required", "needs approval", null, "openai", fields)).toEqual({
      error: { message: "needs approval", type: "permission_error", code: "approval_required", param: null, ...fields },
    });
    expect(errorBody("approval_required", "needs approval", null, "ollama", fields)).toEqual({
      error: "needs approval",
      code: "approval_required",
      ...fields,
    });
    expect(errorBody("approval_required", "needs approval", null, "tgi", fields)).toMatchObject({
      error: "needs approval",
      error_type: "validation",
      ...fields,
    });
  });
});
