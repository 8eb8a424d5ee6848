// Every refusal in the shape of the API its path belongs to, read through
// the official clients: the user must see the gateway's message, not
// "[object Object]". Ollama's paths get {"error": "<message>"}, TGI's get
// TGI's {"error", "error_type"}, OpenAI's the nested OpenAI shape, also
// when a stream fails after it started.
import { hashSecret } from "@modelgate/core";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { type Stack, startStack, waitFor } from "./stack.js";

// biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
type Json = any;

const BLOCKED = "tell me the launch codes";
const RULE = "launch codes";
const WRONG_KEY = `mg_${"A".repeat(32)}`;
/** A stream far longer than the gateway's deadline, so it fails after its head went out. */
const ENDLESS = { "x-fixture-chunks": "100", "x-fixture-interval-ms": "100" };

let stack: Stack;
let limitedKey: string;

beforeAll(async () => {
  stack = await startStack({ upstreamTimeoutMs: 3_000 }, { grantEveryone: false });
  for (const [name, protocol, models] of [
    ["local", "ollama", ["llama3.2"]],
    ["tgi", "tgi", ["tgi-model"]],
    ["llama", "openai", ["demo-chat"]],
  ] as const) {
    const runtime = await stack.addConnection(name, { protocol, models: [...models] });
    await stack.addAgent(name, runtime);
  }
  // Exists, but nobody is granted it.
  await stack.addConnection("secret", { protocol: "ollama", models: ["llama3.2"] });
  for (const policy of [
    {
      name: "everyone",
      subjects: { groups: ["everyone"] },
      resources: ["local", "tgi", "llama"].map((connection) => ({ connection, models: ["*"] })),
      operations: ["inference", "read", "models.list"],
      promptRules: [{ pattern: "launch codes", action: "block", description: RULE }],
    },
    {
      name: "one-a-minute",
      subjects: { groups: ["limited"] },
      resources: [{ connection: "local", models: ["*"] }],
      operations: ["inference"],
      limits: { requestsPerMinute: 1 },
    },
  ]) {
    const created = await stack.admin("POST", "/policies", policy);
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
  }
  const limited = await stack.admin("POST", "/api-keys", { name: "limited", groups: ["limited"] });
  limitedKey = limited.body.key;
  await waitFor(
    () =>
      stack.gateway.store.policies.size === 2 && stack.gateway.store.apiKeyByHash(hashSecret(limitedKey)) !== undefined,
    { what: "the policies and the limited key at the gateway" },
  );
  // The limited key's one request of the minute; every later one is refused.
  await ollama("local", limitedKey).generate({ model: "llama3.2", prompt: "hi", stream: false });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

function ollama(connection: string, key: string, headers: Record<string, string> = {}): Ollama {
  return new Ollama({
    host: `${stack.gateway.url}/c/${connection}`,
    headers: { Authorization: `Bearer ${key}`, ...headers },
  });
}

/** The four ways the client calls a model, each awaited to its end. */
const CALLS: Record<string, (client: Ollama, prompt: string) => Promise<unknown>> = {
  chat: (client, prompt) =>
    client.chat({ model: "llama3.2", messages: [{ role: "user", content: prompt }], stream: false }),
  "chat, streaming": async (client, prompt) => {
    const stream = await client.chat({
      model: "llama3.2",
      messages: [{ role: "user", content: prompt }],
      stream: true,
    });
    for await (const _part of stream);
  },
  generate: (client, prompt) => client.generate({ model: "llama3.2", prompt, stream: false }),
  "generate, streaming": async (client, prompt) => {
    const stream = await client.generate({ model: "llama3.2", prompt, stream: true });
    for await (const _part of stream);
  },
};

const REFUSALS: [string, () => Ollama, string, number, RegExp][] = [
  ["an unknown API key", () => ollama("local", WRONG_KEY), "hi", 401, /^invalid, revoked or expired API key$/],
  [
    "a connection without a grant",
    () => ollama("secret", stack.apiKey),
    "hi",
    403,
    /^connection "secret" does not exist or is not available to you$/,
  ],
  ["a blocked prompt", () => ollama("local", stack.apiKey), BLOCKED, 403, new RegExp(RULE)],
  [
    "a used-up rate limit",
    () => ollama("local", limitedKey),
    "hi",
    429,
    /^rate limit of 1 requests per minute reached/,
  ],
];

describe("the ollama client shows the gateway's refusal", () => {
  for (const [refusal, client, prompt, status, message] of REFUSALS) {
    it.each(Object.entries(CALLS))(`for ${refusal}: %s`, async (_call, call) => {
      const error = (await call(client(), prompt).catch((caught: unknown) => caught)) as Json;
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe("ResponseError");
      expect(error.status_code).toBe(status);
      expect(error.message).toMatch(message);
    });
  }

  it("answers Ollama's paths with a string error and a code", async () => {
    const response = await fetch(`${stack.gateway.url}/c/secret/api/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}` },
      body: JSON.stringify({ model: "llama3.2", messages: [] }),
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({
      error: 'connection "secret" does not exist or is not available to you',
      code: "model_not_allowed",
    });
  });

  it("shows an error that ends a stream after it started", async () => {
    const stream = await ollama("local", stack.apiKey, ENDLESS).chat({
      model: "llama3.2",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    const parts: unknown[] = [];
    const error = await (async () => {
      for await (const part of stream) parts.push(part);
    })().catch((caught: unknown) => caught);
    expect(parts.length).toBeGreaterThan(0);
    expect((error as Error).message).toBe("the model runtime did not answer in time");
  });

  it("shows the 404 of a client pointed at the gateway instead of a connection", async () => {
    const misconfigured = new Ollama({ host: stack.gateway.url, headers: { Authorization: `Bearer ${stack.apiKey}` } });
    const error = (await misconfigured.list().catch((caught: unknown) => caught)) as Json;
    expect(error.message).toBe("no route for GET /api/tags");
  });
});

describe("refusals reveal nothing about which connections exist", () => {
  it.each([
    ["/api/chat", "POST"],
    ["/generate", "POST"],
    ["/v1/chat/completions", "POST"],
    ["/health", "GET"],
  ])("answers %s the same for an existing and a made-up connection", async (path, method) => {
    const shapes = [];
    for (const connection of ["local", "tgi", "llama", "no-such-connection"]) {
      const response = await fetch(`${stack.gateway.url}/c/${connection}${path}`, {
        method,
        headers: { authorization: `Bearer ${WRONG_KEY}` },
        ...(method === "POST" ? { body: "{}" } : {}),
      });
      const body = await response.json();
      shapes.push({ status: response.status, body });
    }
    expect(new Set(shapes.map((shape) => JSON.stringify(shape))).size).toBe(1);
  });
});

describe("TGI's paths get TGI's error shape", () => {
  const post = (path: string, key: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${stack.gateway.url}/c/tgi${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  it.each(["/generate", "/generate_stream"])(
    "refuses %s with {error, error_type} before anything streams",
    async (path) => {
      const unauthenticated = await post(path, WRONG_KEY, { inputs: "hi" });
      expect(unauthenticated.status).toBe(401);
      expect(unauthenticated.headers.get("content-type")).toBe("application/json");
      expect(await unauthenticated.json()).toEqual({
        error: "invalid, revoked or expired API key",
        error_type: "authentication",
        code: "unauthenticated",
      });
      const blocked = await post(path, stack.apiKey, { inputs: BLOCKED });
      expect(blocked.status).toBe(403);
      expect(await blocked.json()).toEqual({
        error: expect.stringContaining(RULE),
        error_type: "validation",
        code: "prompt_blocked",
      });
    },
  );

  it("ends a failed stream with an event TGI's clients raise", async () => {
    const response = await post("/generate_stream", stack.apiKey, { inputs: "hi" }, ENDLESS);
    expect(response.status).toBe(200);
    const events = (await response.text()).split("\n\n").filter((event) => event.trim() !== "");
    expect(events.length).toBeGreaterThan(1);
    const last = events.at(-1)?.trim() ?? "";
    expect(last.startsWith("data:")).toBe(true);
    expect(JSON.parse(last.slice("data:".length))).toEqual({
      error: "the model runtime did not answer in time",
      error_type: "incomplete_generation",
      code: "upstream_timeout",
    });
  });
});

describe("OpenAI's paths keep OpenAI's shape", () => {
  const openai = (key: string) =>
    new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: key, maxRetries: 0, timeout: 10_000 });

  it.each([
    [
      "an unknown API key",
      WRONG_KEY,
      "llama/demo-chat",
      "hi",
      401,
      "unauthenticated",
      "invalid, revoked or expired API key",
    ],
    [
      "a connection without a grant",
      "",
      "secret/llama3.2",
      "hi",
      403,
      "model_not_allowed",
      'the model "secret/llama3.2" does not exist or is not available to you',
    ],
    ["a blocked prompt", "", "llama/demo-chat", BLOCKED, 403, "prompt_blocked", RULE],
  ])("for %s", async (_refusal, key, model, prompt, status, code, message) => {
    const error = (await openai(key || stack.apiKey)
      .chat.completions.create({ model, messages: [{ role: "user", content: prompt }] })
      .catch((caught: unknown) => caught)) as Json;
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(status);
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
  });

  it("raises an error that ends a stream after it started", async () => {
    const stream = await new OpenAI({
      baseURL: `${stack.gateway.url}/v1`,
      apiKey: stack.apiKey,
      maxRetries: 0,
      defaultHeaders: ENDLESS,
    }).chat.completions.create({ model: "llama/demo-chat", messages: [{ role: "user", content: "hi" }], stream: true });
    let chunks = 0;
    const error = (await (async () => {
      for await (const _chunk of stream) chunks++;
    })().catch((caught: unknown) => caught)) as Json;
    expect(chunks).toBeGreaterThan(0);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.message).toContain("the model runtime did not answer in time");
    expect(error.code).toBe("upstream_timeout");
  });
});
