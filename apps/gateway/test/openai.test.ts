// The OpenAI-compatible routes end to end, driven by the official `openai`
// SDK: control plane → config push → gateway → agent → runtime fixture.

import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { inferences, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;
let client: OpenAI;

beforeAll(async () => {
  stack = await startStack();
  runtime = await stack.addConnection("llama", { fixture: { chunkIntervalMs: 5 } });
  await stack.addAgent("llama", runtime);
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.close();
});

function lastRuntimeRequest() {
  const request = inferences(runtime).at(-1);
  if (!request) throw new Error("the runtime received nothing");
  return request;
}

describe("OpenAI-compatible routes", () => {
  it("answers a chat completion with the runtime's response and a session id", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages: [{ role: "user", content: "hello" }] })
      .withResponse();
    expect(data.object).toBe("chat.completion");
    expect(data.choices[0]?.message.content).toContain("demo runtime");
    expect(response.headers.get("x-modelgate-session")).toMatch(/^[0-9a-f-]{36}$/);

    // The runtime saw its own credential and the bare model name, never the caller's key.
    const seen = lastRuntimeRequest();
    expect(seen.path).toBe("/v1/chat/completions");
    expect(seen.headers.authorization).toBe(`Bearer ${RUNTIME_API_KEY}`);
    expect(JSON.stringify(seen.headers)).not.toContain(stack.apiKey);
    expect(JSON.parse(seen.body).model).toBe("demo-chat");
  });

  it("routes a bare model name that exactly one connection serves", async () => {
    const completion = await client.chat.completions.create({
      model: "demo-chat",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(completion.choices[0]?.finish_reason).toBe("stop");
  });

  it("streams chunk by chunk: the first arrives long before the runtime finishes", async () => {
    const chunks = 10;
    const intervalMs = 60;
    const started = performance.now();
    const stream = await client.chat.completions.create(
      { model: "llama/demo-chat", messages: [{ role: "user", content: "stream" }], stream: true },
      { headers: { "x-fixture-chunks": String(chunks), "x-fixture-interval-ms": String(intervalMs) } },
    );
    const arrivals: number[] = [];
    let text = "";
    for await (const chunk of stream) {
      arrivals.push(performance.now() - started);
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    const first = arrivals[0] ?? Number.NaN;
    const last = arrivals.at(-1) ?? Number.NaN;
    // The runtime needs (chunks - 1) × interval between its first and last
    // content chunk; a buffering proxy would deliver them all at the end.
    expect(last - first).toBeGreaterThan((chunks - 2) * intervalMs);
    expect(arrivals.length).toBeGreaterThanOrEqual(chunks);
    expect(text.length).toBeGreaterThan(0);
  });

  it("cancels the runtime request within 100 ms when the client aborts mid-stream", async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "llama/demo-chat", messages: [{ role: "user", content: "long" }], stream: true },
      { headers: { "x-fixture-chunks": "1000", "x-fixture-interval-ms": "20" }, signal: controller.signal },
    );
    let received = 0;
    let abortedAt = 0;
    // The SDK ends the iteration quietly when its signal is aborted.
    for await (const _chunk of stream) {
      if (++received === 3) {
        abortedAt = performance.now();
        controller.abort();
      }
    }
    expect(received).toBe(3);
    const request = lastRuntimeRequest();
    const runtimeAbortedAt = await runtime.waitForAbort(request.id, 2_000);
    // Both clocks are this process's performance.now().
    expect(runtimeAbortedAt - abortedAt).toBeLessThan(100);
    await waitFor(() => runtime.inFlight() === 0, { what: "the runtime to be idle" });
  });

  it("serves embeddings (the SDK asks for base64) and lists models as <connection>/<model>", async () => {
    const embedding = await client.embeddings.create({ model: "llama/demo-embed", input: "vector me" });
    expect(embedding.data[0]?.embedding).toHaveLength(8);
    expect(embedding.data[0]?.embedding.every((value) => Number.isFinite(value))).toBe(true);

    const models = [];
    for await (const model of client.models.list()) models.push(model.id);
    expect(models).toEqual(expect.arrayContaining(["llama/demo-chat", "llama/demo-embed"]));
  });

  it("retrieves one model the caller may list, and answers 404 alike for one it may not and one that does not exist", async () => {
    // The SDK sends the id as one path segment: /v1/models/llama%2Fdemo-chat.
    const model = await client.models.retrieve("llama/demo-chat");
    expect(model).toEqual({ id: "llama/demo-chat", object: "model", created: 0, owned_by: "llama" });
    // Written with its slash, as curl users do.
    const plain = await fetch(`${stack.gateway.url}/v1/models/llama/demo-embed`, {
      headers: { authorization: `Bearer ${stack.apiKey}` },
    });
    expect(plain.status).toBe(200);
    expect(await plain.json()).toMatchObject({ id: "llama/demo-embed" });

    // "hidden" exists and lists demo-chat, but no policy of the caller names it.
    await stack.addConnection("hidden", { models: ["demo-chat"] });
    const refusals = [];
    for (const id of ["hidden/demo-chat", "llama/no-such-model", "nowhere/demo-chat"]) {
      const error = await client.models.retrieve(id).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(OpenAI.NotFoundError);
      const { status, code, message } = error as InstanceType<typeof OpenAI.NotFoundError>;
      refusals.push({ status, code, message });
    }
    expect(new Set(refusals.map((refusal) => JSON.stringify(refusal))).size).toBe(1);
    expect(refusals[0]).toMatchObject({ status: 404, code: "not_found" });
  });

  it("serves legacy completions", async () => {
    const completion = await client.completions.create({ model: "llama/demo-chat", prompt: "Once", max_tokens: 5 });
    expect(completion.choices[0]?.text.trim().split(/\s+/)).toHaveLength(5);
    expect(completion.choices[0]?.finish_reason).toBe("length");
  });

  it("maps refusals to OpenAI errors the SDK understands", async () => {
    const unknown = await client.chat.completions
      .create({ model: "llama/no-such-model", messages: [{ role: "user", content: "x" }] })
      .catch((error: unknown) => error);
    // Reads exactly like a model the caller may not use: no existence oracle.
    expect(unknown).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((unknown as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("model_not_allowed");

    const wrongKey = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: "mg_wrong", maxRetries: 0 });
    const unauthenticated = await wrongKey.models.list().catch((error: unknown) => error);
    expect(unauthenticated).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((unauthenticated as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("unauthenticated");
  });

  it("passes the runtime's own errors through with their status", async () => {
    const error = await client.chat.completions
      .create(
        { model: "llama/demo-chat", messages: [{ role: "user", content: "x" }] },
        { headers: { "x-fixture-status": "429" } },
      )
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
  });

  it("exposes Prometheus metrics for requests, latency, time to first byte and agents", async () => {
    await client.chat.completions.create({ model: "llama/demo-chat", messages: [{ role: "user", content: "m" }] });
    const metrics = await (await fetch(`${stack.gateway.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /modelgate_requests_total\{code="200",connection="llama",route="\/v1\/chat\/completions"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /modelgate_requests_total\{code="403",connection="",route="\/v1\/chat\/completions"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /modelgate_request_duration_seconds_count\{connection="llama",route="\/v1\/chat\/completions"\} [1-9]/,
    );
    expect(metrics).toMatch(/modelgate_time_to_first_byte_seconds_count\{connection="llama",[^}]*\} [1-9]/);
    expect(metrics).toContain('modelgate_agents_connected{connection="llama"} 1');
    expect(metrics).toContain('modelgate_requests_in_flight{connection="llama"} 0');
  });
});
