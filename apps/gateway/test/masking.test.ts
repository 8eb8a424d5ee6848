// Masking at the source: the agent masks personal data and secrets in the
// runtime's answer before it leaves the GPU host, event by event, even when
// a value is split across stream events, and fails closed.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { type Stack, startStack, waitFor } from "./stack.js";

const ANSWER =
  "Contact john@example.com or pay with 4111 1111 1111 1111, badge EMP-123456. " +
  "Not a card: 4111 1111 1111 1112. Thanks.";
const MASKED =
  "Contact [EMAIL] or pay with [CREDIT_CARD], badge [EMPLOYEE_ID]. " + "Not a card: 4111 1111 1111 1112. Thanks.";
/** A model whose very name looks like an email: the response's `model` field is outside the masked paths. */
const ODD_MODEL = "john@example.com";

let stack: Stack;
let runtime: RuntimeFixture;
let broken: Server;
let client: OpenAI;

/** A runtime that starts a stream with part of an email, then sends an event no parser can read. */
async function startBrokenRuntime(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === "/health") return void res.end("ok");
    req.resume();
    res.writeHead(200, { "content-type": "text/event-stream" });
    const event = (content: string) =>
      `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: { content } }] })}\n\n`;
    res.write(event("Write to john@exa"));
    setTimeout(() => {
      res.write('data: {"choices": [{"delta": {"content": "mple.com\n\n');
      res.end(event(" now."));
    }, 20);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  runtime = await stack.addConnection("llama", {
    models: ["demo-chat", ODD_MODEL],
    fixture: { completionText: ANSWER, chunkIntervalMs: 15 },
  });
  await stack.addAgent("llama", runtime);
  broken = await startBrokenRuntime();
  const created = await stack.admin("POST", "/connections", { name: "broken", protocol: "openai", models: ["m"] });
  expect(created.status).toBe(201);
  await waitFor(() => stack.gateway.store.connectionByName("broken") !== undefined);
  await stack.addAgent("broken", {
    url: `http://127.0.0.1:${(broken.address() as AddressInfo).port}`,
  } as RuntimeFixture);
  const policy = await stack.admin("POST", "/policies", {
    name: "masked-llama",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama" }, { connection: "broken" }],
    operations: ["inference"],
    masking: {
      entities: ["EMAIL", "CREDIT_CARD"],
      custom: [{ name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" }],
      style: "label",
    },
  });
  expect(policy.status).toBe(201);
  await waitFor(() => stack.gateway.store.policies.size === 1, { what: "the policy at the gateway" });
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.close();
  broken?.close();
});

describe("masking at the agent", () => {
  it("masks values split across SSE events while other text streams on", async () => {
    const chunks = 40;
    const stream = await client.chat.completions.create(
      { model: "llama/demo-chat", messages: [{ role: "user", content: "contact details?" }], stream: true },
      { headers: { "x-fixture-chunks": String(chunks), "x-fixture-interval-ms": "40" } },
    );
    const deltas: string[] = [];
    let runtimeChunksAtFirstDelta: number | undefined;
    for await (const event of stream) {
      const text = event.choices[0]?.delta?.content;
      if (!text) continue;
      // How far the runtime had got when the client saw the first text.
      runtimeChunksAtFirstDelta ??= runtime.requests.at(-1)?.chunksWritten;
      deltas.push(text);
    }
    expect(deltas.join("")).toBe(MASKED);
    // No event ever carried any piece of a masked value.
    for (const text of deltas) expect(text).not.toMatch(/john|@|example|EMP-|4111 1111 1111 1111/);
    // Text that cannot be part of a value is not held back to the end: the
    // first words reached the client while the runtime was still writing.
    expect(deltas.length).toBeGreaterThan(5);
    expect(runtimeChunksAtFirstDelta).toBeLessThan(chunks);
  });

  it("masks concurrent streams under one profile each on its own, cut at different places", async () => {
    // The agent shares one masker per profile between requests: streams in
    // flight at once, cut into different chunkings, must not disturb each other.
    const answers = await Promise.all(
      [7, 11, 13, 17, 19, 23, 29, 31].map(async (chunks) => {
        const stream = await client.chat.completions.create(
          { model: "llama/demo-chat", messages: [{ role: "user", content: "contact details?" }], stream: true },
          { headers: { "x-fixture-chunks": String(chunks), "x-fixture-interval-ms": "3" } },
        );
        let text = "";
        for await (const event of stream) text += event.choices[0]?.delta?.content ?? "";
        return text;
      }),
    );
    expect(answers).toEqual(Array(8).fill(MASKED));
  });

  it("masks a JSON answer's content and leaves fields outside the paths as they are", async () => {
    const completion = await client.chat.completions.create({
      model: `llama/${ODD_MODEL}`,
      messages: [{ role: "user", content: "contact details?" }],
    });
    expect(completion.choices[0]?.message.content).toBe(MASKED);
    expect(completion.model).toBe(ODD_MODEL);
  });

  it("counts what it masked, per entity, in the metrics, the decision log and the audit session", async () => {
    const { response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages: [{ role: "user", content: "x" }] })
      .withResponse();
    const sessionId = response.headers.get("x-modelgate-session");
    const metrics = await fetch(`${stack.gateway.opsUrl}/metrics`).then((answer) => answer.text());
    for (const entity of ["EMAIL", "CREDIT_CARD", "EMPLOYEE_ID"]) {
      expect(metrics).toMatch(new RegExp(`modelgate_masked_total\\{entity="${entity}"\\} [1-9]`));
    }
    const logged = stack.logs.gateway
      .map((line) => JSON.parse(line))
      .filter((entry) => entry.msg === "decision" && entry.sessionId === sessionId);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({
      event: "modelgate.decision",
      decision: "masked",
      maskedCounts: { EMAIL: 1, CREDIT_CARD: 1, EMPLOYEE_ID: 1 },
    });

    let session: { status: number; body: { decision: string; details: { maskedCounts?: unknown } } } | undefined;
    await waitFor(
      async () => {
        session = await stack.admin("GET", `/sessions/${sessionId}`);
        return session.status === 200;
      },
      { timeoutMs: 10_000, what: "the audit session to be stored" },
    );
    expect(session?.body.decision).toBe("masked");
    expect(session?.body.details.maskedCounts).toEqual({ EMAIL: 1, CREDIT_CARD: 1, EMPLOYEE_ID: 1 });
  });

  it("refuses log-probabilities, which would repeat the answer token by token unmasked", async () => {
    const refused = await client.chat.completions
      .create({ model: "llama/demo-chat", messages: [{ role: "user", content: "x" }], logprobs: true })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("logprobs");
  });

  it("ends the stream with an error when masking fails, never sending the unmasked value", async () => {
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "broken/m", messages: [{ role: "user", content: "x" }], stream: true }),
    });
    const text = await response.text();
    expect(text).not.toContain("john");
    expect(text).not.toContain("mple.com");
    expect(text).toContain('"code":"masking_failed"');
  });
});
