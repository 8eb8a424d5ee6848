// vLLM's routes beside the OpenAI API: rerank (Jina's shape at /rerank and
// /v1/rerank, Cohere's v2 at /v2/rerank), score, tokenize and detokenize.
// Scores are the cosine of the fixture's deterministic embeddings; tokens
// are the fixture's whitespace tokens, numbered by their text.
import { createHash } from "node:crypto";
import { unixSeconds } from "../answer.js";
import type { RequestContext, Route } from "../context.js";
import { embeddingFor } from "../embedding.js";
import { sendJson } from "../http.js";
import { isJsonObject, optionalInteger, parseJsonObject, textOf } from "../json-body.js";
import { FixtureRequestError } from "../protocol-errors.js";
import { countTokens } from "../tokens.js";

export const scoringRoutes: readonly Route[] = [
  ...["/rerank", "/v1/rerank", "/v2/rerank"].map(
    (path): Route => ({ path, protocol: "openai", methods: { POST: rerank } }),
  ),
  ...["/score", "/v1/score"].map((path): Route => ({ path, protocol: "openai", methods: { POST: score } })),
  { path: "/tokenize", protocol: "openai", methods: { POST: tokenize } },
  { path: "/detokenize", protocol: "openai", methods: { POST: detokenize } },
];

function servedModel(context: RequestContext, body: Record<string, unknown>): string {
  const model = body.model;
  if (typeof model !== "string" || !context.fixture.settings.models.includes(model)) {
    throw new FixtureRequestError(404, `The model \`${String(model)}\` does not exist.`, { code: "model_not_found" });
  }
  return model;
}

function similarity(one: string, other: string): number {
  const a = embeddingFor(one);
  const b = embeddingFor(other);
  return a.reduce((sum, value, index) => sum + value * (b[index] ?? 0), 0);
}

function rerank(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  const model = servedModel(context, body);
  if (typeof body.query !== "string") throw new FixtureRequestError(400, `"query" must be a string`);
  const documents = body.documents;
  if (!Array.isArray(documents) || documents.length === 0) {
    throw new FixtureRequestError(400, `"documents" must be a non-empty list`);
  }
  const texts = documents.map((document) =>
    typeof document === "string" ? document : isJsonObject(document) ? textOf(document.text) : "",
  );
  const topN = optionalInteger(body, "top_n", 1) ?? texts.length;
  const query = body.query;
  const results = texts
    .map((text, index) => ({ index, document: { text }, relevance_score: similarity(query, text) }))
    .sort((one, other) => other.relevance_score - one.relevance_score)
    .slice(0, topN);
  const tokens = countTokens(query) * texts.length + texts.reduce((sum, text) => sum + countTokens(text), 0);
  sendJson(context.res, 200, {
    id: `rerank-fixture-${context.record.id}`,
    model,
    usage: { total_tokens: tokens },
    results,
  });
}

function score(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  const model = servedModel(context, body);
  const list = (value: unknown) => (Array.isArray(value) ? value.map(textOf) : [textOf(value)]);
  const first = list(body.text_1);
  const second = list(body.text_2);
  if (first.length !== 1 && first.length !== second.length) {
    throw new FixtureRequestError(400, `"text_1" must be one text or as many as "text_2"`);
  }
  const pairs = second.map((text, index) => [first[first.length === 1 ? 0 : index] ?? "", text] as const);
  const tokens = pairs.reduce((sum, [one, other]) => sum + countTokens(one) + countTokens(other), 0);
  sendJson(context.res, 200, {
    id: `score-fixture-${context.record.id}`,
    object: "list",
    created: unixSeconds(),
    model,
    data: pairs.map(([one, other], index) => ({ index, object: "score", score: similarity(one, other) })),
    usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 },
  });
}

/** A token's id: stable for its text, so detokenize can read it back within one fixture. */
const vocabulary = new Map<number, string>();
function tokenId(token: string): number {
  const id = createHash("sha256").update(token).digest().readUInt32LE(0) % 100_000;
  vocabulary.set(id, token);
  return id;
}

function tokenize(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  servedModel(context, body);
  const text = body.messages !== undefined ? textOf(body.messages) : textOf(body.prompt);
  const tokens = (text.match(/\S+/g) ?? []).map(tokenId);
  sendJson(context.res, 200, { count: tokens.length, max_model_len: 8192, tokens, token_strs: null });
}

function detokenize(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  servedModel(context, body);
  const tokens = body.tokens;
  if (!Array.isArray(tokens) || !tokens.every((token) => Number.isInteger(token))) {
    throw new FixtureRequestError(400, `"tokens" must be a list of token ids`);
  }
  sendJson(context.res, 200, { prompt: tokens.map((token) => vocabulary.get(token) ?? "<unk>").join(" ") });
}
