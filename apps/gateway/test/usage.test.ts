// Usage accounting end to end: the official `openai` and `ollama` clients
// through the gateway, an agent and the runtime fixture, the sessions stored
// by the control plane, and the gateway's Prometheus counters. A stream the
// caller did not ask usage for is asked for it anyway, and the extra chunk
// never reaches the caller.

import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;
let client: OpenAI;
let ollama: Ollama;

// biome-ignore lint/suspicious/noExplicitAny: sessions are parsed JSON, asserted field by field
type Session = any;

beforeAll(async () => {
  stack = await startStack();
  runtime = await stack.addConnection("llama", { fixture: { chunkIntervalMs: 2 } });
  await stack.addAgent("llama", runtime);
  const local = await stack.addConnection("local", { protocol: "ollama", models: ["llama3.2"] });
  await stack.addAgent("local", local);
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
  ollama = new Ollama({ host: `${stack.gateway.url}/c/local`, headers: { Authorization: `Bearer ${stack.apiKey}` } });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

/** The body the runtime received for the request the gateway forwarded last. */
function lastRuntimeBody(): Record<string, unknown> {
  // Health probes come in between.
  return JSON.parse(runtime.requests.findLast((request) => request.method === "POST")?.body ?? "{}");
}

const messages = [{ role: "user" as const, content: "count my tokens" }];

describe("usage accounting", () => {
  let asked: { prompt_tokens: number; completion_tokens: number; total_tokens: number };

  it("gives a stream the caller asked usage for its usage chunk, and stores the counts", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual({
      prompt_tokens: expect.any(Number),
      completion_tokens: expect.any(Number),
      total_tokens: expect.any(Number),
    });
    asked = last?.usage as typeof asked;
    expect(lastRuntimeBody().stream_options).toEqual({ include_usage: true });

    const session = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(session.usage).toEqual({
      promptTokens: asked.prompt_tokens,
      completionTokens: asked.completion_tokens,
      totalTokens: asked.total_tokens,
    });
    // What the caller received is what the audit holds: the usage chunk included.
    expect(session.content.responseBody).toContain('"choices":[]');
  });

  it("asks the runtime for usage when the caller did not, and keeps the extra chunk from the caller", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages, stream: true }, { headers: { "x-fixture-chunks": "5" } })
      .withResponse();
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    // The runtime was asked for usage...
    expect(lastRuntimeBody().stream_options).toEqual({ include_usage: true });
    // ...and the caller got no chunk without choices, and no counts.
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      expect(chunk.choices.length).toBeGreaterThan(0);
      expect(chunk.usage ?? null).toBeNull();
    }

    const session = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(session.usage).toEqual({
      promptTokens: asked.prompt_tokens,
      completionTokens: expect.any(Number),
      totalTokens: expect.any(Number),
    });
    expect(session.usage.totalTokens).toBe(session.usage.promptTokens + session.usage.completionTokens);
    expect(session.details.usage).toEqual({
      prompt_tokens: session.usage.promptTokens,
      completion_tokens: session.usage.completionTokens,
      total_tokens: session.usage.totalTokens,
    });
    // The audit holds what the caller received: no usage chunk, and it still ends with [DONE].
    expect(session.content.responseBody).not.toContain('"choices":[]');
    expect(session.content.responseBody.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(session.events.map((event: { data: string }) => event.data).join("")).toBe(session.content.responseBody);
    // Time to first token is the first chunk's, not the head's.
    expect(session.ttftMs).toBe(session.events[0].offsetMs);
    expect(session.ttftMs).toBeGreaterThanOrEqual(session.ttfbMs);
    expect(session.latencyMs).toBeGreaterThanOrEqual(session.ttftMs);
    expect(session.subject.name).toBe("e2e");
  });

  it("passes an explicit include_usage: false through as a caller that did not ask", async () => {
    const response = await fetch(`${stack.gateway.url}/v1/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "llama/demo-chat",
        prompt: "hello",
        stream: true,
        stream_options: { include_usage: false },
      }),
    });
    const text = await response.text();
    expect(lastRuntimeBody().stream_options).toEqual({ include_usage: true });
    expect(text).not.toContain('"choices":[]');
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    const session = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(session.usage.totalTokens).toBeGreaterThan(0);
  });

  it("stores the usage of a whole answer", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages })
      .withResponse();
    expect(lastRuntimeBody().stream_options).toBeUndefined();
    const session = await stack.storedSession(response.headers.get("x-modelgate-session"));
    expect(session.usage).toEqual({
      promptTokens: data.usage?.prompt_tokens,
      completionTokens: data.usage?.completion_tokens,
      totalTokens: data.usage?.total_tokens,
    });
    expect(session.ttftMs).toBe(session.ttfbMs);
  });

  it("stores Ollama's prompt_eval_count and eval_count, whole and streamed", async () => {
    const whole = await ollama.chat({ model: "llama3.2", messages });
    const streamed = await ollama.chat({ model: "llama3.2", messages, stream: true });
    let last: { prompt_eval_count?: number; eval_count?: number } | undefined;
    for await (const part of streamed) last = part;
    await waitFor(async () => (await stack.admin("GET", "/sessions?connection=local")).body.items.length === 2, {
      what: "both ollama sessions",
    });
    const listed = (await stack.admin("GET", "/sessions?connection=local")).body.items;
    const usages = listed.map((session: Session) => session.usage);
    for (const reported of [whole, last]) {
      expect(usages).toContainEqual({
        promptTokens: reported?.prompt_eval_count,
        completionTokens: reported?.eval_count,
        totalTokens: (reported?.prompt_eval_count ?? 0) + (reported?.eval_count ?? 0),
      });
    }
  });

  it("counts requests and tokens in Prometheus by connection, model and decision, never by subject", async () => {
    const refused = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/not-a-model", messages }),
    });
    expect(refused.status).toBe(403);
    await refused.text();
    const metrics = await (await fetch(`${stack.gateway.opsUrl}/metrics`)).text();
    const value = (series: string) =>
      Number(metrics.match(new RegExp(`^${escapeRegExp(series)} (\\d+)$`, "m"))?.[1] ?? NaN);

    const listed = (await stack.admin("GET", "/sessions?connection=llama&decision=allowed")).body.items as Session[];
    const sum = (pick: (session: Session) => number | null) =>
      listed.reduce((total, session) => total + (pick(session) ?? 0), 0);
    const labels = 'connection="llama",model="demo-chat",decision="allowed"';
    expect(value(`modelgate_gateway_model_requests_total{${labels}}`)).toBe(listed.length);
    expect(value(`modelgate_gateway_tokens_total{${labels},kind="prompt"}`)).toBe(sum((s) => s.usage.promptTokens));
    expect(value(`modelgate_gateway_tokens_total{${labels},kind="completion"}`)).toBe(
      sum((s) => s.usage.completionTokens),
    );
    expect(
      value('modelgate_gateway_tokens_total{connection="local",model="llama3.2",decision="allowed",kind="completion"}'),
    ).toBeGreaterThan(0);
    // A model the connection does not list never becomes a label of its own.
    expect(metrics).not.toContain("not-a-model");
    expect(value('modelgate_gateway_model_requests_total{connection="none",model="none",decision="denied"}')).toBe(1);
    // No subject, key id or name among the labels.
    const keys = (await stack.admin("GET", "/api-keys")).body.items as { id: string }[];
    for (const key of keys) expect(metrics).not.toContain(key.id);
    expect(metrics).not.toMatch(/subject=|e2e/);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
