// The agent's side of credential scoping and path safety, against a real
// HTTP runtime: whatever the gateway sends, the runtime sees only the
// agent's credential and only paths under its base URL.
import { UnsafePathError } from "@modelgate/core";
import { type RuntimeFixture, startRuntimeFixture } from "@modelgate/runtime-fixture";
import { createRuntimeClient, type RuntimeClient } from "../src/runtime-client.js";

let runtime: RuntimeFixture;
let client: RuntimeClient;

beforeAll(async () => {
  runtime = await startRuntimeFixture({ requiredBearer: "runtime-key", models: ["m"] });
  client = createRuntimeClient({ url: runtime.url, credential: { kind: "bearer", token: "runtime-key" } });
});

afterAll(async () => {
  await client.close();
  await runtime.close();
});

const body = Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }));

describe("runtime client", () => {
  it("replaces any caller credential with the runtime's and asks for an unencoded body", async () => {
    const response = await client.send({
      method: "POST",
      path: "/v1/chat/completions",
      headers: [
        { name: "authorization", value: "Bearer mg_caller" },
        { name: "cookie", value: "sid=1" },
        { name: "x-modelgate-session", value: "forged" },
        { name: "content-type", value: "application/json" },
        { name: "accept-encoding", value: "gzip" },
      ],
      body,
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    const seen = runtime.requests.at(-1);
    expect(seen?.headers.authorization).toBe("Bearer runtime-key");
    expect(seen?.headers.cookie).toBeUndefined();
    expect(seen?.headers["x-modelgate-session"]).toBeUndefined();
    expect(seen?.headers["accept-encoding"]).toBe("identity");
  });

  it("sends a custom credential header when configured so", async () => {
    const custom = createRuntimeClient({
      url: runtime.url,
      credential: { kind: "header", name: "X-Api-Key", value: "k" },
    });
    try {
      const response = await custom.send({
        method: "GET",
        path: "/v1/models",
        headers: [],
        body: Buffer.alloc(0),
        signal: AbortSignal.timeout(5_000),
      });
      // The fixture wants a bearer token: the custom header alone is refused.
      expect(response.statusCode).toBe(401);
      await response.body.dump();
      expect(runtime.requests.at(-1)?.headers["x-api-key"]).toBe("k");
    } finally {
      await custom.close();
    }
  });

  it("refuses paths that would leave the runtime before any I/O", () => {
    const before = runtime.requests.length;
    for (const path of ["/../x", "//evil.example/x", "/a/%2e%2e/b", "http://evil.example/"]) {
      expect(() =>
        client.send({ method: "GET", path, headers: [], body: Buffer.alloc(0), signal: AbortSignal.timeout(1_000) }),
      ).toThrow(UnsafePathError);
    }
    expect(runtime.requests.length).toBe(before);
  });

  it("keeps a base path and reports health", async () => {
    const mounted = createRuntimeClient({
      url: `${runtime.url}/prefix/`,
      credential: { kind: "bearer", token: "runtime-key" },
    });
    try {
      const response = await mounted.send({
        method: "GET",
        path: "/v1/models",
        headers: [],
        body: Buffer.alloc(0),
        signal: AbortSignal.timeout(5_000),
      });
      await response.body.dump();
      expect(runtime.requests.at(-1)?.path).toBe("/prefix/v1/models");
    } finally {
      await mounted.close();
    }
    expect(await client.probe("/health", 1_000)).toBe(true);
    runtime.setHealthy(false);
    expect(await client.probe("/health", 1_000)).toBe(false);
    runtime.setHealthy(true);
  });
});
