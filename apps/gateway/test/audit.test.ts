// Every request through the gateway becomes an audit session, refused ones
// included: driven by the real `openai` SDK, stored by the control plane in
// Postgres, read back through the sessions API as an auditor would.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;
let client: OpenAI;
let keyId: string;
/** A runtime behind an `http` connection whose JSON answer nests 100,000 arrays deep. */
let nested: Server;

// biome-ignore lint/suspicious/noExplicitAny: sessions are parsed JSON, asserted field by field
type Session = any;

beforeAll(async () => {
  stack = await startStack();
  runtime = await stack.addConnection("llama", { fixture: { chunkIntervalMs: 5 } });
  await stack.addAgent("llama", runtime);
  const other = await stack.addConnection("other");
  await stack.addAgent("other", other);
  nested = createServer((req, res) => {
    if (req.url === "/health") return res.end("ok");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(`${"[".repeat(100_000)}${"]".repeat(100_000)}`);
  });
  nested.listen(0, "127.0.0.1");
  await once(nested, "listening");
  const json = await stack.admin("POST", "/connections", { name: "json", protocol: "http", models: ["any"] });
  if (json.status !== 201) throw new Error(JSON.stringify(json.body));
  await waitFor(() => stack.gateway.store.connectionByName("json") !== undefined);
  await stack.addAgent("json", { url: `http://127.0.0.1:${(nested.address() as AddressInfo).port}` } as RuntimeFixture);
  client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
  const keys = await stack.admin("GET", "/api-keys");
  keyId = keys.body.items.find((key: { name: string }) => key.name === "e2e").id;

  const policies = [
    {
      name: "no-bulk-export",
      subjects: { groups: ["everyone"] },
      resources: [{ connection: "llama", models: ["*"] }],
      operations: ["inference"],
      promptRules: [
        { pattern: "export every customer", flags: "i", action: "block" },
        { pattern: "wire transfer", flags: "i", action: "require_approval" },
      ],
    },
    {
      name: "audit-without-personal-data",
      subjects: { groups: ["everyone"] },
      resources: [{ connection: "other", models: ["*"] }],
      operations: ["inference"],
      masking: { entities: ["EMAIL"], maskPromptsInAudit: true },
      promptRules: [{ pattern: "forbidden topic", flags: "i", action: "block" }],
    },
  ];
  for (const policy of policies) {
    const created = await stack.admin("POST", "/policies", policy);
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
  }
  await waitFor(() => stack.gateway.store.policies.size === 3, { what: "the policies at the gateway" });
}, 60_000);

afterAll(async () => {
  await stack?.close();
  nested?.closeAllConnections();
  nested?.close();
});

/** The stored session; records reach Postgres after the answer, off the request path. */
async function storedSession(sessionId: string | null): Promise<Session> {
  if (!sessionId) throw new Error("the answer has no session id");
  let session: { status: number; body: Session } | undefined;
  await waitFor(
    async () => {
      session = await stack.admin("GET", `/sessions/${sessionId}`);
      return session.status === 200;
    },
    { timeoutMs: 10_000, what: `session ${sessionId} to be stored` },
  );
  return session?.body;
}

async function postChat(body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${stack.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** The content deltas of an OpenAI SSE text, in order. */
function deltasOf(sse: string): string[] {
  const deltas: string[] = [];
  for (const line of sse.split("\n")) {
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const content = JSON.parse(line.slice(6)).choices?.[0]?.delta?.content;
    if (typeof content === "string" && content !== "") deltas.push(content);
  }
  return deltas;
}

describe("audit sessions", () => {
  it("records an answer shaped to break the record builder, and keeps serving", async () => {
    const before = stack.gateway.audit.status().reserved;
    const answer = await fetch(`${stack.gateway.url}/c/json/anything`, {
      headers: { authorization: `Bearer ${stack.apiKey}` },
    });
    expect(answer.status).toBe(200);
    await answer.arrayBuffer();
    const session = await storedSession(answer.headers.get("x-modelgate-session"));
    expect(session).toMatchObject({ decision: "allowed", connection: "json", responseStatus: 200 });
    expect(session.details.usage).toBeUndefined();
    expect(stack.gateway.audit.status().reserved).toBe(before);
    const next = await postChat({ model: "llama/demo-chat", messages: [{ role: "user", content: "still there?" }] });
    expect(next.status).toBe(200);
  });

  it("records a streamed answer as delivered, chunk by chunk, with each chunk's offset", async () => {
    const chunks = 6;
    const intervalMs = 40;
    const { data: stream, response } = await client.chat.completions
      .create(
        { model: "llama/demo-chat", messages: [{ role: "user", content: "tell me a story" }], stream: true },
        { headers: { "x-fixture-chunks": String(chunks), "x-fixture-interval-ms": String(intervalMs) } },
      )
      .withResponse();
    const received: string[] = [];
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta?.content;
      if (content) received.push(content);
    }
    const session = await storedSession(response.headers.get("x-modelgate-session"));

    expect(session).toMatchObject({
      decision: "allowed",
      subject: { id: keyId, authMethod: "api_key", groups: ["everyone"] },
      connection: "llama",
      model: "demo-chat",
      endpoint: "/v1/chat/completions",
      method: "POST",
      responseStatus: 200,
    });
    expect(session.details.responseContentType).toMatch(/^text\/event-stream/);
    expect(JSON.parse(session.content.requestBody).messages[0].content).toBe("tell me a story");
    expect(session.events.length).toBeGreaterThanOrEqual(chunks);
    // The events are the stream the client saw: the same deltas in the same order.
    const recorded = session.events.map((event: { data: string }) => event.data).join("");
    expect(recorded).toBe(session.content.responseBody);
    expect(deltasOf(recorded)).toEqual(received);
    // Offsets follow the runtime's pace (lower bounds only: a loaded machine is slower, never faster).
    const offsets = session.events.map((event: { offsetMs: number }) => event.offsetMs);
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    expect(offsets.at(-1) - offsets[0]).toBeGreaterThanOrEqual((chunks - 1) * intervalMs * 0.8);
    expect(session.ttfbMs).toBeLessThanOrEqual(session.latencyMs);

    // The replay re-streams it chunk by chunk: natively the bytes the client read, paced as recorded.
    const replayUrl = `${stack.controlPlane.url}/api/v1/sessions/${session.id}/replay`;
    const auth = { authorization: `Bearer ${stack.adminToken}` };
    const native = await fetch(`${replayUrl}?format=native&speed=4`, { headers: auth });
    expect(native.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const replayed = await native.text();
    expect(replayed).toBe(recorded);
    expect(deltasOf(replayed)).toEqual(received);
    const envelopes = (await (await fetch(`${replayUrl}?format=sse&timing=none`, { headers: auth })).text())
      .split("\n\n")
      .filter((frame) => frame.startsWith("id:"))
      .map((frame) => JSON.parse(frame.slice(frame.indexOf("data: ") + 6)));
    expect(envelopes.map((envelope) => envelope.data)).toEqual(
      session.events.map((event: { data: string }) => event.data),
    );
    expect(envelopes.map((envelope) => envelope.offsetMs)).toEqual(offsets);
  });

  it("records a whole answer with its token usage and no events", async () => {
    const { data, response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    const session = await storedSession(response.headers.get("x-modelgate-session"));
    expect(session.events).toEqual([]);
    expect(JSON.parse(session.content.responseBody).choices[0].message.content).toBe(data.choices[0]?.message.content);
    expect(session.details.usage).toEqual({
      prompt_tokens: data.usage?.prompt_tokens,
      completion_tokens: data.usage?.completion_tokens,
      total_tokens: data.usage?.total_tokens,
    });
  });

  it("records refusals: no credential, a model out of reach, a blocked prompt", async () => {
    const anonymous = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(anonymous.status).toBe(401);
    const unknownModel = await postChat({ model: "llama/secret-model", messages: [{ role: "user", content: "x" }] });
    expect(unknownModel.status).toBe(403);
    const blocked = await postChat({
      model: "llama/demo-chat",
      messages: [{ role: "user", content: "Please EXPORT EVERY CUSTOMER record" }],
    });
    expect(blocked.status).toBe(403);

    const [noCredential, outOfReach, promptBlocked] = await Promise.all(
      [anonymous, unknownModel, blocked].map((answer) => storedSession(answer.headers.get("x-modelgate-session"))),
    );
    expect(noCredential).toMatchObject({ decision: "denied", subject: null, responseStatus: 401 });
    expect(noCredential.details.error.code).toBe("unauthenticated");
    expect(outOfReach).toMatchObject({ decision: "denied", subject: { id: keyId }, responseStatus: 403 });
    expect(outOfReach.details.error.code).toBe("model_not_allowed");
    expect(promptBlocked).toMatchObject({ decision: "blocked", subject: { id: keyId }, responseStatus: 403 });
    expect(promptBlocked.policyIds).toHaveLength(1);
    expect(promptBlocked.reason).toMatch(/prompt/i);
    // What was refused is on record too.
    expect(promptBlocked.content.requestBody).toContain("EXPORT EVERY CUSTOMER");
    expect(JSON.parse(promptBlocked.content.responseBody).error.code).toBe("prompt_blocked");

    // Auditors find them by user and decision.
    const listed = await stack.admin("GET", `/sessions?user=${keyId}&decision=blocked`);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((session: { id: string }) => session.id)).toEqual([promptBlocked.id]);
  });

  it("records a prompt held for approval as approval_required", async () => {
    const answer = await postChat({
      model: "llama/demo-chat",
      messages: [{ role: "user", content: "draft a wire transfer" }],
    });
    expect(answer.status).toBe(403);
    const { error } = (await answer.json()) as { error: { code: string; approval_id: string } };
    expect(error.code).toBe("approval_required");
    const session = await storedSession(answer.headers.get("x-modelgate-session"));
    expect(session).toMatchObject({ decision: "approval_required", subject: { id: keyId } });
    // The session links the approval it opened, and the rule that held it.
    expect(session.details).toMatchObject({
      approvals: [{ id: error.approval_id, status: "pending" }],
      promptRule: { rule: 1, field: "messages.0.content" },
    });
  });

  it("masks personal data in the recorded prompt when the policy asks, and keeps prompts out of the log", async () => {
    const answer = await postChat({
      model: "other/demo-chat",
      messages: [{ role: "user", content: "write to jane.doe@example.com about the invoice" }],
    });
    expect(answer.status).toBe(200);
    const sessionId = answer.headers.get("x-modelgate-session");
    const session = await storedSession(sessionId);
    expect(session.content.requestBody).not.toContain("jane.doe@example.com");
    expect(JSON.parse(session.content.requestBody).messages[0].content).toBe("write to [EMAIL] about the invoice");

    // Not UTF-8 (one bad byte): masked as the policy engine read it, never kept raw.
    const bytes = Buffer.from(
      JSON.stringify({ model: "other/demo-chat", messages: [{ role: "user", content: "to jane.doe@example.com XX" }] }),
    );
    bytes[bytes.indexOf("XX")] = 0xff;
    const broken = await fetch(`${stack.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: bytes,
    });
    expect(broken.status).toBe(200);
    const brokenSession = await storedSession(broken.headers.get("x-modelgate-session"));
    expect(brokenSession.content.requestBody).toContain("to [EMAIL] \uFFFDX");
    expect(brokenSession.details.request.encoding).toBeUndefined();

    // Refused by a prompt rule of the very policy that asks for it: masked all the same.
    const refused = await postChat({
      model: "other/demo-chat",
      messages: [{ role: "user", content: "jane.doe@example.com on a forbidden topic" }],
    });
    expect(refused.status).toBe(403);
    const refusedSession = await storedSession(refused.headers.get("x-modelgate-session"));
    expect(refusedSession.decision).toBe("blocked");
    expect(refusedSession.content.requestBody).not.toContain("jane.doe@example.com");
    expect(refusedSession.content.requestBody).toContain("[EMAIL] on a forbidden topic");

    const line = stack.logs.gateway.map((text) => JSON.parse(text)).find((entry) => entry.sessionId === sessionId);
    expect(line).toMatchObject({ msg: "decision", event: "modelgate.decision", schemaVersion: 1, decision: "allowed" });
    expect(JSON.stringify(line)).not.toContain("invoice");
  });
});
