// Native pass-through under /c/{connection}/ with the official `ollama`
// client, and the gateway's refusals over raw HTTP, where no SDK smooths
// anything over.
import { request as httpRequest } from "node:http";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { Ollama } from "ollama";
import { inferences, type Stack, startStack } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;
let ollama: Ollama;

beforeAll(async () => {
  stack = await startStack({ maxBodyBytes: 64 * 1024 });
  runtime = await stack.addConnection("local", { protocol: "ollama", models: ["llama3.2"] });
  await stack.addAgent("local", runtime);
  await stack.addConnection("idle", { models: ["idle-model"] });
  ollama = new Ollama({
    host: `${stack.gateway.url}/c/local`,
    headers: { Authorization: `Bearer ${stack.apiKey}` },
  });
});

afterAll(async () => {
  await stack?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
type Json = any;

/** Raw HTTP, so paths reach the gateway exactly as written (fetch would normalise `..`). */
function raw(
  method: string,
  path: string,
  { headers = {}, body }: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<{ status: number; headers: Record<string, unknown>; text: string; json: () => Json }> {
  return new Promise((resolve, reject) => {
    const url = new URL(stack.gateway.url);
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const auth = () => ({ authorization: `Bearer ${stack.apiKey}` });

describe("native pass-through with the ollama client", () => {
  it("streams /api/chat as NDJSON, line by line", async () => {
    const stream = await ollama.chat({
      model: "llama3.2",
      messages: [{ role: "user", content: "hello" }],
      stream: true,
    });
    const parts: string[] = [];
    let done = false;
    for await (const part of stream) {
      parts.push(part.message.content);
      done = part.done;
    }
    expect(parts.length).toBeGreaterThan(5);
    expect(done).toBe(true);
    expect(inferences(runtime).at(-1)?.path).toBe("/api/chat");
  });

  it("answers /api/generate without streaming and lists /api/tags", async () => {
    const generated = await ollama.generate({ model: "llama3.2", prompt: "hi", stream: false });
    expect(generated.done).toBe(true);
    expect(generated.response?.length).toBeGreaterThan(0);
    const tags = await ollama.list();
    expect(tags.models.map((model) => model.name)).toContain("llama3.2:latest");
  });

  it("keeps the runtime's status and content type", async () => {
    const response = await raw("GET", "/c/local/api/version", { headers: auth() });
    expect(response.status).toBe(200);
    expect(response.headers["content-type"]).toMatch(/^application\/json/);
    expect(response.headers["x-modelgate-session"]).toBeDefined();
  });
});

describe("refusals", () => {
  it("401 without a key, with a malformed key and with an unknown key", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Basic abc" },
      { authorization: "Bearer mg_short" },
      {
        authorization: `Bearer mg_${"A".repeat(32)}`,
      },
    ];
    for (const headers of attempts) {
      const response = await raw("POST", "/v1/chat/completions", { headers, body: "{}" });
      expect(response.status).toBe(401);
      expect(response.json().error).toMatchObject({ code: "unauthenticated", type: "authentication_error" });
      expect(response.headers["x-modelgate-session"]).toBeDefined();
    }
  });

  it("400 for malformed JSON, a non-object body and a missing model", async () => {
    const headers = { ...auth(), "content-type": "application/json" };
    for (const body of ["{not json", "[1,2]", '{"messages":[]}']) {
      const response = await raw("POST", "/v1/chat/completions", { headers, body });
      expect(response.status).toBe(400);
      expect(response.json().error.code).toBe("invalid_request");
    }
  });

  it("405 for a wrong method on a known route", async () => {
    const response = await raw("POST", "/v1/models", { headers: auth(), body: "{}" });
    expect(response.status).toBe(405);
    expect(response.json().error.code).toBe("method_not_allowed");
  });

  it("forwards the caller's parameters exactly when it rewrites the model name", async () => {
    const body =
      '{"model":"local/llama3.2","seed":12345678901234567891,"temperature":1.0,"messages":[{"role":"user","content":"x"}]}';
    const response = await raw("POST", "/v1/chat/completions", {
      headers: { ...auth(), "content-type": "application/json" },
      body,
    });
    expect(response.status).toBe(200);
    expect(inferences(runtime).at(-1)?.body).toBe(body.replace('"local/llama3.2"', '"llama3.2"'));
  });

  it("403 model_not_allowed for a model nobody serves, as for one the caller may not use", async () => {
    const response = await raw("POST", "/v1/chat/completions", {
      headers: auth(),
      body: JSON.stringify({ model: "gpt-4", messages: [] }),
    });
    expect(response.status).toBe(403);
    expect(response.json().error).toMatchObject({ code: "model_not_allowed", param: "model" });
  });

  it("413 for a body over the limit, by declared length and by streamed size", async () => {
    const big = Buffer.alloc(65 * 1024, "a");
    const declared = await raw("POST", "/c/local/api/chat", { headers: auth(), body: big });
    expect(declared.status).toBe(413);
    // An Ollama path: Ollama's error shape.
    expect(declared.json()).toEqual({ error: "request body exceeds 65536 bytes", code: "payload_too_large" });
    // The unread upload is not drained: the connection closes.
    expect(declared.headers.connection).toBe("close");
    const chunked = await raw("POST", "/c/local/api/chat", {
      headers: { ...auth(), "transfer-encoding": "chunked" },
      body: big,
    });
    expect(chunked.status).toBe(413);
  });

  it("503 no_agent_available at once for a connection without agents", async () => {
    const started = performance.now();
    const response = await raw("POST", "/v1/chat/completions", {
      headers: auth(),
      body: JSON.stringify({ model: "idle/idle-model", messages: [] }),
    });
    expect(response.status).toBe(503);
    expect(response.json().error.code).toBe("no_agent_available");
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("refuses path tricks before anything reaches the runtime", async () => {
    const before = inferences(runtime).length;
    for (const path of [
      "/c/local/../admin",
      "/c/local/api/../../secret",
      "/c/local/%2e%2e/secret",
      "/c/local/api/%252e%252e/x",
      "/c/local/api%2fchat",
      "/c/local/api%5cchat",
      "/c/local//evil.example/x",
      "/c/local/api\\..\\x",
    ]) {
      const response = await raw("GET", path, { headers: auth() });
      expect({ path, status: response.status }).toEqual({ path, status: 400 });
    }
    // An absolute URL as the request target never selects another host.
    const absolute = await raw("GET", "http://169.254.169.254/latest/meta-data", { headers: auth() });
    expect(absolute.status).toBe(404);
    expect(inferences(runtime).length).toBe(before);
  });

  it("never forwards the caller's cookies or modelgate headers, and strips hop-by-hop headers", async () => {
    const response = await raw("GET", "/c/local/api/tags", {
      headers: {
        ...auth(),
        cookie: "sid=secret-cookie",
        "x-modelgate-session": "forged",
        connection: "keep-alive, x-hop",
        "x-hop": "1",
        "x-end-to-end": "kept",
      },
    });
    expect(response.status).toBe(200);
    const seen = inferences(runtime).at(-1);
    expect(seen?.headers.cookie).toBeUndefined();
    expect(seen?.headers["x-modelgate-session"]).toBeUndefined();
    expect(seen?.headers["x-hop"]).toBeUndefined();
    expect(seen?.headers["x-end-to-end"]).toBe("kept");
    expect(response.headers["x-modelgate-session"]).not.toBe("forged");
  });
});
