// Hostile callers through the real gateway on raw sockets: one caller must
// not be able to exhaust what every caller shares (audit places, memory,
// in-flight requests), and bad input gets a 4xx with a record, never a 5xx.
import { once } from "node:events";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import fc from "fast-check";
import OpenAI from "openai";
import { type Stack, startStack, waitFor } from "./stack.js";

const IN_FLIGHT_CAP = 16;
const IDLE_MS = 1_000;

let stack: Stack;
let steadyKey: string;
let zeroGrantKey: string;
let slowKey: string;
let listKey: string;

async function createKey(name: string, groups: string[]): Promise<string> {
  const created = await stack.admin("POST", "/api-keys", { name, groups });
  if (created.status !== 201) throw new Error(JSON.stringify(created.body));
  return created.body.key as string;
}

beforeAll(async () => {
  stack = await startStack({
    maxInFlightPerSubject: IN_FLIGHT_CAP,
    bodyIdleTimeoutMs: IDLE_MS,
    maxBodyBytes: 1024 * 1024,
  });
  const runtime = await stack.addConnection("llama");
  await stack.addAgent("llama", runtime);
  steadyKey = stack.apiKey;
  zeroGrantKey = await createKey("no-grants", ["nobody"]);
  slowKey = await createKey("slow-uploader", ["everyone"]);
  listKey = await createKey("lister", ["listers"]);
  const listing = await stack.admin("POST", "/policies", {
    name: "two-listings-a-minute",
    subjects: { groups: ["listers"] },
    resources: [{ connection: "llama" }],
    operations: ["models.list"],
    limits: { requestsPerMinute: 2 },
  });
  if (listing.status !== 201) throw new Error(JSON.stringify(listing.body));
  await waitFor(() => stack.gateway.store.policies.size === 2, { what: "the policies at the gateway" });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

const port = () => Number(new URL(stack.gateway.url).port);

/**
 * Opens a socket that announces a large JSON upload and sends only its
 * first bytes: a slow upload. Resolves with the socket and the status line
 * the gateway answered, if any, as it arrives.
 */
async function slowUpload(key: string): Promise<{ socket: Socket; status: Promise<string> }> {
  const socket = connect(port(), "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  let answer = "";
  const status = new Promise<string>((resolve) => {
    socket.on("data", (chunk) => {
      answer += String(chunk);
      if (answer.includes("\r\n")) resolve(answer.split("\r\n", 1)[0] ?? "");
    });
    socket.on("close", () => resolve(answer.split("\r\n", 1)[0] ?? ""));
  });
  socket.write(
    "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n" +
      `authorization: Bearer ${key}\r\ncontent-length: 1000000\r\n\r\n{"model":"llama/demo-chat","messages":[`,
  );
  return { socket, status };
}

describe("one caller cannot exhaust what callers share", () => {
  it("2,000 slow uploads from a key without grants are refused before their bodies; another key's traffic sees no 503", async () => {
    const client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: steadyKey, maxRetries: 0 });
    const steadyStatuses: number[] = [];
    let attacking = true;
    const steady = (async () => {
      while (attacking) {
        const answer = await client.chat.completions
          .create({ model: "llama/demo-chat", messages: [{ role: "user", content: "hello" }] })
          .withResponse()
          .then(
            ({ response }) => response.status,
            (error: { status?: number }) => error.status ?? 0,
          );
        steadyStatuses.push(answer);
      }
    })();

    const statuses: Promise<string>[] = [];
    const sockets: Socket[] = [];
    let maxReserved = 0;
    for (let batch = 0; batch < 20; batch++) {
      const opened = await Promise.all(Array.from({ length: 100 }, () => slowUpload(zeroGrantKey)));
      for (const { socket, status } of opened) {
        sockets.push(socket);
        statuses.push(status);
      }
      maxReserved = Math.max(maxReserved, stack.gateway.audit.status().reserved);
    }
    const answered = await Promise.all(statuses);
    attacking = false;
    await steady;
    for (const socket of sockets) socket.destroy();

    // Every slow upload was refused at once (403), not held until a timeout.
    expect(answered.filter((line) => line === "HTTP/1.1 403 Forbidden")).toHaveLength(2_000);
    // No audit place was held for them while their bodies were (not) arriving.
    expect(maxReserved).toBeLessThanOrEqual(1);
    expect(steadyStatuses.length).toBeGreaterThan(0);
    expect(steadyStatuses.filter((status) => status !== 200)).toEqual([]);
    await waitFor(() => stack.gateway.audit.status().buffered === 0, {
      what: "the refusals' records to be handed over",
    });
  }, 60_000);

  it("a key with grants gets its in-flight cap of slow uploads, then 429; the held ones end in 408; others are unaffected", async () => {
    const uploads = await Promise.all(Array.from({ length: IN_FLIGHT_CAP + 20 }, () => slowUpload(slowKey)));
    const statuses = await Promise.all(uploads.map(({ status }) => status));
    for (const { socket } of uploads) socket.destroy();
    expect(statuses.filter((line) => line.startsWith("HTTP/1.1 429"))).toHaveLength(20);
    expect(statuses.filter((line) => line.startsWith("HTTP/1.1 408"))).toHaveLength(IN_FLIGHT_CAP);

    // Places are given back: the same key is served again.
    const client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: slowKey, maxRetries: 0 });
    const answer = await client.chat.completions.create({
      model: "llama/demo-chat",
      messages: [{ role: "user", content: "hello again" }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();
  }, 30_000);

  it("refuses JSON nested deeper than the limit with 400 naming it, and records the refusal", async () => {
    const body = `{"model":"llama/demo-chat","messages":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    const answer = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${steadyKey}`, "content-type": "application/json" },
      body,
    });
    expect(answer.status).toBe(400);
    const error = (await answer.json()) as { error: { code: string; message: string } };
    expect(error.error.code).toBe("invalid_request");
    expect(error.error.message).toContain("64 levels");
    const sessionId = answer.headers.get("x-modelgate-session");
    await waitFor(async () => (await stack.admin("GET", `/sessions/${sessionId}`)).status === 200, {
      what: "the refusal's session",
    });
  });

  it("counts GET /v1/models against the caller's rate limit", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const answer = await fetch(`${stack.gateway.url}/v1/models`, { headers: { authorization: `Bearer ${listKey}` } });
      statuses.push(answer.status);
      if (answer.status === 429) {
        expect(answer.headers.get("retry-after")).toMatch(/^\d+$/);
        expect(((await answer.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
      } else {
        expect(((await answer.json()) as { data: { id: string }[] }).data.map(({ id }) => id)).toEqual([
          "llama/demo-chat",
          "llama/demo-embed",
        ]);
      }
    }
    expect(statuses).toEqual([200, 200, 429]);
  });
});

/** One request with a raw path, headers and body; resolves with status, session id and body. */
function rawRequest(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined) {
  return new Promise<{ status: number; session: string | undefined; body: string }>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: port(), method, path, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        text += chunk;
      });
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          session: res.headers["x-modelgate-session"] as string | undefined,
          body: text,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const PATHS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/models",
  "/c/llama/v1/chat/completions",
  "/c/llama/v1/models",
  "/c/llama/health",
  "/c/nope/v1/chat/completions",
];

/** Bodies from well-formed to hostile: random JSON, near-miss requests, deep nesting, bytes. */
const bodies = fc.oneof(
  fc.json().map((text) => Buffer.from(text)),
  fc
    .record({
      model: fc.oneof(fc.constant("llama/demo-chat"), fc.constant("demo-chat"), fc.string()),
      messages: fc.oneof(
        fc.array(fc.record({ role: fc.constantFrom("user", "system", "tool", "x"), content: fc.jsonValue() })),
        fc.jsonValue(),
      ),
      max_tokens: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(1e308)),
      stream: fc.oneof(fc.boolean(), fc.jsonValue()),
      temperature: fc.oneof(fc.double(), fc.string()),
    })
    .map((value) => Buffer.from(JSON.stringify(value))),
  fc
    .tuple(fc.integer({ min: 60, max: 200_000 }), fc.boolean())
    .map(([depth, closed]) =>
      Buffer.from(`{"model":"llama/demo-chat","messages":${"[".repeat(depth)}${closed ? "]".repeat(depth) : ""}}`),
    ),
  fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)),
  fc.constant(undefined),
);

const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,64}$/);

describe("fuzzing the gateway", () => {
  it("answers random and hostile requests without a 5xx of its own, stays up and records every answer", async () => {
    const sessions: string[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
        fc.oneof(
          fc.constantFrom(...PATHS),
          fc.tuple(fc.constantFrom(...PATHS), fc.webSegment()).map(([path, segment]) => `${path}/${segment}`),
          fc.webPath().map((path) => path || "/"),
        ),
        fc.oneof(fc.constant(`Bearer ${steadyKey}`), fc.constant(`Bearer ${zeroGrantKey}`), headerValue),
        fc.constantFrom("application/json", "text/plain", "application/x-ndjson", "multipart/form-data; boundary=x"),
        fc.dictionary(fc.stringMatching(/^x-[a-z0-9-]{1,16}$/), headerValue, { maxKeys: 4 }),
        bodies,
        async (method, path, authorization, contentType, extra, body) => {
          // Framed as every real client frames a body; an unframed one is
          // a second request to Node's parser, refused before the gateway.
          const framing: Record<string, string> = body === undefined ? {} : { "content-length": String(body.length) };
          const headers = { ...extra, ...framing, authorization, "content-type": contentType };
          const answer = await rawRequest(method, path, headers, body);
          // 502-504 come from the runtime side (its refusals, an agent that is
          // busy); a 500 would be the gateway's own failure.
          expect(answer.status).not.toBe(500);
          expect(answer.body).not.toContain('"code":"internal"');
          if (answer.session) sessions.push(answer.session);
        },
      ),
      { numRuns: 300 },
    );
    expect(stack.logs.gateway.filter((line) => line.includes("request failed unexpectedly"))).toEqual([]);
    // Still serving.
    const health = await fetch(`${stack.gateway.url}/healthz`);
    expect(health.status).toBe(200);
    // Every answered request (all went through the pipeline) has its session.
    expect(sessions.length).toBe(300);
    await waitFor(() => stack.gateway.audit.status().buffered === 0, { what: "the records to be handed over" });
    const missing: string[] = [];
    for (const session of sessions) {
      if ((await stack.admin("GET", `/sessions/${session}`)).status !== 200) missing.push(session);
    }
    expect(missing).toEqual([]);
  }, 120_000);
});
