// vLLM's routes beside the OpenAI API, through the native pass-through
// (`/c/{connection}/…`, plain fetch: no official client exists) and the
// gateway's own `/v1/rerank` and `/v1/score`: rerank and score are
// embeddings, tokenize and detokenize inference, each with its prompt read
// for prompt rules.
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { inferences, type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;
/** A key whose only grant is embeddings. */
let embedderKey: string;

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  runtime = await stack.addConnection("llama", { models: ["reranker"] });
  await stack.addAgent("llama", runtime);
  const everyone = await stack.admin("POST", "/policies", {
    name: "scoring",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama" }],
    operations: ["inference", "embeddings"],
    promptRules: [{ pattern: "top secret", flags: "i", action: "block", description: "classified" }],
  });
  expect(everyone.status).toBe(201);
  const embedder = await stack.admin("POST", "/api-keys", { name: "embedder", groups: ["embedders"] });
  embedderKey = embedder.body.key;
  const embeddings = await stack.admin("POST", "/policies", {
    name: "embeddings-only",
    subjects: { groups: ["embedders"] },
    resources: [{ connection: "llama" }],
    operations: ["embeddings"],
  });
  expect(embeddings.status).toBe(201);
  await waitFor(() => stack.gateway.store.policies.size === 2, { what: "the policies at the gateway" });
});

afterAll(async () => {
  await stack?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
async function post(path: string, body: unknown, key = stack.apiKey): Promise<{ status: number; json: any }> {
  const response = await fetch(`${stack.gateway.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

/**
 * The refusal's code. `/tokenize` is TGI's path too, and refusals are shaped
 * by the path alone (never by the connection: no existence oracle), so there
 * it comes in TGI's shape, `{"error": "…", "code"}`.
 */
// biome-ignore lint/suspicious/noExplicitAny: parsed JSON of either shape
const codeOf = (json: any): string => (typeof json.error === "string" ? json.code : json.error.code);

describe("vLLM's rerank, score, tokenize and detokenize", () => {
  const documents = ["the cat sat", "stock prices fell", "a dog barked"];

  it.each(["/c/llama/rerank", "/c/llama/v1/rerank", "/c/llama/v2/rerank", "/v1/rerank"])(
    "reranks documents through %s under an embeddings grant",
    async (path) => {
      const { status, json } = await post(path, { model: "reranker", query: "pets", documents, top_n: 2 }, embedderKey);
      expect(status).toBe(200);
      expect(json.results).toHaveLength(2);
      expect(json.results[0].relevance_score).toBeGreaterThanOrEqual(json.results[1].relevance_score);
      expect(inferences(runtime).at(-1)?.path).toBe(path.replace(/^\/c\/llama/, ""));
    },
  );

  it("scores text pairs on the native and the gateway's route, the model routed by <connection>/<model> there", async () => {
    const native = await post("/c/llama/score", { model: "reranker", text_1: "pets", text_2: documents });
    expect(native.status).toBe(200);
    expect(native.json.data).toHaveLength(3);
    const routed = await post("/v1/score", { model: "llama/reranker", text_1: "pets", text_2: documents });
    expect(routed.status).toBe(200);
    expect(routed.json.data.map((entry: { score: number }) => entry.score)).toEqual(
      native.json.data.map((entry: { score: number }) => entry.score),
    );
    expect(JSON.parse(inferences(runtime).at(-1)?.body ?? "{}").model).toBe("reranker");
  });

  it("blocks a prompt rule's match in a document, a query or a text pair, before the runtime sees it", async () => {
    const before = inferences(runtime).length;
    for (const [path, body] of [
      ["/c/llama/v1/rerank", { model: "reranker", query: "pets", documents: ["fine", { text: "TOP SECRET plans" }] }],
      ["/c/llama/rerank", { model: "reranker", query: "top secret", documents }],
      ["/c/llama/score", { model: "reranker", text_1: "x", text_2: ["top  secret"] }],
      ["/c/llama/tokenize", { model: "reranker", prompt: "this is top secret" }],
    ] as const) {
      const { status, json } = await post(path, body);
      expect(status).toBe(403);
      expect(codeOf(json)).toBe("prompt_blocked");
    }
    expect(inferences(runtime).length).toBe(before);
  });

  it("tokenizes a prompt or messages under an inference grant, not under an embeddings grant", async () => {
    const { status, json } = await post("/c/llama/tokenize", { model: "reranker", prompt: "count these four tokens" });
    expect(status).toBe(200);
    expect(json.count).toBe(4);
    const chat = await post("/c/llama/tokenize", {
      model: "reranker",
      messages: [{ role: "user", content: "two words" }],
    });
    expect(chat.json.count).toBe(2);
    // No token cap is written into a body that generates nothing.
    expect(JSON.parse(inferences(runtime).at(-1)?.body ?? "{}")).not.toHaveProperty("max_tokens");

    const embedderOnly = await post("/c/llama/tokenize", { model: "reranker", prompt: "x" }, embedderKey);
    expect(embedderOnly.status).toBe(403);
    expect(embedderOnly.json).toMatchObject({ error_type: "validation", code: "operation_not_allowed" });
  });

  it("refuses detokenize's token ids where prompt rules apply, as for any token ids", async () => {
    const { json: tokenized } = await post("/c/llama/tokenize", { model: "reranker", prompt: "hello there" });
    const { status, json } = await post("/c/llama/detokenize", { model: "reranker", tokens: tokenized.tokens });
    expect(status).toBe(400);
    expect(json.error.code).toBe("invalid_request");
  });

  it("refuses a multi-modal document where prompt rules apply", async () => {
    const { status, json } = await post("/c/llama/v1/rerank", {
      model: "reranker",
      query: "pets",
      documents: [{ content: [{ type: "image_url", image_url: { url: "data:," } }] }],
    });
    expect(status).toBe(400);
    expect(json.error.code).toBe("invalid_request");
  });
});
