import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { type RecordedRequest, type RuntimeFixture, startRuntimeFixture } from "../src/index.js";
import { jsonOf, readFrames, sseData } from "./responses.js";

const LABEL = "test runtime";
const CHUNKS = 10;
const INTERVAL_MS = 30;

let fixture: RuntimeFixture;

beforeAll(async () => {
  fixture = await startRuntimeFixture({ label: LABEL, streamChunks: CHUNKS, chunkIntervalMs: INTERVAL_MS });
});
afterAll(() => fixture.close());

function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(`${fixture.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal,
  });
}

function requestIdOf(response: Response): number {
  const id = Number(response.headers.get("x-fixture-request-id"));
  if (!Number.isInteger(id) || id < 1) throw new Error("response carries no x-fixture-request-id");
  return id;
}

/** A gauge or counter from /metrics. */
async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${fixture.url}/metrics`)).text();
  const value = new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1];
  if (value === undefined) throw new Error(`metric ${name} missing from:\n${text}`);
  return Number(value);
}

function recordOf(id: number): RecordedRequest {
  const record = fixture.requests.find((request) => request.id === id);
  if (record === undefined) throw new Error(`request ${id} was not recorded`);
  return record;
}

interface ChatChunk {
  object: string;
  id: string;
  model: string;
  choices: Array<{ delta: { content?: string } }>;
}

const words = (text: string) => text.split(/\s+/).filter(Boolean);
const chat = (extra: object = {}) => ({
  model: "demo-chat",
  messages: [{ role: "user", content: "say something nice" }],
  ...extra,
});

describe("model lists", () => {
  it("lists the models in the OpenAI shape", async () => {
    const response = await fetch(`${fixture.url}/v1/models`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    const body = await jsonOf(response);
    expect(body).toEqual({
      object: "list",
      data: ["demo-chat", "demo-embed"].map((id) => ({
        id,
        object: "model",
        created: expect.any(Number),
        owned_by: expect.any(String),
      })),
    });
  });

  it("lists the models, the version and the banner the Ollama way", async () => {
    const tags = await jsonOf(await fetch(`${fixture.url}/api/tags`));
    expect(tags.models.map((model: { name: string }) => model.name)).toEqual(["demo-chat:latest", "demo-embed:latest"]);
    expect(tags.models[0]).toEqual({
      name: "demo-chat:latest",
      model: "demo-chat:latest",
      modified_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      size: expect.any(Number),
      digest: expect.stringMatching(/^[0-9a-f]{64}$/),
      details: expect.objectContaining({ format: "gguf", family: expect.any(String) }),
    });
    expect(await jsonOf(await fetch(`${fixture.url}/api/version`))).toEqual({
      version: expect.stringMatching(/^0\.\d+\.\d+$/),
    });
    const banner = await fetch(`${fixture.url}/`);
    expect(banner.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await banner.text()).toBe("Ollama is running");
  });
});

describe("OpenAI chat completions", () => {
  it("answers with a complete chat.completion and counts usage", async () => {
    const response = await post("/v1/chat/completions", chat());
    expect(response.status).toBe(200);
    const body = await jsonOf(response);
    expect(body).toEqual({
      id: expect.stringMatching(/^chatcmpl-/),
      object: "chat.completion",
      created: expect.any(Number),
      model: "demo-chat",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: expect.any(String) },
          logprobs: null,
          finish_reason: "stop",
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: expect.any(Number), total_tokens: expect.any(Number) },
    });
    const content: string = body.choices[0].message.content;
    expect(content.startsWith(`[${LABEL}] This is the modelgate demo runtime — no model is running.`)).toBe(true);
    expect(Buffer.byteLength(content)).toBeGreaterThan(400);
    expect(body.usage.completion_tokens).toBe(words(content).length);
    expect(body.usage.total_tokens).toBe(3 + words(content).length);
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60);
  });

  it("cuts the answer to max_tokens or max_completion_tokens with finish_reason length", async () => {
    for (const limit of [{ max_tokens: 5 }, { max_completion_tokens: 5 }]) {
      const body = await jsonOf(await post("/v1/chat/completions", chat(limit)));
      expect(body.choices[0].finish_reason).toBe("length");
      expect(words(body.choices[0].message.content)).toEqual(["[test", "runtime]", "This", "is", "the"]);
      expect(body.usage.completion_tokens).toBe(5);
    }
    const roomy = await jsonOf(await post("/v1/chat/completions", chat({ max_tokens: 100_000 })));
    expect(roomy.choices[0].finish_reason).toBe("stop");
  });

  it("streams server-sent events in timed chunks that arrive as they are sent", async () => {
    const started = performance.now();
    const response = await post("/v1/chat/completions", chat({ stream: true }));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const frames = await readFrames(response, "\n\n");

    expect(frames.at(-1)?.text).toBe("data: [DONE]");
    for (const frame of frames) expect(frame.text.startsWith("data: ")).toBe(true);
    const chunks = sseData(frames) as ChatChunk[];
    expect(chunks).toHaveLength(1 + CHUNKS + 1);
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ object: "chat.completion.chunk", model: "demo-chat" });
      expect(chunk.id).toBe(chunks[0]?.id);
    }
    expect(chunks[0]?.choices).toEqual([
      { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
    ]);
    expect(chunks.at(-1)?.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    const content = chunks
      .slice(1, -1)
      .map((chunk) => chunk.choices[0]?.delta.content)
      .join("");
    const whole = await jsonOf(await post("/v1/chat/completions", chat()));
    expect(content).toBe(whole.choices[0].message.content);

    // 10 chunks 30 ms apart: the first event must arrive long before the
    // last, and the content chunks in separate reads, or they were buffered.
    const first = frames[0]?.receivedAt ?? Number.NaN;
    const last = frames.at(-1)?.receivedAt ?? Number.NaN;
    expect(first - started).toBeLessThan(last - started);
    expect(last - first).toBeGreaterThanOrEqual((CHUNKS - 3) * INTERVAL_MS);
    const arrivals = new Set(frames.slice(1, 1 + CHUNKS).map((frame) => frame.receivedAt));
    expect(arrivals.size).toBeGreaterThanOrEqual(CHUNKS / 2);
  });

  it("adds a usage chunk before [DONE] when stream_options.include_usage is set", async () => {
    const frames = await readFrames(
      await post("/v1/chat/completions", chat({ stream: true, stream_options: { include_usage: true } })),
      "\n\n",
    );
    const chunks = sseData(frames) as Array<{ choices: unknown[]; usage: unknown }>;
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: expect.any(Number), total_tokens: expect.any(Number) },
    });
    expect(frames.at(-1)?.text).toBe("data: [DONE]");
  });
});

describe("OpenAI legacy completions", () => {
  it("answers in the text_completion shape, streamed or not", async () => {
    const whole = await jsonOf(
      await post("/v1/completions", { model: "demo-chat", prompt: "Once upon", max_tokens: 4 }),
    );
    expect(whole).toMatchObject({
      object: "text_completion",
      model: "demo-chat",
      choices: [{ index: 0, text: "[test runtime] This is", logprobs: null, finish_reason: "length" }],
      usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 },
    });

    const frames = await readFrames(
      await post("/v1/completions", { model: "demo-chat", prompt: "x", stream: true }),
      "\n\n",
    );
    const chunks = sseData(frames) as Array<{
      object: string;
      choices: Array<{ text: string; finish_reason: unknown }>;
    }>;
    expect(chunks).toHaveLength(CHUNKS + 1);
    expect(chunks.every((chunk) => chunk.object === "text_completion")).toBe(true);
    expect(chunks.at(-1)?.choices[0]).toMatchObject({ text: "", finish_reason: "stop" });
    expect(chunks.map((chunk) => chunk.choices[0]?.text).join("")).toMatch(/^\[test runtime\] This is the modelgate/);
    expect(frames.at(-1)?.text).toBe("data: [DONE]");
  });
});

describe("embeddings", () => {
  it("returns deterministic 8-float vectors, or their float32 bytes in base64", async () => {
    const floats = await jsonOf(await post("/v1/embeddings", { model: "demo-embed", input: ["hello world", "bye"] }));
    expect(floats).toEqual({
      object: "list",
      data: [
        { object: "embedding", index: 0, embedding: expect.any(Array) },
        { object: "embedding", index: 1, embedding: expect.any(Array) },
      ],
      model: "demo-embed",
      usage: { prompt_tokens: 3, total_tokens: 3 },
    });
    const [hello, bye] = floats.data.map((item: { embedding: number[] }) => item.embedding);
    expect(hello).toHaveLength(8);
    expect(Math.hypot(...hello)).toBeCloseTo(1, 5);
    expect(hello).not.toEqual(bye);

    const again = await jsonOf(await post("/v1/embeddings", { model: "demo-embed", input: "hello world" }));
    expect(again.data[0].embedding).toEqual(hello);

    // The openai SDK asks for base64 by default and decodes little-endian float32.
    const encoded = await jsonOf(
      await post("/v1/embeddings", { model: "demo-embed", input: "hello world", encoding_format: "base64" }),
    );
    const bytes = Buffer.from(encoded.data[0].embedding, "base64");
    expect(bytes).toHaveLength(32);
    expect(Array.from({ length: 8 }, (_, index) => bytes.readFloatLE(index * 4))).toEqual(hello);

    const ollama = await jsonOf(await post("/api/embed", { model: "demo-embed", input: "hello world" }));
    expect(ollama).toMatchObject({ model: "demo-embed", embeddings: [hello], prompt_eval_count: 2 });
  });

  it("refuses an unknown encoding_format", async () => {
    const response = await post("/v1/embeddings", { model: "demo-embed", input: "x", encoding_format: "int8" });
    expect(response.status).toBe(400);
    expect((await jsonOf(response)).error.param).toBe("encoding_format");
  });
});

describe("Ollama chat and generate", () => {
  it("streams NDJSON by default and ends with a done line", async () => {
    const response = await post("/api/chat", { model: "demo-chat", messages: [{ role: "user", content: "hi there" }] });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await readFrames(response, "\n")).map((frame) => JSON.parse(frame.text));
    expect(lines).toHaveLength(CHUNKS + 1);
    for (const line of lines.slice(0, -1)) {
      expect(line).toEqual({
        model: "demo-chat",
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        message: { role: "assistant", content: expect.any(String) },
        done: false,
      });
    }
    const text = lines.map((line) => line.message.content).join("");
    expect(text.startsWith("[test runtime] This is the modelgate demo runtime")).toBe(true);
    expect(lines.at(-1)).toEqual({
      model: "demo-chat",
      created_at: expect.any(String),
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: "stop",
      total_duration: expect.any(Number),
      load_duration: expect.any(Number),
      prompt_eval_count: 2,
      prompt_eval_duration: expect.any(Number),
      eval_count: words(text).length,
      eval_duration: expect.any(Number),
    });
    expect(Number.isInteger(lines.at(-1).total_duration)).toBe(true);
    // Ten chunks 30 ms apart took at least ~270 ms, reported in nanoseconds.
    expect(lines.at(-1).total_duration).toBeGreaterThan(200e6);
  });

  it("answers one object with stream false and honours num_predict", async () => {
    const response = await post("/api/chat", {
      model: "demo-chat:latest",
      messages: [{ role: "user", content: "hi" }],
      stream: false,
      options: { num_predict: 4 },
    });
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(await jsonOf(response)).toMatchObject({
      model: "demo-chat:latest",
      message: { role: "assistant", content: "[test runtime] This is" },
      done: true,
      done_reason: "length",
      eval_count: 4,
    });
  });

  it("streams generate responses in the response field", async () => {
    const lines = (await readFrames(await post("/api/generate", { model: "demo-chat", prompt: "why" }), "\n")).map(
      (frame) => JSON.parse(frame.text),
    );
    expect(lines).toHaveLength(CHUNKS + 1);
    expect(lines[0]).toEqual({
      model: "demo-chat",
      created_at: expect.any(String),
      response: expect.any(String),
      done: false,
    });
    expect(lines.at(-1)).toMatchObject({ response: "", done: true, done_reason: "stop", prompt_eval_count: 1 });

    const loaded = await jsonOf(await post("/api/generate", { model: "demo-chat" }));
    expect(loaded).toMatchObject({ response: "", done: true, done_reason: "load" });
  });
});

describe("TGI generate", () => {
  it("answers /generate and streams /generate_stream token events", async () => {
    const whole = await jsonOf(
      await post("/generate", { inputs: "Hi", parameters: { max_new_tokens: 3, details: true } }),
    );
    expect(whole).toMatchObject({
      generated_text: "[test runtime] This",
      details: { finish_reason: "length", generated_tokens: 3 },
    });

    const response = await post("/generate_stream", { inputs: "Hi" });
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const frames = await readFrames(response, "\n\n");
    expect(frames.every((frame) => frame.text.startsWith('data:{"'))).toBe(true);
    const events = sseData(frames) as Array<{ token: { text: string; special: boolean }; generated_text: unknown }>;
    expect(events).toHaveLength(CHUNKS);
    expect(events.slice(0, -1).every((event) => event.generated_text === null)).toBe(true);
    expect(events.at(-1)?.generated_text).toBe(events.map((event) => event.token.text).join(""));
    expect(events[0]?.token).toEqual({ id: 1, text: expect.any(String), logprob: expect.any(Number), special: false });

    const info = await jsonOf(await fetch(`${fixture.url}/info`));
    expect(info).toMatchObject({ model_id: "demo-chat", version: expect.any(String) });
  });

  it("reports invalid input as a 422 validation error", async () => {
    const response = await post("/generate", { inputs: "" });
    expect(response.status).toBe(422);
    expect(await jsonOf(response)).toEqual({ error: expect.any(String), error_type: "validation" });
  });
});

describe("Anthropic messages", () => {
  const message = (extra: object = {}) => ({
    model: "demo-chat",
    max_tokens: 3,
    system: "be nice",
    messages: [{ role: "user", content: [{ type: "text", text: "say something" }] }],
    ...extra,
  });

  it("answers a whole message with its stop reason and usage", async () => {
    const response = await post("/v1/messages", message());
    expect(response.status).toBe(200);
    const body = await jsonOf(response);
    expect(body).toMatchObject({ type: "message", role: "assistant", model: "demo-chat", stop_reason: "max_tokens" });
    expect(words(body.content[0].text)).toHaveLength(3);
    expect(body.usage).toEqual({ input_tokens: 4, output_tokens: 3 });
  });

  it("streams Anthropic's named events in Anthropic's order", async () => {
    const response = await post("/v1/messages", message({ stream: true }), { "x-fixture-interval-ms": "0" });
    const frames = await readFrames(response, "\n\n");
    const events = frames.map((frame) => {
      const [name, data] = frame.text.split("\n");
      return { name: name?.slice("event: ".length), data: JSON.parse(data?.slice("data: ".length) ?? "") };
    });
    for (const { name, data } of events) expect(data.type).toBe(name);
    const names = events.map((event) => event.name);
    expect(names.slice(0, 3)).toEqual(["message_start", "content_block_start", "ping"]);
    expect(names.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
    expect(names.filter((name) => name === "content_block_delta")).toHaveLength(CHUNKS);
    const text = events.map((event) => event.data.delta?.text ?? "").join("");
    expect(words(text)).toHaveLength(3);
    expect(events.at(-2)?.data.usage).toEqual({ output_tokens: 3 });
    expect(events[0]?.data.message.usage.input_tokens).toBe(4);
  });

  it("refuses a message without max_tokens in Anthropic's error shape", async () => {
    const response = await post("/v1/messages", { model: "demo-chat", messages: [{ role: "user", content: "x" }] });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      type: "error",
      error: { type: "invalid_request_error", message: "max_tokens: Field required" },
    });
  });
});

describe("errors in each protocol's shape", () => {
  it("answers an unknown model with 404", async () => {
    for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]) {
      const response = await post(path, {
        model: "nope",
        messages: [{ role: "user", content: "x" }],
        prompt: "x",
        input: "x",
      });
      expect(response.status).toBe(404);
      expect(await jsonOf(response)).toEqual({
        error: {
          message: "The model `nope` does not exist or you do not have access to it.",
          type: "invalid_request_error",
          param: "model",
          code: "model_not_found",
        },
      });
    }
    for (const path of ["/api/chat", "/api/generate", "/api/embed"]) {
      const response = await post(path, { model: "nope", messages: [], prompt: "x" });
      expect(response.status).toBe(404);
      expect(await jsonOf(response)).toEqual({ error: 'model "nope" not found, try pulling it first' });
    }
  });

  it("answers malformed JSON with 400", async () => {
    const openai = await post("/v1/chat/completions", '{"model": "demo-chat",');
    expect(openai.status).toBe(400);
    expect(await jsonOf(openai)).toEqual({
      error: { message: expect.any(String), type: "invalid_request_error", param: null, code: null },
    });
    const ollama = await post("/api/chat", "not json");
    expect(ollama.status).toBe(400);
    expect(await jsonOf(ollama)).toEqual({ error: expect.any(String) });
  });

  it("answers unknown paths with 404 and wrong methods with 405", async () => {
    const unknownV1 = await fetch(`${fixture.url}/v1/nothing`);
    expect(unknownV1.status).toBe(404);
    expect((await jsonOf(unknownV1)).error.message).toBe("Invalid URL (GET /v1/nothing)");
    const unknown = await fetch(`${fixture.url}/nothing?x=1`);
    expect(unknown.status).toBe(404);
    expect(await jsonOf(unknown)).toEqual({ error: "Invalid URL (GET /nothing)" });

    const getChat = await fetch(`${fixture.url}/v1/chat/completions`);
    expect(getChat.status).toBe(405);
    expect(getChat.headers.get("allow")).toBe("POST");
    expect((await jsonOf(getChat)).error.type).toBe("invalid_request_error");
    const postModels = await post("/v1/models", {});
    expect(postModels.status).toBe(405);
    expect(postModels.headers.get("allow")).toBe("GET, HEAD");
  });

  it("refuses a body over 10 MiB with 413", async () => {
    const response = await post("/v1/chat/completions", "x".repeat(10 * 1024 * 1024 + 1));
    expect(response.status).toBe(413);
    expect((await jsonOf(response)).error.message).toMatch(/exceeds/);
  });
});

describe("recording", () => {
  it("records method, raw path, headers, body and times of every request", async () => {
    const before = performance.now();
    const body = JSON.stringify(chat());
    const response = await post("/v1/chat/completions?trace=on", body, { "x-test": "recorded" });
    await response.arrayBuffer();
    const record = recordOf(requestIdOf(response));
    expect(record).toMatchObject({
      method: "POST",
      path: "/v1/chat/completions?trace=on",
      body,
      aborted: false,
      chunksWritten: 0,
    });
    expect(record.headers["x-test"]).toBe("recorded");
    expect(record.headers["content-type"]).toBe("application/json");
    expect(record.receivedAt).toBeGreaterThanOrEqual(before);
    // The body is fully received before the client sees the end of it.
    expect(record.finishedAt).toBeGreaterThanOrEqual(record.receivedAt);
    expect(record.finishedAt).toBeLessThanOrEqual(performance.now());
    expect(fixture.inFlight()).toBe(0);
  });

  it("records a client abort mid-stream and stops writing at once", async () => {
    const client = new AbortController();
    const response = await post(
      "/v1/chat/completions",
      chat({ stream: true }),
      { "x-fixture-chunks": "500", "x-fixture-interval-ms": "10" },
      client.signal,
    );
    const id = requestIdOf(response);
    let contentChunks = 0;
    await expect(
      readFrames(response, "\n\n", (frame) => {
        if (frame.text.includes('"delta":{"content"')) contentChunks += 1;
        if (contentChunks === 3) client.abort();
        return undefined;
      }),
    ).rejects.toThrow(/abort/i);

    const abortedAt = await fixture.waitForAbort(id, 5_000);
    const record = recordOf(id);
    expect(record.aborted).toBe(true);
    expect(record.abortedAt).toBe(abortedAt);
    expect(record.finishedAt).toBeUndefined();
    expect(fixture.inFlight()).toBe(0);
    const written = record.chunksWritten;
    expect(written).toBeGreaterThanOrEqual(3);
    expect(written).toBeLessThan(500);
    // That nothing more is written can only be seen by letting time pass:
    // ten chunk intervals.
    await sleep(100);
    expect(record.chunksWritten).toBe(written);

    expect(await metric("fixture_requests_aborted_total")).toBeGreaterThanOrEqual(1);
    // The fixture's own work on the request ended too (only /metrics is left).
    expect(await metric("fixture_requests_processing")).toBe(1);
  });

  it("records a client that gives up while the response head is delayed", async () => {
    const id = (fixture.requests.at(-1)?.id ?? 0) + 1;
    const waiting = fixture.waitForAbort(id, 5_000);
    // A gateway's upstream timeout: the client gives up after 200 ms.
    await expect(
      post("/v1/chat/completions", chat(), { "x-fixture-delay-ms": "10000" }, AbortSignal.timeout(200)),
    ).rejects.toThrow();
    const abortedAt = await waiting;
    expect(abortedAt - recordOf(id).receivedAt).toBeGreaterThanOrEqual(150);
    expect(recordOf(id).finishedAt).toBeUndefined();
    expect(fixture.inFlight()).toBe(0);
    // The delay timer was cancelled rather than left to run out.
    expect(await metric("fixture_requests_processing")).toBe(1);
  });

  it("rejects waitForAbort for a request that finished, or on timeout", async () => {
    const response = await fetch(`${fixture.url}/v1/models`);
    await response.arrayBuffer();
    await expect(fixture.waitForAbort(requestIdOf(response), 1_000)).rejects.toThrow(/finished without being aborted/);
    const future = (fixture.requests.at(-1)?.id ?? 0) + 1_000;
    await expect(fixture.waitForAbort(future, 20)).rejects.toThrow(/not aborted within 20 ms/);
  });
});

describe("per-request overrides", () => {
  it("shapes the chunk count and spacing of a stream", async () => {
    const started = performance.now();
    const frames = await readFrames(
      await post("/v1/chat/completions", chat({ stream: true }), {
        "x-fixture-chunks": "3",
        "x-fixture-interval-ms": "0",
      }),
      "\n\n",
    );
    expect(sseData(frames)).toHaveLength(1 + 3 + 1);
    // Without the override this would take 10 × 30 ms.
    expect(performance.now() - started).toBeLessThan(CHUNKS * INTERVAL_MS);

    const lines = await readFrames(await post("/api/chat", chat(), { "x-fixture-chunks": "2" }), "\n");
    expect(lines).toHaveLength(2 + 1);
  });

  it("delays the response head", async () => {
    const started = performance.now();
    const response = await fetch(`${fixture.url}/v1/models`, { headers: { "x-fixture-delay-ms": "150" } });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(200);
    expect(elapsed).toBeGreaterThanOrEqual(145);
  });

  it("forces an error status with the protocol's error body", async () => {
    const openai = await post("/v1/chat/completions", chat(), { "x-fixture-status": "503" });
    expect(openai.status).toBe(503);
    expect(await jsonOf(openai)).toEqual({
      error: { message: expect.stringContaining("503"), type: "server_error", param: null, code: null },
    });
    const ollama = await post("/api/chat", chat(), { "x-fixture-status": "429" });
    expect(ollama.status).toBe(429);
    expect(await jsonOf(ollama)).toEqual({ error: expect.stringContaining("429") });
    const tgi = await post("/generate", { inputs: "x" }, { "x-fixture-status": "429" });
    expect(await jsonOf(tgi)).toEqual({ error: expect.any(String), error_type: "overloaded" });
  });

  it.each([
    ["x-fixture-chunks", "0"],
    ["x-fixture-chunks", "10001"],
    ["x-fixture-chunks", "many"],
    ["x-fixture-chunks", "1.5"],
    ["x-fixture-interval-ms", "-1"],
    ["x-fixture-interval-ms", "60001"],
    ["x-fixture-delay-ms", "1e3"],
    ["x-fixture-delay-ms", "0x10"],
    ["x-fixture-status", "200"],
    ["x-fixture-status", "600"],
  ])("refuses %s: %s with 400", async (header, value) => {
    const response = await post("/v1/chat/completions", chat(), { [header]: value });
    expect(response.status).toBe(400);
    expect(await jsonOf(response)).toEqual({
      error: {
        message: expect.stringContaining(header),
        type: "invalid_request_error",
        param: header,
        code: "invalid_fixture_override",
      },
    });
  });
});

describe("health and metrics", () => {
  it("answers health probes until set unhealthy", async () => {
    const healthy = await fetch(`${fixture.url}/health`);
    expect(healthy.status).toBe(200);
    expect(await healthy.text()).toBe("");

    fixture.setHealthy(false);
    try {
      expect((await fetch(`${fixture.url}/health`)).status).toBe(503);
      expect((await fetch(`${fixture.url}/`)).status).toBe(503);
      expect((await fetch(`${fixture.url}/api/version`)).status).toBe(503);
      // Only the health endpoints change; the APIs keep answering.
      expect((await fetch(`${fixture.url}/v1/models`)).status).toBe(200);
    } finally {
      fixture.setHealthy(true);
    }
    expect((await fetch(`${fixture.url}/health`)).status).toBe(200);
  });

  it("exposes Prometheus counters", async () => {
    const response = await fetch(`${fixture.url}/metrics`);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toMatch(/^# TYPE fixture_requests_total counter$/m);
    const total = Number(/^fixture_requests_total (\d+)$/m.exec(text)?.[1]);
    expect(total).toBeGreaterThan(10);
    expect(text).toMatch(/^fixture_stream_chunks_total [1-9]\d*$/m);
    expect(text).toMatch(/^fixture_requests_in_flight 1$/m);
    expect(text).toMatch(/^fixture_requests_processing 1$/m);
  });
});

describe("a fixture that requires a bearer token", () => {
  let guarded: RuntimeFixture;
  beforeAll(async () => {
    guarded = await startRuntimeFixture({ requiredBearer: "s3cret-token" });
  });
  afterAll(() => guarded.close());

  it("answers 401 in each protocol's shape without the right token", async () => {
    const missing = await fetch(`${guarded.url}/v1/models`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe("Bearer");
    expect(await jsonOf(missing)).toEqual({
      error: { message: expect.any(String), type: "authentication_error", param: null, code: "invalid_api_key" },
    });

    const wrong = await fetch(`${guarded.url}/api/tags`, { headers: { authorization: "Bearer s3cret-tokeN" } });
    expect(wrong.status).toBe(401);
    expect(await jsonOf(wrong)).toEqual({ error: expect.any(String) });

    expect((await fetch(`${guarded.url}/health`, { headers: { authorization: "s3cret-token" } })).status).toBe(401);
  });

  it("serves requests that carry it, and records the header", async () => {
    const response = await fetch(`${guarded.url}/v1/models`, { headers: { authorization: "Bearer s3cret-token" } });
    expect(response.status).toBe(200);
    const id = requestIdOf(response);
    expect(guarded.requests.find((request) => request.id === id)?.headers.authorization).toBe("Bearer s3cret-token");
  });
});

describe("lifecycle", () => {
  it("refuses options out of bounds", async () => {
    await expect(startRuntimeFixture({ streamChunks: 0 })).rejects.toThrow(RangeError);
    await expect(startRuntimeFixture({ chunkIntervalMs: 60_001 })).rejects.toThrow(RangeError);
    await expect(startRuntimeFixture({ models: [] })).rejects.toThrow(RangeError);
    await expect(startRuntimeFixture({ requiredBearer: "" })).rejects.toThrow(RangeError);
  });

  it("close ends open streams and records them as aborted", async () => {
    const own = await startRuntimeFixture({ streamChunks: 1_000, chunkIntervalMs: 20, models: ["only"] });
    const response = await fetch(`${own.url}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: "only", prompt: "go" }),
    });
    const id = requestIdOf(response);
    const reading = readFrames(response, "\n");
    await own.close();
    await expect(reading).rejects.toThrow();
    expect(own.requests.find((request) => request.id === id)?.aborted).toBe(true);
    expect(own.inFlight()).toBe(0);
    await expect(fetch(`${own.url}/health`)).rejects.toThrow();
  });
});

describe("OpenAI responses", () => {
  it("answers a whole response with the text in an output message, and usage", async () => {
    const response = await post("/v1/responses", {
      model: "demo-chat",
      instructions: "be nice",
      input: "say it",
      max_output_tokens: 2,
    });
    expect(response.status).toBe(200);
    const body = await jsonOf(response);
    expect(body).toMatchObject({
      object: "response",
      status: "incomplete",
      incomplete_details: { reason: "max_output_tokens" },
    });
    expect(words(body.output[0].content[0].text)).toHaveLength(2);
    expect(body.usage).toEqual({ input_tokens: 4, output_tokens: 2, total_tokens: 6 });
  });

  it("streams named events in OpenAI's order, numbered, the whole text repeated as each part ends", async () => {
    const response = await post(
      "/v1/responses",
      { model: "demo-chat", input: "say it", stream: true },
      { "x-fixture-interval-ms": "0" },
    );
    const events = (await readFrames(response, "\n\n")).map((frame) => {
      const [name, data] = frame.text.split("\n");
      return { name: name?.slice("event: ".length), data: JSON.parse(data?.slice("data: ".length) ?? "") };
    });
    for (const [index, { name, data }] of events.entries()) {
      expect(data.type).toBe(name);
      expect(data.sequence_number).toBe(index);
    }
    const deltas = events.filter((event) => event.name === "response.output_text.delta");
    expect(deltas).toHaveLength(CHUNKS);
    const text = deltas.map((event) => event.data.delta).join("");
    expect(events.find((event) => event.name === "response.output_text.done")?.data.text).toBe(text);
    expect(events.at(-1)?.name).toBe("response.completed");
    expect(events.at(-1)?.data.response.output[0].content[0].text).toBe(text);
  });
});
