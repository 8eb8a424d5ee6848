// OpenAI-compatible API as vLLM serves it (the `openai` SDK is the client
// the gateway's end-to-end tests drive through it).
import { type Answer, composeAnswer, unixSeconds } from "../answer.js";
import { type RequestContext, type Route, respondWithStream } from "../context.js";
import { embeddingFor, float32Base64 } from "../embedding.js";
import { sendJson } from "../http.js";
import {
  type JsonObject,
  optionalBoolean,
  optionalInteger,
  optionalObject,
  parseJsonObject,
  textOf,
} from "../json-body.js";
import { FixtureRequestError } from "../protocol-errors.js";
import { sseFrame } from "../stream.js";
import { countTokens } from "../tokens.js";

const OWNED_BY = "modelgate-runtime-fixture";
const SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8";
const DONE_FRAME = "data: [DONE]\n\n";

export const openAiRoutes: readonly Route[] = [
  { path: "/v1/models", protocol: "openai", methods: { GET: listModels } },
  { path: "/v1/chat/completions", protocol: "openai", methods: { POST: chatCompletions } },
  { path: "/v1/completions", protocol: "openai", methods: { POST: textCompletions } },
  { path: "/v1/embeddings", protocol: "openai", methods: { POST: embeddings } },
];

function listModels(context: RequestContext): void {
  const created = Math.floor(context.fixture.startedAt.getTime() / 1000);
  sendJson(context.res, 200, {
    object: "list",
    data: context.fixture.settings.models.map((id) => ({ id, object: "model", created, owned_by: OWNED_BY })),
  });
}

/** The fields chat and legacy completions share. */
interface GenerationRequest {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  answer: Answer;
}

function readGenerationRequest(context: RequestContext, promptField: "messages" | "prompt"): GenerationRequest {
  const body = parseJsonObject(context.body);
  const model = servedModel(context, body);
  const prompt = body[promptField];
  if (promptField === "messages" ? !Array.isArray(prompt) || prompt.length === 0 : prompt == null) {
    const expected = promptField === "messages" ? "a non-empty array" : "a string or an array";
    throw new FixtureRequestError(400, `"${promptField}" must be ${expected}`, { param: promptField });
  }
  const stream = optionalBoolean(body, "stream") ?? false;
  const includeUsage = optionalObject(body, "stream_options").include_usage === true;
  // `max_completion_tokens` replaced `max_tokens` in the chat API; both are still sent.
  const maxCompletionTokens = optionalInteger(body, "max_completion_tokens", 1);
  const maxTokens = optionalInteger(body, "max_tokens", 1);
  return {
    model,
    stream,
    includeUsage,
    promptTokens: countTokens(textOf(prompt)),
    answer: composeAnswer(context, maxCompletionTokens ?? maxTokens),
  };
}

/** The requested model when this fixture serves it; OpenAI's 404 otherwise. */
function servedModel(context: RequestContext, body: JsonObject): string {
  const model = body.model;
  if (typeof model !== "string" || model === "") {
    throw new FixtureRequestError(400, "you must provide a model parameter", { param: "model" });
  }
  if (!context.fixture.settings.models.includes(model)) {
    throw new FixtureRequestError(404, `The model \`${model}\` does not exist or you do not have access to it.`, {
      param: "model",
      code: "model_not_found",
    });
  }
  return model;
}

function usageOf(request: GenerationRequest) {
  return {
    prompt_tokens: request.promptTokens,
    completion_tokens: request.answer.tokens,
    total_tokens: request.promptTokens + request.answer.tokens,
  };
}

function finishReason(answer: Answer): "stop" | "length" {
  return answer.truncated ? "length" : "stop";
}

async function chatCompletions(context: RequestContext): Promise<void> {
  const request = readGenerationRequest(context, "messages");
  const id = `chatcmpl-fixture-${context.record.id}`;
  const created = unixSeconds();
  if (!request.stream) {
    sendJson(context.res, 200, {
      id,
      object: "chat.completion",
      created,
      model: request.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: request.answer.text },
          logprobs: null,
          finish_reason: finishReason(request.answer),
        },
      ],
      usage: usageOf(request),
    });
    return;
  }

  const chunk = (choices: unknown[], usage: unknown = null) =>
    sseFrame({
      id,
      object: "chat.completion.chunk",
      created,
      model: request.model,
      choices,
      // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
      ...(request.includeUsage ? { usage } : {}),
    });
  const choice = (delta: object, reason: string | null = null) => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: reason,
  });
  await respondWithStream(context, {
    contentType: SSE_CONTENT_TYPE,
    leading: [chunk([choice({ role: "assistant", content: "" })])],
    timed: request.answer.chunks.map((content) => chunk([choice({ content })])),
    trailing: () => [
      chunk([choice({}, finishReason(request.answer))]),
      ...(request.includeUsage ? [chunk([], usageOf(request))] : []),
      DONE_FRAME,
    ],
  });
}

async function textCompletions(context: RequestContext): Promise<void> {
  const request = readGenerationRequest(context, "prompt");
  const id = `cmpl-fixture-${context.record.id}`;
  const created = unixSeconds();
  const completion = (text: string, reason: string | null, usage?: unknown) => ({
    id,
    object: "text_completion",
    created,
    model: request.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: reason }],
    ...(usage === undefined ? {} : { usage }),
  });
  if (!request.stream) {
    sendJson(context.res, 200, completion(request.answer.text, finishReason(request.answer), usageOf(request)));
    return;
  }
  await respondWithStream(context, {
    contentType: SSE_CONTENT_TYPE,
    timed: request.answer.chunks.map((text) =>
      sseFrame(completion(text, null, request.includeUsage ? null : undefined)),
    ),
    trailing: () => [
      sseFrame(completion("", finishReason(request.answer), request.includeUsage ? null : undefined)),
      ...(request.includeUsage ? [sseFrame({ ...completion("", null), choices: [], usage: usageOf(request) })] : []),
      DONE_FRAME,
    ],
  });
}

function embeddings(context: RequestContext): void {
  const body = parseJsonObject(context.body);
  const model = servedModel(context, body);
  const inputs = embeddingInputs(body.input);
  const format = body.encoding_format ?? "float";
  if (format !== "float" && format !== "base64") {
    throw new FixtureRequestError(400, `"encoding_format" must be "float" or "base64"`, { param: "encoding_format" });
  }
  const promptTokens = inputs.reduce((sum, input) => sum + countTokens(input), 0);
  sendJson(context.res, 200, {
    object: "list",
    data: inputs.map((input, index) => {
      const vector = embeddingFor(input);
      return { object: "embedding", index, embedding: format === "base64" ? float32Base64(vector) : vector };
    }),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

/**
 * `input` as the API allows it: a string, an array of strings, or token ids
 * (an array of integers, or an array of such arrays). Token ids embed by
 * their JSON text, which keeps them deterministic.
 */
function embeddingInputs(input: unknown): string[] {
  const invalid = () =>
    new FixtureRequestError(400, `"input" must be a string, an array of strings or an array of token arrays`, {
      param: "input",
    });
  if (typeof input === "string") return [input];
  if (!Array.isArray(input) || input.length === 0) throw invalid();
  if (input.every((item) => typeof item === "string")) return input;
  if (input.every((item) => Number.isInteger(item))) return [JSON.stringify(input)];
  if (input.every((item) => Array.isArray(item) && item.every((token) => Number.isInteger(token)))) {
    return input.map((tokens) => JSON.stringify(tokens));
  }
  throw invalid();
}
