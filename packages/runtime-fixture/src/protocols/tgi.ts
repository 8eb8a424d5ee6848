// Hugging Face Text Generation Inference's native API. TGI serves one model,
// so requests name none and the fixture answers as its first model.
import { type Answer, composeAnswer } from "../answer.js";
import { type RequestContext, type Route, respondWithStream } from "../context.js";
import { sendJson } from "../http.js";
import { type JsonObject, optionalBoolean, optionalInteger, optionalObject, parseJsonObject } from "../json-body.js";
import { FixtureRequestError } from "../protocol-errors.js";
import { countTokens } from "../tokens.js";

/** TGI reports invalid fields as 422 "validation" errors. */
const VALIDATION = 422;
const TGI_VERSION = "3.3.4";
// A fixed stand-in for a token's log-probability; clients only display it.
const TOKEN_LOGPROB = -0.25;

export const tgiRoutes: readonly Route[] = [
  { path: "/info", protocol: "tgi", methods: { GET: info } },
  { path: "/generate", protocol: "tgi", methods: { POST: generate } },
  { path: "/generate_stream", protocol: "tgi", methods: { POST: generateStream } },
];

function modelId(context: RequestContext): string {
  // resolveOptions guarantees at least one model.
  return context.fixture.settings.models[0] ?? "";
}

function info(context: RequestContext): void {
  sendJson(context.res, 200, {
    model_id: modelId(context),
    model_sha: null,
    model_dtype: "float16",
    model_device_type: "cpu",
    model_pipeline_tag: "text-generation",
    max_concurrent_requests: 128,
    max_best_of: 2,
    max_stop_sequences: 4,
    max_input_tokens: 4095,
    max_total_tokens: 4096,
    validation_workers: 2,
    max_client_batch_size: 4,
    router: "text-generation-router",
    version: TGI_VERSION,
    sha: null,
    docker_label: null,
  });
}

interface TgiRequest {
  answer: Answer;
  details: boolean;
  inputTokens: number;
}

function readRequest(context: RequestContext): TgiRequest {
  const body: JsonObject = parseJsonObject(context.body);
  const inputs = body.inputs;
  if (typeof inputs !== "string" || inputs.trim() === "") {
    throw new FixtureRequestError(VALIDATION, "Input validation error: `inputs` cannot be empty");
  }
  const parameters = optionalObject(body, "parameters", VALIDATION);
  return {
    answer: composeAnswer(context, optionalInteger(parameters, "max_new_tokens", 1, VALIDATION)),
    details: optionalBoolean(parameters, "details", VALIDATION) ?? false,
    inputTokens: countTokens(inputs),
  };
}

function detailsOf(request: TgiRequest) {
  return {
    finish_reason: request.answer.truncated ? "length" : "eos_token",
    generated_tokens: request.answer.tokens,
    seed: null,
  };
}

function generate(context: RequestContext): void {
  const request = readRequest(context);
  sendJson(context.res, 200, {
    generated_text: request.answer.text,
    ...(request.details ? { details: { ...detailsOf(request), prefill: [], tokens: [] } } : {}),
  });
}

async function generateStream(context: RequestContext): Promise<void> {
  const request = readRequest(context);
  const { chunks } = request.answer;
  await respondWithStream(context, {
    contentType: "text/event-stream",
    // TGI writes `data:` without a space; SSE parsers accept both.
    timed: chunks.map((text, index) => {
      const last = index === chunks.length - 1;
      return `data:${JSON.stringify({
        index: index + 1,
        token: { id: index + 1, text, logprob: TOKEN_LOGPROB, special: false },
        generated_text: last ? request.answer.text : null,
        details: last ? detailsOf(request) : null,
        top_tokens: null,
      })}\n\n`;
    }),
  });
}
