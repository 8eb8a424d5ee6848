import type { BodyFormat, ConnectionProtocol, Operation, RequestKind } from "./request-kind.js";

/**
 * Request classification. Anything not listed here is `raw`: a runtime's
 * admin endpoints (`/api/pull`, `/api/delete`, llama.cpp's `/slots`) and
 * whatever a new runtime version adds must be granted explicitly, never
 * inherit a more common operation. Paths are matched literally (runtimes
 * route case-sensitively), so an encoded or oddly spelled path is `raw` too.
 */
type Routes = ReadonlyMap<string, RequestKind>;

// Shared between calls, so frozen: a caller cannot change another's answer.
const kind = (operation: Operation, format: BodyFormat): RequestKind => Object.freeze({ operation, format });

const CHAT = kind("inference", "openai.chat");
const COMPLETIONS = kind("inference", "openai.completions");
const EMBEDDINGS = kind("embeddings", "openai.embeddings");
const MESSAGES = kind("inference", "anthropic.messages");
const RESPONSES = kind("inference", "openai.responses");
/**
 * Rerank and score run the model over the caller's texts and answer with
 * numbers, generating nothing: what embeddings do, so the same grant covers
 * them (a reranker is served as a pooling model, like an embedder).
 */
const SCORE = kind("embeddings", "vllm.score");
/**
 * Tokenize renders the prompt as the model would see it (chat template
 * included) and detokenize turns token ids into text; neither generates.
 * They serve callers preparing inference (counting a prompt's tokens), and
 * show the model's template and vocabulary, so they take the inference
 * grant, not a weaker one: `read` is not checked against model patterns.
 */
const TOKENIZE = kind("inference", "vllm.tokenize");
const MODELS = kind("models.list", "none");
const READ = kind("read", "none");
const RAW = kind("raw", "none");

function routes(entries: Record<string, RequestKind>): Routes {
  return new Map(Object.entries(entries));
}

/** GET and HEAD read the same thing; HEAD is listed wherever GET is. */
function reads(kind: RequestKind, ...paths: string[]): Record<string, RequestKind> {
  return Object.fromEntries(paths.flatMap((path) => [`GET ${path}`, `HEAD ${path}`]).map((key) => [key, kind]));
}

const GATEWAY_OPENAI_ROUTES: ReadonlyMap<string, RequestKind> = new Map([
  ["/v1/chat/completions", CHAT],
  ["/v1/completions", COMPLETIONS],
  ["/v1/embeddings", EMBEDDINGS],
  ["/v1/models", MODELS],
  ["/v1/messages", MESSAGES],
  ["/v1/responses", RESPONSES],
  ["/v1/rerank", SCORE],
  ["/v1/score", SCORE],
]);

const OPENAI_COMPATIBLE = {
  "POST /v1/chat/completions": CHAT,
  "POST /v1/completions": COMPLETIONS,
};

const NATIVE_ROUTES: Record<ConnectionProtocol, Routes> = {
  ollama: routes({
    "POST /api/generate": kind("inference", "ollama.generate"),
    "POST /api/chat": kind("inference", "ollama.chat"),
    "POST /api/embed": kind("embeddings", "ollama.embed"),
    "POST /api/embeddings": kind("embeddings", "ollama.embed"),
    ...OPENAI_COMPATIBLE,
    "POST /v1/embeddings": EMBEDDINGS,
    // Ollama serves Anthropic's Messages API for Anthropic's clients (0.14).
    "POST /v1/messages": MESSAGES,
    // And OpenAI's Responses API (0.13), statelessly.
    "POST /v1/responses": RESPONSES,
    ...reads(MODELS, "/v1/models"),
    // Not POST /api/show: it names a model in its body, and `read` is not
    // checked against model patterns; it stays `raw`.
    ...reads(READ, "/api/tags", "/api/ps", "/api/version", "/"),
  }),
  // vLLM and llama.cpp serve the OpenAI routes with and without the /v1 prefix.
  openai: routes({
    ...OPENAI_COMPATIBLE,
    "POST /chat/completions": CHAT,
    "POST /completions": COMPLETIONS,
    "POST /v1/embeddings": EMBEDDINGS,
    "POST /embeddings": EMBEDDINGS,
    // vLLM serves Anthropic's Messages API (only under /v1).
    "POST /v1/messages": MESSAGES,
    // vLLM serves OpenAI's Responses API. Not GET /v1/responses/{id}: a
    // stored answer comes back whole, and stays `raw`.
    "POST /v1/responses": RESPONSES,
    // vLLM's rerank (Jina's API at /rerank and /v1/rerank, Cohere's v2 at
    // /v2/rerank) and score; llama.cpp serves /rerank and /v1/rerank too.
    "POST /rerank": SCORE,
    "POST /v1/rerank": SCORE,
    "POST /v2/rerank": SCORE,
    "POST /score": SCORE,
    "POST /v1/score": SCORE,
    "POST /tokenize": TOKENIZE,
    "POST /detokenize": TOKENIZE,
    ...reads(MODELS, "/v1/models", "/models"),
    ...reads(READ, "/health", "/healthz", "/metrics", "/version", "/ping", "/props"),
  }),
  tgi: routes({
    "POST /generate": kind("inference", "tgi.generate"),
    "POST /generate_stream": kind("inference", "tgi.generate"),
    ...OPENAI_COMPATIBLE,
    // TGI's /embed body is not read: prompt rules cannot be enforced on it
    // (see the engine's handling of format "none").
    "POST /embed": kind("embeddings", "none"),
    ...reads(READ, "/health", "/info", "/metrics"),
  }),
  http: routes(reads(READ, "/health", "/healthz")),
};

/** A trailing slash names the same route to the runtimes modelgate fronts. */
function withoutTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

/**
 * The gateway's own OpenAI-compatible routes. Undefined for any other path;
 * the method is the caller's to check (POST, or GET for /v1/models).
 */
export function classifyOpenAiRoute(pathname: string): RequestKind | undefined {
  return GATEWAY_OPENAI_ROUTES.get(withoutTrailingSlash(pathname));
}

/**
 * A native pass-through request under `/c/{connection}/<path>`. `path` is
 * the runtime's path without the query string.
 */
export function classifyNativeRequest(protocol: ConnectionProtocol, method: string, path: string): RequestKind {
  const table = NATIVE_ROUTES[protocol];
  if (!table) return RAW;
  return table.get(`${method.toUpperCase()} ${withoutTrailingSlash(path)}`) ?? RAW;
}
