// OpenAI's Responses API as vLLM serves it (statelessly: nothing is stored,
// so `previous_response_id` is refused). The `openai` SDK's
// `client.responses.create` is the client the gateway's tests drive through it.
import { type Answer, composeAnswer, unixSeconds } from "../answer.js";
import { type RequestContext, type Route, respondWithStream } from "../context.js";
import { sendJson } from "../http.js";
import { isJsonObject, optionalBoolean, optionalInteger, parseJsonObject, textOf } from "../json-body.js";
import { FixtureRequestError } from "../protocol-errors.js";
import { sseNamedFrame } from "../stream.js";
import { countTokens } from "../tokens.js";

const SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8";

export const responsesRoutes: readonly Route[] = [
  { path: "/v1/responses", protocol: "openai", methods: { POST: responses } },
];

interface ResponsesRequest {
  model: string;
  stream: boolean;
  instructions: string | null;
  maxOutputTokens: number | null;
  inputTokens: number;
  answer: Answer;
}

function readResponsesRequest(context: RequestContext): ResponsesRequest {
  const body = parseJsonObject(context.body);
  const model = body.model;
  if (typeof model !== "string" || model === "") {
    throw new FixtureRequestError(400, "you must provide a model parameter", { param: "model" });
  }
  if (!context.fixture.settings.models.includes(model)) {
    throw new FixtureRequestError(404, `The model \`${model}\` does not exist.`, {
      param: "model",
      code: "model_not_found",
    });
  }
  const input = body.input;
  if (typeof input !== "string" && !(Array.isArray(input) && input.length > 0 && input.every(isJsonObject))) {
    throw new FixtureRequestError(400, `"input" must be a string or a non-empty list of items`, { param: "input" });
  }
  if (body.previous_response_id != null) {
    throw new FixtureRequestError(400, "this server stores no responses", { param: "previous_response_id" });
  }
  const instructions = typeof body.instructions === "string" ? body.instructions : null;
  const maxOutputTokens = optionalInteger(body, "max_output_tokens", 1) ?? null;
  return {
    model,
    stream: optionalBoolean(body, "stream") ?? false,
    instructions,
    maxOutputTokens,
    inputTokens: countTokens(`${instructions ?? ""} ${textOf(input)}`),
    answer: composeAnswer(context, maxOutputTokens ?? undefined),
  };
}

async function responses(context: RequestContext): Promise<void> {
  const request = readResponsesRequest(context);
  const id = `resp_fixture_${context.record.id}`;
  const itemId = `msg_fixture_${context.record.id}`;
  const { answer } = request;
  const finished = answer.truncated ? "incomplete" : "completed";
  const response = (status: string, output: unknown[], usage: unknown) => ({
    id,
    object: "response",
    created_at: unixSeconds(),
    status,
    model: request.model,
    instructions: request.instructions,
    max_output_tokens: request.maxOutputTokens,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    output,
    parallel_tool_calls: true,
    tool_choice: "auto",
    tools: [],
    usage,
  });
  const part = (text: string) => ({ type: "output_text", text, annotations: [] });
  const item = (status: string, content: unknown[]) => ({
    id: itemId,
    type: "message",
    status,
    role: "assistant",
    content,
  });
  const usage = {
    input_tokens: request.inputTokens,
    output_tokens: answer.tokens,
    total_tokens: request.inputTokens + answer.tokens,
  };
  if (!request.stream) {
    sendJson(context.res, 200, response(finished, [item("completed", [part(answer.text)])], usage));
    return;
  }
  // OpenAI's order: the response, the item and its part as they start, the
  // text's pieces, then the whole text again as each of them ends.
  let sequence = 0;
  const event = (type: string, data: object) => sseNamedFrame(type, { type, sequence_number: sequence++, ...data });
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  await respondWithStream(context, {
    contentType: SSE_CONTENT_TYPE,
    leading: [
      event("response.created", { response: response("in_progress", [], null) }),
      event("response.in_progress", { response: response("in_progress", [], null) }),
      event("response.output_item.added", { output_index: 0, item: item("in_progress", []) }),
      event("response.content_part.added", { ...at, part: part("") }),
    ],
    timed: (function* () {
      for (const delta of answer.chunks) yield event("response.output_text.delta", { ...at, delta, logprobs: [] });
    })(),
    trailing: () => [
      event("response.output_text.done", { ...at, text: answer.text, logprobs: [] }),
      event("response.content_part.done", { ...at, part: part(answer.text) }),
      event("response.output_item.done", { output_index: 0, item: item("completed", [part(answer.text)]) }),
      event(answer.truncated ? "response.incomplete" : "response.completed", {
        response: response(finished, [item("completed", [part(answer.text)])], usage),
      }),
    ],
  });
}
