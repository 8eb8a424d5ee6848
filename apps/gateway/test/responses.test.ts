// OpenAI's Responses API (`POST /v1/responses`) end to end, driven by the
// official `openai` SDK: routing, prompt rules over instructions and input,
// the max_output_tokens cap, masking of the answer wherever the stream
// repeats it, and the audit session with the answer's usage.
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { inferences, type Stack, startStack, waitFor } from "./stack.js";

const ANSWER = "Write to john@example.com for the keys. Thanks.";
const MASKED = "Write to [EMAIL] for the keys. Thanks.";

let stack: Stack;
let runtime: RuntimeFixture;
let client: OpenAI;

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  runtime = await stack.addConnection("llama", { fixture: { completionText: ANSWER, chunkIntervalMs: 2 } });
  await stack.addAgent("llama", runtime);
  const policy = await stack.admin("POST", "/policies", {
    name: "responses",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    limits: { maxTokens: 64, temperature: { max: 1 } },
    promptRules: [{ pattern: "export all customers", flags: "i", action: "block", description: "bulk export" }],
    masking: { entities: ["EMAIL"], style: "label" },
  });
  expect(policy.status).toBe(201);
  await waitFor(() => stack.gateway.store.policies.size === 1, { what: "the policy at the gateway" });
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.close();
});

function lastRuntimeBody() {
  const request = inferences(runtime).at(-1);
  if (!request) throw new Error("the runtime received nothing");
  expect(request.path).toBe("/v1/responses");
  return JSON.parse(request.body);
}

describe("OpenAI Responses API", () => {
  it("answers with the output text masked, and records the session with the answer's usage", async () => {
    const { data, response } = await client.responses
      .create({
        model: "llama/demo-chat",
        instructions: "You are terse.",
        input: [{ role: "user", content: [{ type: "input_text", text: "who has the keys?" }] }],
        max_output_tokens: 32,
      })
      .withResponse();
    expect(data.object).toBe("response");
    expect(data.status).toBe("completed");
    expect(data.output_text).toBe(MASKED);
    expect(data.usage).toMatchObject({ input_tokens: 7, output_tokens: 7 });
    expect(lastRuntimeBody()).toMatchObject({ model: "demo-chat", max_output_tokens: 32 });

    const recorded = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(recorded).toMatchObject({ decision: "masked", connection: "llama", model: "demo-chat" });
    expect(recorded.details.maskedCounts).toEqual({ EMAIL: 1 });
    expect(recorded.details.usage).toEqual({ prompt_tokens: 7, completion_tokens: 7, total_tokens: 14 });
  });

  it("streams the pieces masked across events, and masks the whole text the closing events repeat", async () => {
    const { data: stream, response } = await client.responses
      .create(
        { model: "llama/demo-chat", input: "keys?", max_output_tokens: 32, stream: true },
        { headers: { "x-fixture-chunks": "23" } },
      )
      .withResponse();
    const pieces: string[] = [];
    const events: { type: string }[] = [];
    for await (const event of stream) {
      events.push(event);
      if (event.type === "response.output_text.delta") pieces.push(event.delta);
    }
    expect(pieces.join("")).toBe(MASKED);
    for (const piece of pieces) expect(piece).not.toMatch(/john|@|example/);
    // The address is in none of the events, the closing ones included.
    expect(JSON.stringify(events)).not.toContain("john");
    const done = events.find((event) => event.type === "response.output_text.done");
    expect(done).toMatchObject({ text: MASKED });
    const completed = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
    expect(completed.type).toBe("response.completed");
    expect(JSON.stringify(completed.response.output)).toContain(MASKED);

    // Counted once, although the text came four times; usage from response.completed.
    const recorded = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(recorded.details.maskedCounts).toEqual({ EMAIL: 1 });
    expect(recorded.details.usage).toEqual({ prompt_tokens: 1, completion_tokens: 7, total_tokens: 8 });
  });

  it("blocks a prompt rule's match in the instructions or the input, before the runtime sees it", async () => {
    const before = inferences(runtime).length;
    for (const body of [
      { instructions: "Export all customers.", input: "go" },
      { input: [{ role: "user" as const, content: [{ type: "input_text" as const, text: "EXPORT ALL customers" }] }] },
    ]) {
      const blocked = await client.responses
        .create({ model: "llama/demo-chat", ...body })
        .catch((error: unknown) => error);
      expect(blocked).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect((blocked as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("prompt_blocked");
    }
    expect(inferences(runtime).length).toBe(before);
  });

  it("refuses input rules cannot read: an image, or an earlier response the runtime would add", async () => {
    for (const body of [
      {
        input: [
          {
            role: "user" as const,
            content: [{ type: "input_image" as const, image_url: "data:,x", detail: "auto" as const }],
          },
        ],
      },
      { input: "and then?", previous_response_id: "resp_123" },
    ]) {
      const refused = await client.responses
        .create({ model: "llama/demo-chat", ...body })
        .catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
      expect((refused as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("invalid_request");
    }
  });

  it("caps max_output_tokens and temperature by the grant, and sets the cap when the body has none", async () => {
    const tooMany = await client.responses
      .create({ model: "llama/demo-chat", input: "x", max_output_tokens: 500 })
      .catch((error: unknown) => error);
    expect(tooMany).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(tooMany).toMatchObject({ code: "parameter_limit_exceeded", param: "max_output_tokens" });
    const hot = await client.responses
      .create({ model: "llama/demo-chat", input: "x", temperature: 1.5 })
      .catch((error: unknown) => error);
    expect(hot).toMatchObject({ code: "parameter_limit_exceeded", param: "temperature" });

    await client.responses.create({ model: "llama/demo-chat", input: "x" });
    expect(lastRuntimeBody().max_output_tokens).toBe(64);
  });

  it("refuses log-probabilities under masking: they would repeat the answer token by token", async () => {
    const refused = await client.responses
      .create({ model: "llama/demo-chat", input: "x", include: ["message.output_text.logprobs"] })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused).toMatchObject({ param: "include" });
  });
});
