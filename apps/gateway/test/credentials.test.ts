// Credentials at the gateway's edge: oversized and encrypted tokens get a
// precise, recorded 401 that never echoes them; a request with two
// credentials is refused, never resolved by whichever one a component
// reads first; and headers that would change the method, path or host a
// runtime acts on never reach it. Requests are written byte for byte where
// a client library would merge or refuse what is being tested.
import { request as httpRequest } from "node:http";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import fc from "fast-check";
import { rawRequest } from "./raw-http.js";
import { inferences, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

// biome-ignore lint/suspicious/noExplicitAny: sessions are parsed JSON, asserted field by field
type Json = any;

const AUDIENCE = "https://gateway.modelgate.test";
const TOO_LARGE = "the bearer token is larger than 16384 bytes";

let idp: TestIdentityProvider;
let stack: Stack;
let runtime: RuntimeFixture;

beforeAll(async () => {
  idp = await startTestIdentityProvider({ audience: AUDIENCE });
  stack = await startStack({
    oidc: {
      issuers: [{ issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" }],
      allowInsecureRequests: true,
    },
  });
  runtime = await stack.addConnection("local", { protocol: "ollama", models: ["llama3.2"] });
  await stack.addAgent("local", runtime);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await idp?.close();
});

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** A GET of the runtime's model list with this Authorization header (Node's client sends any size). */
function withAuthorization(authorization: string): Promise<{ status: number; headers: Json; body: string }> {
  const url = new URL(stack.gateway.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method: "GET", path: "/c/local/api/tags", headers: { authorization } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The stored audit session; records reach Postgres after the answer. */
async function storedSession(sessionId: string | undefined): Promise<Json> {
  if (!sessionId) throw new Error("the answer has no session id");
  let session: { status: number; body: Json } | undefined;
  await waitFor(
    async () => {
      session = await stack.admin("GET", `/sessions/${sessionId}`);
      return session.status === 200;
    },
    { timeoutMs: 10_000, what: `session ${sessionId} to be stored` },
  );
  return session?.body;
}

/** True when `text` contains the token or any 8-character piece of it. */
function echoes(text: string, token: string): boolean {
  for (let start = 0; start + 8 <= token.length; start++) {
    if (text.includes(token.slice(start, start + 8))) return true;
  }
  return false;
}

describe("oversized and encrypted tokens", () => {
  it("answers a token over 16 KiB with a recorded 401 token_malformed, not Node's 431", async () => {
    const forged = `${base64url({ alg: "RS256", kid: "k" })}.${"b".repeat(20 * 1024)}.c2ln`;
    const minted = await idp.mintAccessToken({
      subject: "alice",
      groups: ["everyone"],
      claims: { padding: "p".repeat(17 * 1024) },
    });
    for (const token of [forged, minted, "x".repeat(30 * 1024)]) {
      const response = await withAuthorization(`Bearer ${token}`);
      expect(response.status).toBe(401);
      expect(JSON.parse(response.body)).toEqual({ error: TOO_LARGE, code: "token_malformed" });
      expect(response.headers["www-authenticate"]).toBe(
        `Bearer error="invalid_token", error_description="${TOO_LARGE}"`,
      );
      const session = await storedSession(response.headers["x-modelgate-session"]);
      expect(session).toMatchObject({ decision: "denied", subject: null, responseStatus: 401 });
      expect(session.details.error).toEqual({ code: "token_malformed", message: TOO_LARGE });
    }
  });

  it("refuses a head beyond MODELGATE_MAX_HEADER_BYTES at the parser: 431, counted and logged without the token", async () => {
    const token = `secret-${"z".repeat(70 * 1024)}`;
    const response = await rawRequest(stack.gateway.url, [
      "GET /c/local/api/tags HTTP/1.1",
      `Authorization: Bearer ${token}`,
    ]);
    expect(response.status).toBe(431);
    const refusal = stack.logs.gateway.find((line) => line.includes("the HTTP parser refused a request"));
    expect(JSON.parse(refusal ?? "{}")).toMatchObject({ code: "HPE_HEADER_OVERFLOW", status: 431 });
    expect(stack.logs.gateway.some((line) => line.includes("secret-zzz"))).toBe(false);
    const metrics = await (await fetch(`${stack.gateway.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^modelgate_http_refused_total\{status="431"\} 1$/m);
  });

  it("refuses an encrypted token (JWE) as token_malformed and says so", async () => {
    const jwe = `${base64url({ alg: "RSA-OAEP-256", enc: "A256GCM" })}.${"k".repeat(40)}.aXZpdml2.${"c".repeat(60)}.dGFndGFn`;
    const response = await withAuthorization(`Bearer ${jwe}`);
    expect(response.status).toBe(401);
    expect(JSON.parse(response.body)).toEqual({
      error: "encrypted tokens (JWE) are not accepted; send a signed access token (JWS)",
      code: "token_malformed",
    });
  });

  it("never echoes any piece of a refused token in the answer or WWW-Authenticate", async () => {
    const base64urlText = fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/);
    const json = fc.dictionary(
      fc.constantFrom("alg", "kid", "typ", "iss", "aud", "sub", "crit", "enc", "jku", "x5u"),
      fc.oneof(fc.string({ maxLength: 30 }), fc.constant(idp.issuer), fc.constantFrom("RS256", "HS256", "none", "dir")),
    );
    const segment = fc.oneof(base64urlText, json.map(base64url));
    const token = fc.oneof(
      // JWS, JWE and every other number of segments.
      fc.array(segment, { minLength: 1, maxLength: 7 }).map((segments) => segments.join(".")),
      fc.stringMatching(/^[A-Za-z0-9]{0,40}$/).map((rest) => `mg_${rest}`),
      fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 80 }),
      // Over the size limit: a random piece repeated.
      fc
        .tuple(fc.stringMatching(/^[A-Za-z0-9_.-]{8,40}$/), fc.integer({ min: 16 * 1024, max: 40 * 1024 }))
        .map(([piece, length]) => piece.repeat(Math.ceil(length / piece.length)).slice(0, length)),
    );
    await fc.assert(
      fc.asyncProperty(token, async (candidate) => {
        const response = await withAuthorization(`Bearer ${candidate}`);
        expect([400, 401]).toContain(response.status);
        expect(echoes(response.body, candidate)).toBe(false);
        expect(echoes(String(response.headers["www-authenticate"] ?? ""), candidate)).toBe(false);
      }),
      { numRuns: 150 },
    );
  });
});

describe("one credential per request", () => {
  const tags = (...headers: string[]) => rawRequest(stack.gateway.url, ["GET /c/local/api/tags HTTP/1.1", ...headers]);
  const WRONG = `Bearer mg_${"A".repeat(32)}`;

  it("refuses two Authorization headers with 400, whatever their order and values", async () => {
    const before = inferences(runtime).length;
    const right = `Bearer ${stack.apiKey}`;
    for (const pair of [
      [right, right],
      [right, WRONG],
      [WRONG, right],
    ]) {
      const response = await tags(
        ...pair.map((value, index) => `${index ? "authorization" : "Authorization"}: ${value}`),
      );
      expect(response.status).toBe(400);
      // An Ollama path: Ollama's error shape.
      expect(JSON.parse(response.body)).toEqual({
        error: "the request carries more than one Authorization header",
        code: "invalid_request",
      });
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer error="invalid_request"/);
      const session = await storedSession(response.headers["x-modelgate-session"]);
      expect(session).toMatchObject({ decision: "denied", responseStatus: 400 });
      expect(session.details.error.code).toBe("invalid_request");
    }
    expect(inferences(runtime).length).toBe(before);
  });

  it("refuses Authorization with an x-api-key or api-key that disagrees, and forwards neither", async () => {
    const before = inferences(runtime).length;
    for (const header of ["x-api-key", "X-Api-Key", "api-key"]) {
      const refused = await tags(`Authorization: Bearer ${stack.apiKey}`, `${header}: mg_${"B".repeat(32)}`);
      expect(refused.status).toBe(400);
      expect(JSON.parse(refused.body).error).toBe(
        "the request carries different credentials in Authorization and in x-api-key or api-key",
      );
      await storedSession(refused.headers["x-modelgate-session"]);
    }
    expect(inferences(runtime).length).toBe(before);

    // The same key in both is one credential; the runtime still sees neither header.
    const agreeing = await tags(`Authorization: Bearer ${stack.apiKey}`, `x-api-key: ${stack.apiKey}`);
    expect(agreeing.status).toBe(200);
    const seen = inferences(runtime).at(-1);
    expect(seen?.headers.authorization).toBe(`Bearer ${RUNTIME_API_KEY}`);
    expect(seen?.headers["x-api-key"]).toBeUndefined();
    // A blank one carries no credential to disagree with.
    expect((await tags(`Authorization: Bearer ${stack.apiKey}`, "api-key: ")).status).toBe(200);
  });

  it("tells a client that sends only x-api-key where the credential goes", async () => {
    const response = await tags(`x-api-key: ${stack.apiKey}`);
    expect(response.status).toBe(401);
    expect(JSON.parse(response.body).error).toBe(
      "send the credential as Authorization: Bearer <credential>; x-api-key is read only on /v1/messages, api-key nowhere",
    );
  });
});

describe("headers that would change what the runtime does", () => {
  it("never reach the runtime, in any spelling", async () => {
    const smuggled = [
      "X-HTTP-Method-Override: DELETE",
      "x-http-method: DELETE",
      "X-Method-Override: PUT",
      "X-ORIGINAL-METHOD: DELETE",
      "X-Original-URL: /api/delete",
      "x-rewrite-url: /api/pull",
      "X-Original-URI: /api/delete",
      "X-Envoy-Original-Path: /api/delete",
      "x-envoy-internal: true",
      "X-Host: evil.example",
      "X-Original-Host: evil.example",
      "True-Client-IP: 10.0.0.1",
      "X-Client-IP: 10.0.0.1",
      "CF-Connecting-IP: 10.0.0.1",
    ];
    const response = await rawRequest(
      stack.gateway.url,
      [
        "POST /c/local/api/chat HTTP/1.1",
        `Authorization: Bearer ${stack.apiKey}`,
        "Content-Type: application/json",
        "X-End-To-End: kept",
        ...smuggled,
      ],
      JSON.stringify({ model: "llama3.2", messages: [{ role: "user", content: "hi" }], stream: false }),
    );
    expect(response.status).toBe(200);
    const seen = inferences(runtime).at(-1);
    expect(seen).toMatchObject({ method: "POST", path: "/api/chat" });
    for (const line of smuggled) {
      const name = line.slice(0, line.indexOf(":")).toLowerCase();
      expect({ name, value: seen?.headers[name] }).toEqual({ name, value: undefined });
    }
    expect(seen?.headers["x-end-to-end"]).toBe("kept");
  });
});
