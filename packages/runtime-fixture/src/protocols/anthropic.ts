// Anthropic's Messages API as vLLM serves it for Anthropic's clients (the
// `@anthropic-ai/sdk` client the gateway's end-to-end tests drive through it):
// a whole message, or the stream of named events Anthropic's API sends.
import { type Answer, composeAnswer } from "../answer.js";
import { type RequestContext, type Route, respondWithStream } from "../context.js";
import { sendJson } from "../http.js";
import { isJsonObject, optionalBoolean, optionalInteger, parseJsonObject, textOf } from "../json-body.js";
import { FixtureRequestError } from "../protocol-errors.js";
import { sseNamedFrame } from "../stream.js";
import { countTokens } from "../tokens.js";

const SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8";

export const anthropicRoutes: readonly Route[] = [
  { path: "/v1/messages", protocol: "anthropic", methods: { POST: messages } },
];

interface MessagesRequest {
  model: string;
  stream: boolean;
  inputTokens: number;
  answer: Answer;
}

function readMessagesRequest(context: RequestContext): MessagesRequest {
  const body = parseJsonObject(context.body);
  const model = body.model;
  if (typeof model !== "string" || model === "") throw new FixtureRequestError(400, "model: Field required");
  if (!context.fixture.settings.models.includes(model)) {
    throw new FixtureRequestError(404, `The model \`${model}\` does not exist.`);
  }
  // Required in Anthropic's API, unlike OpenAI's max_tokens.
  const maxTokens = optionalInteger(body, "max_tokens", 1);
  if (maxTokens === undefined) throw new FixtureRequestError(400, "max_tokens: Field required");
  const conversation = body.messages;
  if (!Array.isArray(conversation) || conversation.length === 0 || !conversation.every(isJsonObject)) {
    throw new FixtureRequestError(400, "messages: must be a non-empty list of messages");
  }
  const system = body.system === undefined ? "" : textOf(body.system);
  return {
    model,
    stream: optionalBoolean(body, "stream") ?? false,
    inputTokens: countTokens(`${system} ${textOf(conversation)}`),
    answer: composeAnswer(context, maxTokens),
  };
}

function stopReason(answer: Answer): "end_turn" | "max_tokens" {
  return answer.truncated ? "max_tokens" : "end_turn";
}

async function messages(context: RequestContext): Promise<void> {
  const request = readMessagesRequest(context);
  const message = {
    id: `msg_fixture_${context.record.id}`,
    type: "message",
    role: "assistant",
    model: request.model,
  };
  if (!request.stream) {
    sendJson(context.res, 200, {
      ...message,
      content: [{ type: "text", text: request.answer.text }],
      stop_reason: stopReason(request.answer),
      stop_sequence: null,
      usage: { input_tokens: request.inputTokens, output_tokens: request.answer.tokens },
    });
    return;
  }
  // Anthropic's order: the message (with the prompt's tokens), each content
  // block's start, pieces and stop, then the stop reason with the answer's
  // tokens, and the message's end.
  await respondWithStream(context, {
    contentType: SSE_CONTENT_TYPE,
    leading: [
      sseNamedFrame("message_start", {
        type: "message_start",
        message: {
          ...message,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: request.inputTokens, output_tokens: 1 },
        },
      }),
      sseNamedFrame("content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { type: "text", text: "" },
      }),
      sseNamedFrame("ping", { type: "ping" }),
    ],
    timed: request.answer.chunks.map((text) =>
      sseNamedFrame("content_block_delta", {
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text },
      }),
    ),
    trailing: () => [
      sseNamedFrame("content_block_stop", { type: "content_block_stop", index: 0 }),
      sseNamedFrame("message_delta", {
        type: "message_delta",
        delta: { stop_reason: stopReason(request.answer), stop_sequence: null },
        usage: { output_tokens: request.answer.tokens },
      }),
      sseNamedFrame("message_stop", { type: "message_stop" }),
    ],
  });
}
