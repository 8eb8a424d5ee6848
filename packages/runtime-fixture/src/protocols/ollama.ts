// Ollama's native API (the `ollama` npm client is the one the gateway's
// end-to-end tests drive through it).
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type Answer, composeAnswer } from "../answer.js";
import { type RequestContext, type Route, respondWithStream } from "../context.js";
import { embeddingFor } from "../embedding.js";
import { sendJson, sendText } from "../http.js";
import { type JsonObject, optionalBoolean, optionalObject, parseJsonObject, textOf } from "../json-body.js";
import { FixtureRequestError } from "../protocol-errors.js";
import { ndjsonLine } from "../stream.js";
import { countTokens } from "../tokens.js";

/** What `/api/version` claims; a version whose API shapes the fixture follows. */
const OLLAMA_VERSION = "0.12.6";
const NDJSON_CONTENT_TYPE = "application/x-ndjson";

export const ollamaRoutes: readonly Route[] = [
  { path: "/", protocol: "ollama", methods: { GET: running } },
  { path: "/api/version", protocol: "ollama", methods: { GET: version } },
  { path: "/api/tags", protocol: "ollama", methods: { GET: tags } },
  { path: "/api/chat", protocol: "ollama", methods: { POST: chat } },
  { path: "/api/generate", protocol: "ollama", methods: { POST: generate } },
  { path: "/api/embed", protocol: "ollama", methods: { POST: embed } },
  { path: "/api/embeddings", protocol: "ollama", methods: { POST: legacyEmbeddings } },
];

function running(context: RequestContext): void {
  requireHealthy(context);
  sendText(context.res, 200, "Ollama is running");
}

function version(context: RequestContext): void {
  requireHealthy(context);
  sendJson(context.res, 200, { version: OLLAMA_VERSION });
}

/** `/` and `/api/version` are what clients probe to see whether Ollama is up. */
function requireHealthy(context: RequestContext): void {
  if (!context.fixture.healthy) throw new FixtureRequestError(503, "the runtime is unhealthy");
}

/** Ollama names always carry a tag; a bare name means ":latest". */
function withTag(model: string): string {
  return model.includes(":") ? model : `${model}:latest`;
}

function tags(context: RequestContext): void {
  const modifiedAt = context.fixture.startedAt.toISOString();
  sendJson(context.res, 200, {
    models: context.fixture.settings.models.map((model) => {
      const name = withTag(model);
      return {
        name,
        model: name,
        modified_at: modifiedAt,
        size: 0,
        digest: createHash("sha256").update(name).digest("hex"),
        details: {
          parent_model: "",
          format: "gguf",
          family: "modelgate-fixture",
          families: ["modelgate-fixture"],
          parameter_size: "0",
          quantization_level: "none",
        },
      };
    }),
  });
}

/** The requested model as written (Ollama echoes it), when served; Ollama's 404 otherwise. */
function servedModel(context: RequestContext, body: JsonObject): string {
  const model = body.model;
  if (typeof model !== "string" || model === "") throw new FixtureRequestError(400, "model is required");
  if (!context.fixture.settings.models.some((served) => withTag(served) === withTag(model))) {
    throw new FixtureRequestError(404, `model "${model}" not found, try pulling it first`);
  }
  return model;
}

/** `options.num_predict`: a positive limit, or negative for "no limit" (-1 infinite, -2 fill context). */
function numPredict(body: JsonObject): number | undefined {
  const value = optionalObject(body, "options").num_predict;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new FixtureRequestError(400, "option num_predict must be an integer");
  }
  return value < 0 ? undefined : value;
}

interface Generation {
  model: string;
  stream: boolean;
  promptTokens: number;
  answer: Answer;
  /** When generation started, for the duration fields. */
  startedAt: number;
}

function readGeneration(context: RequestContext, body: JsonObject, prompt: unknown): Generation {
  return {
    model: servedModel(context, body),
    // Streaming is Ollama's default; only an explicit `false` turns it off.
    stream: optionalBoolean(body, "stream") ?? true,
    promptTokens: countTokens(textOf(prompt)),
    answer: composeAnswer(context, numPredict(body)),
    startedAt: performance.now(),
  };
}

/** The statistics Ollama puts on a final (`done: true`) object, in nanoseconds. */
function finalFields(context: RequestContext, generation: Generation) {
  const now = performance.now();
  const nanoseconds = (milliseconds: number) => Math.max(0, Math.round(milliseconds * 1e6));
  return {
    done: true,
    done_reason: generation.answer.truncated ? "length" : "stop",
    total_duration: nanoseconds(now - context.record.receivedAt),
    load_duration: 0,
    prompt_eval_count: generation.promptTokens,
    prompt_eval_duration: nanoseconds(generation.startedAt - context.record.receivedAt),
    eval_count: generation.answer.tokens,
    eval_duration: nanoseconds(now - generation.startedAt),
  };
}

/**
 * Sends a generation: NDJSON with one object per chunk and a final `done`
 * object, or a single object when streaming is off. `content` wraps a piece
 * of text in the endpoint's field (`message` for chat, `response` for generate).
 */
async function respondWithGeneration(
  context: RequestContext,
  generation: Generation,
  content: (text: string) => object,
  finalExtras: object = {},
): Promise<void> {
  const head = () => ({ model: generation.model, created_at: new Date().toISOString() });
  if (!generation.stream) {
    sendJson(context.res, 200, {
      ...head(),
      ...content(generation.answer.text),
      ...finalFields(context, generation),
      ...finalExtras,
    });
    return;
  }
  await respondWithStream(context, {
    contentType: NDJSON_CONTENT_TYPE,
    timed: (function* () {
      for (const text of generation.answer.chunks) yield ndjsonLine({ ...head(), ...content(text), done: false });
    })(),
    trailing: () => [ndjsonLine({ ...head(), ...content(""), ...finalFields(context, generation), ...finalExtras })],
  });
}

/**
 * A request with nothing to generate only loads the model; Ollama answers it
 * with one `done_reason: "load"` object even when streaming was asked for.
 */
function respondLoaded(context: RequestContext, model: string, content: object): void {
  sendJson(context.res, 200, {
    model,
    created_at: new Date().toISOString(),
    ...content,
    done_reason: "load",
    done: true,
  });
}

async function chat(context: RequestContext): Promise<void> {
  const body = parseJsonObject(context.body);
  const messages = body.messages;
  if (messages !== undefined && messages !== null && !Array.isArray(messages)) {
    throw new FixtureRequestError(400, "messages must be an array");
  }
  const generation = readGeneration(context, body, messages);
  if (!Array.isArray(messages) || messages.length === 0) {
    respondLoaded(context, generation.model, { message: { role: "assistant", content: "" } });
    return;
  }
  await respondWithGeneration(context, generation, (text) => ({ message: { role: "assistant", content: text } }));
}

async function generate(context: RequestContext): Promise<void> {
  const body = parseJsonObject(context.body);
  const prompt = body.prompt;
  if (prompt !== undefined && prompt !== null && typeof prompt !== "string") {
    throw new FixtureRequestError(400, "prompt must be a string");
  }
  const generation = readGeneration(context, body, prompt);
  if (typeof prompt !== "string" || prompt === "") {
    respondLoaded(context, generation.model, { response: "" });
    return;
  }
  // `context` is the deprecated conversation state some clients still send back.
  await respondWithGeneration(context, generation, (text) => ({ response: text }), { context: [] });
}

function embed(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  const model = servedModel(context, body);
  const input = body.input ?? [];
  const inputs = typeof input === "string" ? [input] : input;
  if (!Array.isArray(inputs) || !inputs.every((item) => typeof item === "string")) {
    throw new FixtureRequestError(400, "invalid input type");
  }
  sendJson(context.res, 200, {
    model,
    embeddings: inputs.map((item) => embeddingFor(item)),
    total_duration: Math.round((performance.now() - context.record.receivedAt) * 1e6),
    load_duration: 0,
    prompt_eval_count: inputs.reduce((sum, item) => sum + countTokens(item), 0),
  });
}

/** The older single-prompt endpoint, still used by some clients. */
function legacyEmbeddings(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  servedModel(context, body);
  const prompt = body.prompt ?? "";
  if (typeof prompt !== "string") throw new FixtureRequestError(400, "prompt must be a string");
  sendJson(context.res, 200, { embedding: prompt === "" ? [] : embeddingFor(prompt) });
}
