import { type ConnectionProtocol, classifyNativeRequest, classifyOpenAiRoute, type RequestKind } from "../src/index.js";

const kind = (operation: RequestKind["operation"], format: RequestKind["format"] = "none"): RequestKind => ({
  operation,
  format,
});

describe("classifyOpenAiRoute", () => {
  it.each([
    ["/v1/chat/completions", kind("inference", "openai.chat")],
    ["/v1/completions", kind("inference", "openai.completions")],
    ["/v1/embeddings", kind("embeddings", "openai.embeddings")],
    ["/v1/models", kind("models.list")],
    ["/v1/models/", kind("models.list")],
    ["/v1/messages", kind("inference", "anthropic.messages")],
    ["/v1/responses", kind("inference", "openai.responses")],
    ["/v1/rerank", kind("embeddings", "vllm.score")],
    ["/v1/score", kind("embeddings", "vllm.score")],
  ])("%s", (path, expected) => {
    expect(classifyOpenAiRoute(path)).toEqual(expected);
  });

  it.each(["/v1/responses/resp_1", "/v1/models/llama", "/chat/completions", "/V1/chat/completions", "/"])(
    "%s is not one of the gateway's routes",
    (path) => {
      expect(classifyOpenAiRoute(path)).toBeUndefined();
    },
  );
});

describe("classifyNativeRequest", () => {
  const table: [ConnectionProtocol, string, string, RequestKind][] = [
    ["ollama", "POST", "/api/generate", kind("inference", "ollama.generate")],
    ["ollama", "post", "/api/chat", kind("inference", "ollama.chat")],
    ["ollama", "POST", "/api/chat/", kind("inference", "ollama.chat")],
    ["ollama", "POST", "/api/embed", kind("embeddings", "ollama.embed")],
    ["ollama", "POST", "/api/embeddings", kind("embeddings", "ollama.embed")],
    ["ollama", "POST", "/v1/chat/completions", kind("inference", "openai.chat")],
    ["ollama", "POST", "/v1/completions", kind("inference", "openai.completions")],
    ["ollama", "POST", "/v1/embeddings", kind("embeddings", "openai.embeddings")],
    ["ollama", "GET", "/v1/models", kind("models.list")],
    ["ollama", "GET", "/api/tags", kind("read")],
    ["ollama", "HEAD", "/api/tags", kind("read")],
    ["ollama", "GET", "/api/ps", kind("read")],
    ["ollama", "GET", "/api/version", kind("read")],
    ["ollama", "GET", "/", kind("read")],
    ["ollama", "HEAD", "/", kind("read")],
    ["ollama", "POST", "/api/show", kind("raw")],
    ["ollama", "POST", "/api/pull", kind("raw")],
    ["ollama", "DELETE", "/api/delete", kind("raw")],
    ["ollama", "POST", "/api/create", kind("raw")],
    ["ollama", "GET", "/api/generate", kind("raw")],
    ["ollama", "POST", "/api/tags", kind("raw")],
    ["ollama", "POST", "/API/generate", kind("raw")],
    ["ollama", "POST", "/api/gener%61te", kind("raw")],
    ["openai", "POST", "/v1/chat/completions", kind("inference", "openai.chat")],
    ["openai", "POST", "/chat/completions", kind("inference", "openai.chat")],
    ["openai", "POST", "/v1/messages", kind("inference", "anthropic.messages")],
    ["ollama", "POST", "/v1/messages", kind("inference", "anthropic.messages")],
    ["openai", "POST", "/v1/responses", kind("inference", "openai.responses")],
    ["ollama", "POST", "/v1/responses", kind("inference", "openai.responses")],
    // A stored response comes back whole: not an inference the gateway reads.
    ["openai", "GET", "/v1/responses/resp_1", kind("raw")],
    // vLLM serves Anthropic's route under /v1 only.
    ["openai", "POST", "/messages", kind("raw")],
    ["openai", "POST", "/v1/completions", kind("inference", "openai.completions")],
    ["openai", "POST", "/completions", kind("inference", "openai.completions")],
    ["openai", "POST", "/v1/embeddings", kind("embeddings", "openai.embeddings")],
    ["openai", "POST", "/embeddings", kind("embeddings", "openai.embeddings")],
    ["openai", "GET", "/v1/models", kind("models.list")],
    ["openai", "GET", "/models", kind("models.list")],
    ["openai", "HEAD", "/models", kind("models.list")],
    ...["/health", "/healthz", "/metrics", "/version", "/ping", "/props"].map(
      (path): [ConnectionProtocol, string, string, RequestKind] => ["openai", "GET", path, kind("read")],
    ),
    ["openai", "HEAD", "/health", kind("read")],
    ["openai", "POST", "/props", kind("raw")],
    ["openai", "POST", "/completion", kind("raw")],
    ["openai", "POST", "/tokenize", kind("inference", "vllm.tokenize")],
    ["openai", "POST", "/detokenize", kind("inference", "vllm.tokenize")],
    ...["/rerank", "/v1/rerank", "/v2/rerank", "/score", "/v1/score"].map(
      (path): [ConnectionProtocol, string, string, RequestKind] => [
        "openai",
        "POST",
        path,
        kind("embeddings", "vllm.score"),
      ],
    ),
    ["ollama", "POST", "/v1/rerank", kind("raw")],
    ["openai", "POST", "/v3/rerank", kind("raw")],
    ["openai", "GET", "/v1/chat/completions", kind("raw")],
    ["openai", "POST", "/api/generate", kind("raw")],
    ["tgi", "POST", "/generate", kind("inference", "tgi.generate")],
    ["tgi", "POST", "/generate_stream", kind("inference", "tgi.generate")],
    ["tgi", "POST", "/v1/chat/completions", kind("inference", "openai.chat")],
    ["tgi", "POST", "/v1/completions", kind("inference", "openai.completions")],
    ["tgi", "POST", "/embed", kind("embeddings")],
    ["tgi", "GET", "/health", kind("read")],
    ["tgi", "GET", "/info", kind("read")],
    ["tgi", "HEAD", "/metrics", kind("read")],
    ["tgi", "POST", "/", kind("raw")],
    ["tgi", "POST", "/tokenize", kind("raw")],
    ["http", "GET", "/health", kind("read")],
    ["http", "HEAD", "/healthz", kind("read")],
    ["http", "GET", "/healthz/", kind("read")],
    ["http", "POST", "/health", kind("raw")],
    ["http", "POST", "/v1/chat/completions", kind("raw")],
    ["http", "GET", "/", kind("raw")],
  ];

  it.each(table)("%s %s %s", (protocol, method, path, expected) => {
    expect(classifyNativeRequest(protocol, method, path)).toEqual(expected);
  });

  it("hands out frozen answers, so one caller cannot change another's", () => {
    const answer = classifyNativeRequest("openai", "POST", "/v1/chat/completions");
    expect(Object.isFrozen(answer)).toBe(true);
  });
});
