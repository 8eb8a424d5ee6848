// Replaying audit sessions on real Postgres: sessions stored through the
// worker's store, replayed through the API as JSON, as Server-Sent Events and
// as the native stream, with their recorded timing.
import type { AuditRecord } from "@modelgate/audit";
import { uuidv7 } from "@modelgate/core";
import OpenAI from "openai";
import { activeReplayCount } from "../src/features/sessions/replay.js";
import { createSessionStore } from "../src/features/sessions/store.js";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const OPENAI_CHUNKS = [
  'data: {"choices":[{"delta":{"content":"The"}}]}\n\n',
  'data: {"choices":[{"delta":{"content":" answer"}}]}\n\n',
  'data: {"choices":[{"delta":{"content":" is 42."}}]}\n\n',
  "data: [DONE]\n\n",
];
const OLLAMA_CHUNKS = [
  '{"model":"llama3","message":{"role":"assistant","content":"Hel"},"done":false}\n',
  '{"model":"llama3","message":{"role":"assistant","content":"lo"},"done":false}\n',
  '{"model":"llama3","done":true,"eval_count":2}\n',
];

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt: "2026-03-01T12:00:00.000Z",
    firstByteAt: "2026-03-01T12:00:00.100Z",
    finishedAt: "2026-03-01T12:00:00.800Z",
    subject: { id: "alice", email: "alice@example.com", groups: ["data-science"], authMethod: "oidc" },
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "allowed",
    policyIds: [],
    capped: [],
    responseStatus: 200,
    latencyMs: 800,
    ttfbMs: 100,
    request: {
      text: '{"stream":true,"messages":[{"role":"user","content":"Question?"}]}',
      truncated: false,
      bytes: 66,
    },
    response: { text: "The answer is 42.", truncated: false, bytes: 17 },
    events: [],
    ...overrides,
  };
}

/** `chunks` at the given offsets (ms from the request). */
const timed = (chunks: string[], offsets: number[]) =>
  chunks.map((data, index) => ({ offsetMs: offsets[index] ?? 0, data }));

interface ReceivedEvent {
  /** performance.now() when the event was complete on the client. */
  at: number;
  event: string;
  id: string | undefined;
  data: string;
}

/** Reads a text/event-stream to its end, timestamping each event as it completes. */
async function readEventStream(response: Response): Promise<ReceivedEvent[]> {
  const events: ReceivedEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of response.body as ReadableStream<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = new Map<string, string>();
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        fields.set(line.slice(0, colon), line.slice(colon + 1).replace(/^ /, ""));
      }
      events.push({
        at: performance.now(),
        event: fields.get("event") ?? "message",
        id: fields.get("id"),
        data: fields.get("data") ?? "",
      });
      end = buffer.indexOf("\n\n");
    }
  }
  expect(buffer).toBe("");
  return events;
}

/** Reads a native replay, noting when each expected chunk had fully arrived. */
async function readNative(response: Response, expected: string[]): Promise<{ text: string; arrivals: number[] }> {
  const decoder = new TextDecoder();
  let text = "";
  const arrivals: number[] = [];
  const boundaries = expected.map((_, index) => expected.slice(0, index + 1).join("").length);
  for await (const bytes of response.body as ReadableStream<Uint8Array>) {
    text += decoder.decode(bytes, { stream: true });
    while (arrivals.length < boundaries.length && text.length >= (boundaries[arrivals.length] ?? 0)) {
      arrivals.push(performance.now());
    }
  }
  return { text, arrivals };
}

const gaps = (times: number[]) => times.slice(1).map((time, index) => time - (times[index] as number));

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("session replay", () => {
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  const open = (path: string, init: RequestInit = {}) =>
    fetch(`${cp.url}${path}`, { ...init, headers: { authorization: `Bearer ${cp.adminToken}` } });

  // OpenAI stream: chunks 300 ms apart after the first byte at 100 ms.
  const openai = record({ events: timed(OPENAI_CHUNKS, [100, 400, 700, 700]) });
  // Ollama NDJSON stream, recorded 3 s apart: played at speed 10 it takes 600 ms.
  const ollama = record({
    endpoint: "/api/chat",
    response: { text: "Hello", truncated: false, bytes: 5 },
    events: timed(OLLAMA_CHUNKS, [50, 3050, 6050]),
  });
  // Not streamed: the JSON answer is the one chunk.
  const plain = record({
    response: { text: '{"choices":[{"message":{"content":"ok"}}]}', truncated: true, bytes: 9_000_000 },
  });
  // Refused before the runtime: a prompt, no answer.
  const blocked = record({ decision: "blocked", reason: "prompt rule", responseStatus: 403, response: undefined });
  // A long pause in the middle: the auditor will leave during it.
  const slow = record({ events: timed(["data: first\n\n", "data: second\n\n"], [10, 60_000]) });

  beforeAll(async () => {
    cp = await startControlPlane();
    api = apiClient(cp);
    const store = createSessionStore({ db: cp.db });
    for (const item of [openai, ollama, plain, blocked, slow]) expect(await store.write(item)).toBe("stored");
  });
  afterAll(async () => {
    await cp.close();
  });

  it("answers the request, the response and the timed events as JSON by default", async () => {
    const answer = await api("GET", `/api/v1/sessions/${openai.sessionId}/replay`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({
      id: openai.sessionId,
      receivedAt: openai.receivedAt,
      decision: "allowed",
      request: {
        method: "POST",
        endpoint: "/v1/chat/completions",
        connection: "llama",
        model: "llama-3.1-8b-instruct",
        body: openai.request?.text,
        truncated: false,
        bytes: 66,
      },
      response: {
        status: 200,
        contentType: "text/event-stream; charset=utf-8",
        body: "The answer is 42.",
        truncated: false,
        bytes: 17,
        streamed: true,
      },
      ttfbMs: 100,
      latencyMs: 800,
      events: openai.events.map((event, seq) => ({ seq, ...event })),
    });

    const notStreamed = await api("GET", `/api/v1/sessions/${plain.sessionId}/replay?format=json`);
    expect(notStreamed.body.response).toEqual({
      status: 200,
      contentType: "application/json",
      body: plain.response?.text,
      truncated: true,
      bytes: 9_000_000,
      streamed: false,
    });
    expect(notStreamed.body.request.truncated).toBe(false);
    expect(notStreamed.body.events).toEqual([]);
  });

  it("re-streams as SSE, one replay envelope per chunk, in order and with the recorded gaps", async () => {
    const response = await open(`/api/v1/sessions/${openai.sessionId}/replay?format=sse`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(response.headers.get("x-modelgate-response-status")).toBe("200");
    const events = await readEventStream(response);

    const chunks = events.filter((event) => event.event === "message");
    expect(chunks.map((event) => JSON.parse(event.data))).toEqual(
      openai.events.map((event, seq) => ({ seq, offsetMs: event.offsetMs, data: event.data })),
    );
    expect(chunks.map((event) => event.id)).toEqual(["0", "1", "2", "3"]);
    expect(events.at(-1)).toMatchObject({ event: "end", data: JSON.stringify({ events: 4 }) });
    // Recorded gaps: 300, 300, 0 ms. Lower bounds only (a loaded machine is slower, never faster).
    const [first, second] = gaps(chunks.map((event) => event.at));
    expect(first).toBeGreaterThanOrEqual(250);
    expect(second).toBeGreaterThanOrEqual(250);
  });

  it("re-streams the native bytes exactly as delivered, with the inferred content type and timing", async () => {
    const response = await open(`/api/v1/sessions/${openai.sessionId}/replay?format=native`);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const { text, arrivals } = await readNative(response, OPENAI_CHUNKS);
    expect(text).toBe(OPENAI_CHUNKS.join(""));
    const [first, second] = gaps(arrivals);
    expect(first).toBeGreaterThanOrEqual(250);
    expect(second).toBeGreaterThanOrEqual(250);
  });

  it("speeds up: 3 s gaps at speed 10 arrive 300 ms apart, still in order", async () => {
    const started = performance.now();
    const response = await open(`/api/v1/sessions/${ollama.sessionId}/replay?format=native&speed=10`);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    expect(response.headers.get("x-modelgate-replay-speed")).toBe("10");
    const { text, arrivals } = await readNative(response, OLLAMA_CHUNKS);
    expect(text).toBe(OLLAMA_CHUNKS.join(""));
    for (const gap of gaps(arrivals)) expect(gap).toBeGreaterThanOrEqual(250);
    // The recording spans 6 s; at speed 1 this test would outlive its timeout.
    expect(performance.now() - started).toBeGreaterThanOrEqual(500);
  }, 20_000);

  it("sends everything at once with speed=0 or timing=none", async () => {
    for (const query of ["speed=0", "timing=none", "timing=none&speed=5"]) {
      const response = await open(`/api/v1/sessions/${slow.sessionId}/replay?format=sse&${query}`);
      expect(response.headers.get("x-modelgate-replay-speed")).toBe("0");
      const events = await readEventStream(response);
      expect(events.map((event) => event.event)).toEqual(["message", "message", "end"]);
      expect(JSON.parse(events[1]?.data ?? "{}")).toEqual({ seq: 1, offsetMs: 60_000, data: "data: second\n\n" });
    }
  });

  it("a native replay is what the openai SDK's stream reader reads, chunk by chunk", async () => {
    const completion = (content: string | null, finish: string | null) =>
      JSON.stringify({
        id: "chatcmpl-1",
        object: "chat.completion.chunk",
        created: 1772366400,
        model: "llama-3.1-8b-instruct",
        choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
      });
    const frames = [completion("Four", null), completion(" score", null), completion(null, "stop")];
    const streamed = record({
      events: timed([...frames.map((frame) => `data: ${frame}\n\n`), "data: [DONE]\n\n"], [80, 90, 95, 95]),
    });
    await createSessionStore({ db: cp.db }).write(streamed);
    // The SDK asks for a completion; its fetch is pointed at the replay, so what
    // it parses is the recorded stream, byte for byte as the client got it.
    const client = new OpenAI({
      apiKey: "replay",
      baseURL: `${cp.url}/unused`,
      maxRetries: 0,
      fetch: (_url, init) =>
        fetch(`${cp.url}/api/v1/sessions/${streamed.sessionId}/replay?format=native`, {
          headers: { authorization: `Bearer ${cp.adminToken}` },
          signal: init?.signal ?? null,
        }),
    });
    const stream = await client.chat.completions.create({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "How many is eighty?" }],
      stream: true,
    });
    const received: unknown[] = [];
    for await (const chunk of stream) received.push(chunk);
    expect(received).toEqual(frames.map((frame) => JSON.parse(frame)));
  });

  it("prefers the content type the gateway recorded over the inferred one", async () => {
    const recorded = record({ events: timed(['{"a":1}\n'], [5]) });
    await createSessionStore({ db: cp.db }).write(recorded);
    await cp.db
      .$executeRaw`UPDATE sessions SET details = details || '{"responseContentType":"application/json; charset=utf-8"}'::jsonb WHERE id = ${recorded.sessionId}`;
    const response = await open(`/api/v1/sessions/${recorded.sessionId}/replay?format=native`);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    expect(await response.text()).toBe('{"a":1}\n');
    const json = await api("GET", `/api/v1/sessions/${recorded.sessionId}/replay`);
    expect(json.body.response.contentType).toBe("application/json; charset=utf-8");

    // What no Content-Type header can carry is not taken: the type is inferred instead.
    const injected = JSON.stringify({ responseContentType: "text/plain\r\nx-injected: 1" });
    await cp.db
      .$executeRaw`UPDATE sessions SET details = details || ${injected}::jsonb WHERE id = ${recorded.sessionId}`;
    const unusable = await open(`/api/v1/sessions/${recorded.sessionId}/replay?format=native`);
    expect(unusable.headers.get("content-type")).toBe("application/x-ndjson");
    expect(unusable.headers.get("x-injected")).toBeNull();
    expect(await unusable.text()).toBe('{"a":1}\n');
  });

  it("replays a response that was not streamed as one chunk, and a refused request as no chunk", async () => {
    const sse = await readEventStream(await open(`/api/v1/sessions/${plain.sessionId}/replay?format=sse`));
    expect(sse.map((event) => event.event)).toEqual(["message", "end"]);
    expect(JSON.parse(sse[0]?.data ?? "{}")).toEqual({ seq: 0, offsetMs: 100, data: plain.response?.text });

    const native = await open(`/api/v1/sessions/${plain.sessionId}/replay?format=native`);
    expect(native.headers.get("content-type")).toBe("application/json");
    expect(await native.text()).toBe(plain.response?.text);

    const refused = await open(`/api/v1/sessions/${blocked.sessionId}/replay?format=sse`);
    expect(refused.headers.get("x-modelgate-response-status")).toBe("403");
    expect((await readEventStream(refused)).map((event) => event.event)).toEqual(["end"]);
    const refusedJson = await api("GET", `/api/v1/sessions/${blocked.sessionId}/replay`);
    expect(refusedJson.body).toMatchObject({
      decision: "blocked",
      request: { body: blocked.request?.text },
      response: { status: 403, body: null, contentType: null, streamed: false },
      events: [],
    });
    const refusedNative = await open(`/api/v1/sessions/${blocked.sessionId}/replay?format=native`);
    expect(refusedNative.status).toBe(200);
    expect(await refusedNative.text()).toBe("");
  });

  it("stops when the auditor disconnects: the pending wait is cancelled, nothing keeps running", async () => {
    expect(activeReplayCount()).toBe(0);
    const timersBefore = process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    const leaving = new AbortController();
    const response = await open(`/api/v1/sessions/${slow.sessionId}/replay?format=native`, {
      signal: leaving.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe("data: first\n\n");
    // The server now waits out the recorded 60 s gap.
    expect(activeReplayCount()).toBe(1);
    leaving.abort();
    await reader.cancel().catch(() => undefined);
    await until(() => activeReplayCount() === 0);
    await until(() => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length <= timersBefore);
  });

  it("answers 404 for an unknown session and 400 for a bad query, before streaming anything", async () => {
    for (const format of ["json", "sse", "native"]) {
      expectProblem(await api("GET", `/api/v1/sessions/${uuidv7()}/replay?format=${format}`), 404, "not_found");
    }
    const id = openai.sessionId;
    for (const query of [
      "format=xml",
      "speed=fast",
      "speed=1001",
      "speed=-1",
      "speed=",
      "speed=1e3",
      "timing=later",
      "rate=2",
    ]) {
      expectProblem(await api("GET", `/api/v1/sessions/${id}/replay?${query}`), 400, "invalid_request");
    }
    expectProblem(
      await api("GET", `/api/v1/sessions/${id}/replay?format=sse`, { token: null }),
      401,
      "unauthenticated",
    );
    expect((await api("GET", `/api/v1/sessions/${id}/replay?format=sse&speed=1000`)).status).toBe(200);
    expect((await api("GET", `/api/v1/sessions/${id}/replay?speed=2.5`)).status).toBe(200);
  });

  it("is in the API document with its stream content types", async () => {
    const document = await api("GET", "/api/v1/openapi.json");
    const operation = document.body.paths["/api/v1/sessions/{id}/replay"].get;
    expect(operation.operationId).toBe("replaySession");
    expect(Object.keys(operation.responses["200"].content)).toEqual(["application/json", "text/event-stream", "*/*"]);
    expect(operation.parameters.map((parameter: { name: string }) => parameter.name)).toEqual([
      "id",
      "format",
      "speed",
      "timing",
    ]);
  });
});
