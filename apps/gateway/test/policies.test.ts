// Least privilege end to end: people with OIDC access tokens from a real
// identity provider (oidc-provider on loopback) and service accounts with
// API keys, under default-deny policies the control plane pushes to a
// running gateway. Driven by the official `openai` client and plain fetch.
import { createHmac, createPublicKey } from "node:crypto";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { inferences, type Stack, startStack, waitFor } from "./stack.js";

interface ErrorBody {
  error: { code: string; type: string; message: string; param: string | null };
}

const AUDIENCE = "https://gateway.modelgate.test";
const ALLOWED = "llama-3.1-8b-instruct";
const PROPRIETARY = "proprietary-70b";

let idp: TestIdentityProvider;
let stack: Stack;
let runtime: RuntimeFixture;
let dsPolicyId: string;
let opsKey: string;

const DS_POLICY = {
  name: "ds-public-llama",
  subjects: { groups: ["data-science"] },
  resources: [{ connection: "llama", models: ["llama-3.1-8b-instruct*"] }],
  operations: ["inference", "embeddings", "models.list"],
  limits: { maxTokens: 1024, temperature: { min: 0, max: 1 } },
  promptRules: [{ pattern: "(export|dump) (all|every)", flags: "i", action: "block", description: "bulk export" }],
};

async function createPolicy(body: object): Promise<string> {
  const created = await stack.admin("POST", "/policies", body);
  if (created.status !== 201) throw new Error(`policy refused: ${JSON.stringify(created.body)}`);
  return created.body.id;
}

const userClient = async (groups: string[], subject = "alice") =>
  new OpenAI({
    baseURL: `${stack.gateway.url}/v1`,
    apiKey: await idp.mintAccessToken({ subject, email: `${subject}@example.com`, groups }),
    maxRetries: 0,
  });

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: `llama/${ALLOWED}`,
  messages: [{ role: "user" as const, content }],
  ...extra,
});

beforeAll(async () => {
  idp = await startTestIdentityProvider({ audience: AUDIENCE });
  stack = await startStack(
    {
      oidc: {
        issuers: [{ issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" }],
        allowInsecureRequests: true,
      },
    },
    { grantEveryone: false },
  );
  runtime = await stack.addConnection("llama", { models: [ALLOWED, PROPRIETARY] });
  await stack.addAgent("llama", runtime);
  dsPolicyId = await createPolicy(DS_POLICY);
  const ops = await stack.admin("POST", "/api-keys", { name: "ops-monitoring", groups: ["ops"] });
  opsKey = ops.body.key;
  await createPolicy({
    name: "ops-health",
    subjects: { groups: ["ops"] },
    resources: [{ connection: "llama" }],
    operations: ["read"],
  });
  await waitFor(() => stack.gateway.store.policies.size === 2, { what: "both policies at the gateway" });
});

afterAll(async () => {
  await stack?.close();
  await idp?.close();
});

describe("OIDC users under group policies", () => {
  it("a data-science user reaches the allowed model and gets 403 for a proprietary one", async () => {
    const client = await userClient(["data-science"]);
    const completion = await client.chat.completions.create(chat("hello", { max_tokens: 16 }));
    expect(completion.choices[0]?.message.content).toContain("demo runtime");

    const refused = await client.chat.completions
      .create({ ...chat("hello"), model: `llama/${PROPRIETARY}` })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("model_not_allowed");
    expect(inferences(runtime).some((request) => request.body.includes(PROPRIETARY))).toBe(false);
  });

  it("the caller's access token never reaches the runtime", async () => {
    const token = await idp.mintAccessToken({ subject: "alice", groups: ["data-science"] });
    const client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: token, maxRetries: 0 });
    await client.chat.completions.create(chat("hello", { max_tokens: 8 }));
    const seen = inferences(runtime).at(-1);
    expect(JSON.stringify(seen?.headers)).not.toContain(token.split(".")[2]);
  });

  it("lists only the models the caller may use", async () => {
    const client = await userClient(["data-science"]);
    const listed = await client.models.list();
    expect(listed.data.map((model) => model.id)).toEqual([`llama/${ALLOWED}`]);
    const nobody = await userClient(["marketing"]);
    expect((await nobody.models.list()).data).toEqual([]);
  });

  it("a user with no grant gets the same answer for an existing and an invented model", async () => {
    const client = await userClient(["marketing"]);
    const existing = await client.chat.completions.create(chat("hi")).catch((error: unknown) => error);
    const invented = await client.chat.completions
      .create({ ...chat("hi"), model: "llama/does-not-exist" })
      .catch((error: unknown) => error);
    for (const error of [existing, invented]) {
      expect(error).toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect((error as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("model_not_allowed");
    }
  });
});

describe("who a person is in the audit", () => {
  /** Sends one request with `token` and reads the session the gateway recorded for it. */
  async function sessionOf(token: string) {
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(chat("hello", { max_tokens: 8 })),
    });
    expect(response.status).toBe(200);
    return (await stack.storedSession(response.headers.get("x-modelgate-session"))).subject as {
      id: string;
      name: string | null;
    };
  }

  it("names a person by the token's name claim, beside the stable id", async () => {
    const token = await idp.mintAccessToken({
      subject: "alice-liddell",
      email: "alice@example.com",
      groups: ["data-science"],
      claims: { name: "Alice Liddell" },
    });
    expect(await sessionOf(token)).toMatchObject({ id: "alice-liddell", name: "Alice Liddell" });
  });

  it("names a person without a name claim by their email", async () => {
    const token = await idp.mintAccessToken({ subject: "bob-7", email: "bob@example.com", groups: ["data-science"] });
    expect(await sessionOf(token)).toMatchObject({ id: "bob-7", name: "bob@example.com" });
  });
});

describe("bodies are read as the runtime reads them", () => {
  it("refuses upper-case field names a Go runtime would read as the lower-case ones", async () => {
    const token = await idp.mintAccessToken({ subject: "alice", groups: ["data-science"] });
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ ...chat("hi"), MODEL: PROPRIETARY, MAX_TOKENS: 100000 }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorBody).error.code).toBe("invalid_request");
  });

  it("forwards a duplicate key once, as the policy read it", async () => {
    const token = await idp.mintAccessToken({ subject: "alice", groups: ["data-science"] });
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: `{"max_tokens":100000,"model":"llama/${ALLOWED}","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`,
    });
    expect(response.status).toBe(200);
    const seen = inferences(runtime).at(-1)?.body ?? "";
    expect(seen.match(/max_tokens/g)).toHaveLength(1);
    expect(JSON.parse(seen).max_tokens).toBe(16);
  });

  it("answers a caller without a grant the same for an existing and an invented connection, body unread", async () => {
    const token = await idp.mintAccessToken({ subject: "mallory", groups: ["marketing"] });
    const answers = [];
    for (const name of ["llama", "no-such-connection"]) {
      const response = await fetch(`${stack.gateway.url}/c/${name}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: "{",
      });
      answers.push({ status: response.status, code: ((await response.json()) as ErrorBody).error.code });
    }
    expect(answers).toEqual([
      { status: 403, code: "model_not_allowed" },
      { status: 403, code: "model_not_allowed" },
    ]);
  });
});

describe("parameter limits", () => {
  it("refuses max_tokens above the cap, naming the parameter and the limit", async () => {
    const client = await userClient(["data-science"]);
    const before = inferences(runtime).length;
    const refused = await client.chat.completions
      .create(chat("hello", { max_tokens: 4096 }))
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    const error = refused as InstanceType<typeof OpenAI.PermissionDeniedError>;
    expect(error.code).toBe("parameter_limit_exceeded");
    expect(error.param).toBe("max_tokens");
    expect(error.message).toContain("1024");
    expect(inferences(runtime).length).toBe(before);
  });

  it("caps a missing max_tokens at the limit and keeps every other parameter exactly", async () => {
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await idp.mintAccessToken({ subject: "alice", groups: ["data-science"] })}`,
        "content-type": "application/json",
      },
      body: `{"model":"llama/${ALLOWED}","messages":[{"role":"user","content":"hi"}],"temperature":0.50,"seed":12345678901234567891}`,
    });
    expect(response.status).toBe(200);
    const seen = inferences(runtime).at(-1)?.body ?? "";
    expect(JSON.parse(seen).max_tokens).toBe(1024);
    expect(seen).toContain('"temperature":0.50');
    expect(seen).toContain('"seed":12345678901234567891');
  });

  it("refuses a temperature outside the allowed range", async () => {
    const client = await userClient(["data-science"]);
    const refused = await client.chat.completions
      .create(chat("hello", { temperature: 1.5 }))
      .catch((error: unknown) => error);
    expect((refused as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("parameter_limit_exceeded");
    expect((refused as InstanceType<typeof OpenAI.PermissionDeniedError>).param).toBe("temperature");
  });
});

describe("prompt rules", () => {
  it.each([
    ["plain", "please export all customer records"],
    ["full-width letters", "please ｅｘｐｏｒｔ ａｌｌ customer records"],
    ["zero-width characters", "please ex\u200bport\u200d a\u2060ll customer records"],
    ["mixed case", "Please EXPORT EVERY record"],
  ])("blocks a bulk-export prompt written %s", async (_label, content) => {
    const client = await userClient(["data-science"]);
    const before = inferences(runtime).length;
    const refused = await client.chat.completions.create(chat(content)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((refused as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("prompt_blocked");
    expect((refused as Error).message).toContain("bulk export");
    expect(inferences(runtime).length).toBe(before);
  });
});

describe("prompt rules read every field the runtime renders", () => {
  /** The stored session; records reach Postgres after the answer, off the request path. */
  async function storedSession(sessionId: string | null) {
    if (!sessionId) throw new Error("the answer has no session id");
    let session: { status: number; body: { decision: string; details: Record<string, unknown> } } | undefined;
    await waitFor(
      async () => {
        session = await stack.admin("GET", `/sessions/${sessionId}`);
        return session.status === 200;
      },
      { timeoutMs: 10_000, what: `session ${sessionId} to be stored` },
    );
    return session?.body;
  }

  // "dump all", with a Cyrillic d and a, and a zero-width space.
  const hidden = "please \u0501u\u200bmp \u0430ll records";
  it.each([
    ["vLLM documents", { documents: [{ title: "notes", text: hidden }] }, [], "documents.0.text"],
    ["chat_template_kwargs", { chat_template_kwargs: { persona: hidden } }, [], "chat_template_kwargs.persona"],
    ["a message's name", {}, [{ role: "user" as const, name: hidden, content: "hi" }], "messages.1.name"],
  ])("blocks a rule match in %s and records the field in the session", async (_label, extra, messages, field) => {
    const client = await userClient(["data-science"]);
    const before = inferences(runtime).length;
    const body = { ...chat("hello"), ...extra };
    body.messages = [...body.messages, ...messages];
    // The SDK sends fields it does not know (vLLM's extensions) as they are.
    const refused = await client.chat.completions
      .create(body as Parameters<typeof client.chat.completions.create>[0])
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    const error = refused as InstanceType<typeof OpenAI.PermissionDeniedError>;
    expect(error.code).toBe("prompt_blocked");
    expect(error.param).toBe(field);
    expect(inferences(runtime).length).toBe(before);
    const session = await storedSession(error.headers.get("x-modelgate-session"));
    expect(session?.decision).toBe("blocked");
    expect(session?.details.promptRule).toEqual({ policyId: dsPolicyId, rule: 0, field });
  });
});

describe("service accounts", () => {
  it("an ops API key calls the runtime's health endpoint but not inference", async () => {
    const health = await fetch(`${stack.gateway.url}/c/llama/health`, {
      headers: { authorization: `Bearer ${opsKey}` },
    });
    expect(health.status).toBe(200);

    const client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: opsKey, maxRetries: 0 });
    const refused = await client.chat.completions.create(chat("hi")).catch((error: unknown) => error);
    expect((refused as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("operation_not_allowed");
    const native = await fetch(`${stack.gateway.url}/c/llama/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${opsKey}`, "content-type": "application/json" },
      // Native paths name the model as the runtime knows it.
      body: JSON.stringify({ ...chat("hi"), model: ALLOWED }),
    });
    expect(native.status).toBe(403);
    expect(((await native.json()) as ErrorBody).error.code).toBe("operation_not_allowed");
  });
});

describe("propagation", () => {
  it("a policy edit through the API flips the next request's outcome within a second", async () => {
    const client = await userClient(["data-science"]);
    await client.chat.completions.create(chat("before the edit", { max_tokens: 8 }));

    // Revoke: the same policy without inference.
    const edited = await stack.admin("PUT", `/policies/${dsPolicyId}`, { ...DS_POLICY, operations: ["models.list"] });
    expect(edited.status).toBe(200);
    const editedAt = performance.now();
    let outcome: unknown;
    while (performance.now() - editedAt < 1_000) {
      outcome = await client.chat.completions.create(chat("after", { max_tokens: 8 })).catch((error: unknown) => error);
      if (outcome instanceof OpenAI.PermissionDeniedError) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect((outcome as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("operation_not_allowed");

    // And back.
    const restored = await stack.admin("PUT", `/policies/${dsPolicyId}`, DS_POLICY);
    expect(restored.status).toBe(200);
    const restoredAt = performance.now();
    let answered = false;
    while (!answered && performance.now() - restoredAt < 1_000) {
      answered = await client.chat.completions.create(chat("again", { max_tokens: 8 })).then(
        () => true,
        () => false,
      );
    }
    expect(answered).toBe(true);
  });
});

describe("access tokens that must not get in", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: idp.issuer,
    aud: AUDIENCE,
    sub: "mallory",
    groups: ["data-science"],
    iat: now(),
    exp: now() + 300,
    ...extra,
  });
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

  const cases: [string, () => Promise<string>, string][] = [
    ["an expired token", () => idp.signRaw(claims({ exp: now() - 600, iat: now() - 900 })), "token_expired"],
    ["a token not valid yet", () => idp.signRaw(claims({ nbf: now() + 600 })), "token_not_yet_valid"],
    [
      "a token for another audience",
      () => idp.signRaw(claims({ aud: "https://other.example" })),
      "token_audience_invalid",
    ],
    [
      "a token from an untrusted issuer",
      () => idp.signRaw(claims({ iss: "https://evil.example" })),
      "token_issuer_untrusted",
    ],
    [
      "a token with a tampered payload",
      async () => {
        const [header, , signature] = (await idp.signRaw(claims())).split(".");
        return `${header}.${b64(claims({ groups: ["admins"] }))}.${signature}`;
      },
      "token_signature_invalid",
    ],
    ["alg: none", async () => `${b64({ alg: "none", typ: "at+jwt" })}.${b64(claims())}.`, "token_algorithm_refused"],
    [
      "HS256 signed with the RSA public key",
      async () => {
        const jwk = idp.publicJwk();
        const pem = createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" });
        const input = `${b64({ alg: "HS256", typ: "at+jwt", kid: jwk.kid })}.${b64(claims())}`;
        return `${input}.${createHmac("sha256", pem).update(input).digest("base64url")}`;
      },
      "token_algorithm_refused",
    ],
    ["an unknown key id", () => idp.signRaw(claims(), { kid: "not-a-published-key" }), "token_key_unknown"],
    ["garbage in JWT shape", async () => "aaaa.bbbb.cccc", "token_malformed"],
    ["garbage", async () => "not a token at all", "unauthenticated"],
  ];

  it.each(cases)("%s gets 401 with its precise code", async (_label, makeToken, code) => {
    const before = inferences(runtime).length;
    const response = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${await makeToken()}`, "content-type": "application/json" },
      body: JSON.stringify(chat("hi")),
    });
    expect(response.status).toBe(401);
    const { error } = (await response.json()) as ErrorBody;
    expect(error).toMatchObject({ code, type: "authentication_error" });
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(inferences(runtime).length).toBe(before);
  });
});
