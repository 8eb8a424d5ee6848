// Anthropic's Messages API (`POST /v1/messages`) end to end, driven by the
// official `@anthropic-ai/sdk`: routing by `<connection>/<model>`, the
// credential in `x-api-key` or `Authorization`, prompt rules, token caps,
// masking of whole and streamed answers, refusals in Anthropic's shape and
// the audit session with the answer's usage.
import Anthropic from "@anthropic-ai/sdk";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { rawRequest } from "./raw-http.js";
import { inferences, type Stack, startStack, waitFor } from "./stack.js";

const ANSWER = "Write to john@example.com for the keys. Thanks.";
const MASKED = "Write to [EMAIL] for the keys. Thanks.";

let stack: Stack;
let runtime: RuntimeFixture;
let client: Anthropic;

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  runtime = await stack.addConnection("llama", { fixture: { completionText: ANSWER, chunkIntervalMs: 2 } });
  await stack.addAgent("llama", runtime);
  const policy = await stack.admin("POST", "/policies", {
    name: "messages",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    limits: { maxTokens: 64, temperature: { max: 1 } },
    promptRules: [{ pattern: "export all customers", flags: "i", action: "block", description: "bulk export" }],
    masking: { entities: ["EMAIL"], style: "label" },
  });
  expect(policy.status).toBe(201);
  await waitFor(() => stack.gateway.store.policies.size === 1, { what: "the policy at the gateway" });
  client = new Anthropic({ baseURL: stack.gateway.url, apiKey: stack.apiKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.close();
});

function lastRuntimeBody() {
  const request = inferences(runtime).at(-1);
  if (!request) throw new Error("the runtime received nothing");
  expect(request.path).toBe("/v1/messages");
  return JSON.parse(request.body);
}

describe("Anthropic Messages API", () => {
  it("answers a message with its text masked, and records the session with the answer's usage", async () => {
    const { data, response } = await client.messages
      .create({
        model: "llama/demo-chat",
        max_tokens: 32,
        system: "You are terse.",
        messages: [{ role: "user", content: [{ type: "text", text: "who has the keys?" }] }],
      })
      .withResponse();
    expect(data.type).toBe("message");
    expect(data.content).toEqual([{ type: "text", text: MASKED }]);
    expect(data.stop_reason).toBe("end_turn");
    expect(data.usage).toMatchObject({ input_tokens: 7, output_tokens: 7 });
    // The runtime got the bare model name and the caller's own limit.
    expect(lastRuntimeBody()).toMatchObject({ model: "demo-chat", max_tokens: 32 });

    const recorded = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(recorded).toMatchObject({
      decision: "masked",
      connection: "llama",
      model: "demo-chat",
    });
    expect(recorded.details.maskedCounts).toEqual({ EMAIL: 1 });
    expect(recorded.details.usage).toEqual({ prompt_tokens: 7, completion_tokens: 7, total_tokens: 14 });
  });

  it("streams Anthropic's events with an email split across them masked, and counts usage from the first and last", async () => {
    const stream = await client.messages.create(
      { model: "llama/demo-chat", max_tokens: 32, messages: [{ role: "user", content: "keys?" }], stream: true },
      { headers: { "x-fixture-chunks": "23" } },
    );
    const types: string[] = [];
    const pieces: string[] = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") pieces.push(event.delta.text);
    }
    expect(pieces.join("")).toBe(MASKED);
    for (const piece of pieces) expect(piece).not.toMatch(/john|@|example/);
    expect(types[0]).toBe("message_start");
    expect(types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);

    // The SDK's own accumulation reads the same.
    const final = await client.messages
      .stream({ model: "llama/demo-chat", max_tokens: 32, messages: [{ role: "user", content: "keys?" }] })
      .finalMessage();
    expect(final.content).toEqual([{ type: "text", text: MASKED }]);
    expect(final.usage.output_tokens).toBe(7);
  });

  it("records a streamed answer's usage: prompt tokens from message_start, answer tokens from message_delta", async () => {
    const { response, data: stream } = await client.messages
      .create({
        model: "llama/demo-chat",
        max_tokens: 32,
        messages: [{ role: "user", content: "a b c" }],
        stream: true,
      })
      .withResponse();
    for await (const _event of stream) {
      // drained
    }
    const recorded = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(recorded.details.usage).toEqual({ prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 });
  });

  it("caps max_tokens and temperature by the grant, refusing in Anthropic's error shape", async () => {
    const tooMany = await client.messages
      .create({ model: "llama/demo-chat", max_tokens: 500, messages: [{ role: "user", content: "x" }] })
      .catch((error: unknown) => error);
    expect(tooMany).toBeInstanceOf(Anthropic.PermissionDeniedError);
    const denied = tooMany as InstanceType<typeof Anthropic.PermissionDeniedError>;
    expect(denied.type).toBe("permission_error");
    expect(denied.error).toMatchObject({
      type: "error",
      error: { type: "permission_error", code: "parameter_limit_exceeded", param: "max_tokens" },
    });
    expect(denied.headers?.get("x-modelgate-session")).toMatch(/^[0-9a-f-]{36}$/);

    // The SDK's types dropped `temperature` (1.x); vLLM, and older clients, still send it.
    const hotParams = {
      model: "llama/demo-chat",
      max_tokens: 8,
      temperature: 1.5,
      messages: [{ role: "user", content: "x" }],
    };
    const hot = await client.messages
      .create(hotParams as Anthropic.MessageCreateParamsNonStreaming)
      .catch((error: unknown) => error);
    expect((hot as InstanceType<typeof Anthropic.PermissionDeniedError>).error).toMatchObject({
      error: { code: "parameter_limit_exceeded", param: "temperature" },
    });
    expect(inferences(runtime).every((request) => !request.body.includes("1.5"))).toBe(true);
  });

  it("blocks a prompt rule's match in the system prompt and in text blocks, before the runtime sees it", async () => {
    const before = inferences(runtime).length;
    for (const body of [
      { system: "Export all customers now.", messages: [{ role: "user" as const, content: "go" }] },
      {
        messages: [
          { role: "user" as const, content: [{ type: "text" as const, text: "please EXPORT ALL customers" }] },
        ],
      },
    ]) {
      const blocked = await client.messages
        .create({ model: "llama/demo-chat", max_tokens: 8, ...body })
        .catch((error: unknown) => error);
      expect(blocked).toBeInstanceOf(Anthropic.PermissionDeniedError);
      expect((blocked as InstanceType<typeof Anthropic.PermissionDeniedError>).error).toMatchObject({
        error: { type: "permission_error", code: "prompt_blocked" },
      });
    }
    expect(inferences(runtime).length).toBe(before);
  });

  it("refuses an image where prompt rules apply: its text cannot be read", async () => {
    const refused = await client.messages
      .create({
        model: "llama/demo-chat",
        max_tokens: 8,
        messages: [
          {
            role: "user",
            content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }],
          },
        ],
      })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Anthropic.BadRequestError);
    expect((refused as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({
      error: { type: "invalid_request_error", code: "invalid_request" },
    });
  });

  it("sets max_tokens to the grant's cap when the body has none", async () => {
    const response = await fetch(`${stack.gateway.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": stack.apiKey, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "x" }] }),
    });
    expect(response.status).toBe(200);
    expect(lastRuntimeBody().max_tokens).toBe(64);
  });

  it("reads the key from x-api-key on this route only, one credential at a time", async () => {
    // As Anthropic's clients before 1.0 and Claude Code send it.
    const viaHeader = new Anthropic({
      baseURL: stack.gateway.url,
      apiKey: null,
      authToken: null,
      defaultHeaders: { "x-api-key": stack.apiKey },
      maxRetries: 0,
    });
    const message = await viaHeader.messages.create({
      model: "llama/demo-chat",
      max_tokens: 8,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(message.type).toBe("message");
    expect(JSON.stringify(inferences(runtime).at(-1)?.headers)).not.toContain(stack.apiKey);

    const send = (path: string, headers: Record<string, string>) =>
      fetch(`${stack.gateway.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "llama/demo-chat", max_tokens: 8, messages: [{ role: "user", content: "x" }] }),
      });
    const other = `mg_${"A".repeat(32)}`;
    // The same key twice over is one credential; two different ones are refused.
    expect(
      (await send("/v1/messages", { "x-api-key": stack.apiKey, authorization: `Bearer ${stack.apiKey}` })).status,
    ).toBe(200);
    const two = await send("/v1/messages", { "x-api-key": other, authorization: `Bearer ${stack.apiKey}` });
    expect(two.status).toBe(400);
    expect(await two.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", code: "invalid_request" },
    });
    expect((await send("/v1/messages", { "x-api-key": other })).status).toBe(401);
    // Elsewhere x-api-key is still not read.
    const chat = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "x-api-key": stack.apiKey, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "x" }] }),
    });
    expect(chat.status).toBe(401);
  });

  it("refuses repeated x-api-key headers, equal or not, as it refuses repeated Authorization headers", async () => {
    const body = JSON.stringify({
      model: "llama/demo-chat",
      max_tokens: 8,
      messages: [{ role: "user", content: "x" }],
    });
    const answer = await rawRequest(
      stack.gateway.url,
      [
        "POST /v1/messages HTTP/1.1",
        "Content-Type: application/json",
        `x-api-key: ${stack.apiKey}`,
        `x-api-key: ${stack.apiKey}`,
      ],
      body,
    );
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({
      type: "error",
      error: { code: "invalid_request", message: "the request carries more than one x-api-key header" },
    });
  });
});
