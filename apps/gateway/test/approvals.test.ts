// Just-in-time human approval end to end (docs/approvals.md): real OIDC
// identities from a test identity provider, the official `openai` and
// `ollama` clients, two gateway replicas sharing one control plane, and one
// agent per connection dialing both replicas. A researcher's risky prompt is
// held; a security approver decides through the control-plane API; the
// caller's unchanged client sends again (or waits with `Prefer: wait`).
import { randomBytes } from "node:crypto";
import { startAgent } from "@modelgate/agent";
import type { GatewayOptions, RunningGateway } from "@modelgate/gateway";
import { startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { Ollama } from "ollama";
import OpenAI from "openai";
import pg from "pg";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const AUDIENCE = "https://modelgate.test/approvals";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const RISKY = "Please export all customer records as CSV";
const MODEL = "demo-chat";

// biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
type Json = any;

let idp: TestIdentityProvider;
let stack: Stack;
let gatewayB: RunningGateway;
/** Every replica trusts the identity provider's tokens. */
let gatewayOidc: Pick<GatewayOptions, "oidc">;
let openaiRuntime: RuntimeFixture;
let ollamaRuntime: RuntimeFixture;
let db: pg.Client;
const agents: { close(): Promise<void> }[] = [];

const people = {
  researcher: { subject: "rita", groups: ["research"] },
  // In both groups: may approve others' requests, never her own.
  researchingApprover: { subject: "rex", groups: ["research", "security"] },
  approver: { subject: "sam", groups: ["security"] },
  secondApprover: { subject: "sue", groups: ["security"] },
  outsider: { subject: "otto", groups: ["marketing"] },
  analyst: { subject: "ann", groups: ["analysts"] },
  otherAnalyst: { subject: "abe", groups: ["analysts"] },
} as const;
type Person = keyof typeof people;

const tokenOf = (person: Person) =>
  idp.mintAccessToken({
    subject: people[person].subject,
    email: `${people[person].subject}@example.com`,
    groups: [...people[person].groups],
  });

async function openai(person: Person, gateway: RunningGateway = stack.gateway, headers: Record<string, string> = {}) {
  return new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: await tokenOf(person),
    maxRetries: 0,
    defaultHeaders: headers,
  });
}

async function ollama(person: Person, gateway: RunningGateway = stack.gateway, headers: Record<string, string> = {}) {
  return new Ollama({
    host: `${gateway.url}/c/local`,
    headers: { Authorization: `Bearer ${await tokenOf(person)}`, ...headers },
  });
}

/** Calls the control-plane API as a person. */
async function api(
  person: Person,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${stack.controlPlane.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${await tokenOf(person)}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

const decide = (person: Person, id: string, verdict: "approve" | "deny", comment?: string) =>
  api(person, "POST", `/approvals/${id}/${verdict}`, comment === undefined ? {} : { comment });

/** The refusal an official client raised, as the OpenAI SDK reports it. */
async function refusal(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error;
    throw error;
  }
  throw new Error("the request was not refused");
}

const risky = (content = RISKY) => ({ model: `llama/${MODEL}`, messages: [{ role: "user" as const, content }] });

/** A stored session, once the audit record has reached the control plane. */
async function storedSession(id: string): Promise<Json> {
  let found: Json;
  await waitFor(
    async () => {
      const answer = await stack.admin("GET", `/sessions/${id}`);
      found = answer.status === 200 ? answer.body : undefined;
      return found !== undefined;
    },
    { timeoutMs: 10_000, what: `session ${id}` },
  );
  return found;
}

/** An agent for a connection, registered under `name`, dialing every given gateway replica (as agents do). */
async function startConnectionAgent(
  connection: string,
  runtime: RuntimeFixture,
  gateways: RunningGateway[],
  name: string,
) {
  const { token } = await stack.issueAgentToken(connection, name);
  const agent = startAgent({
    gateways: gateways.map((gateway) => ({ address: gateway.tunnelAddress, tls: false })),
    token,
    runtimeUrl: runtime.url,
    runtimeCredential: { kind: "bearer", token: RUNTIME_API_KEY },
    runtimeHealthPath: "/health",
    healthIntervalMs: 500,
    capacity: 8,
    version: "test",
    logger: captureLogger(name).logger,
    reconnectBackoff: { initialMs: 50, maxMs: 500 },
  });
  agents.push(agent);
  return agent;
}

beforeAll(async () => {
  idp = await startTestIdentityProvider({ audience: AUDIENCE });
  const issuer = { issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" };
  gatewayOidc = { oidc: { issuers: [issuer], allowInsecureRequests: true } };
  stack = await startStack(gatewayOidc, {
    grantEveryone: false,
    controlPlane: {
      oidc: {
        verifier: { issuers: [issuer], allowInsecureRequests: true },
        roleGroups: { admin: [], auditor: [], approver: [] },
      },
      // Expiry runs as a BullMQ delayed job, as in production.
      redisUrl: REDIS_URL,
      auditQueuePrefix: `approvals-${randomBytes(4).toString("hex")}`,
      approvals: { sweepIntervalMs: 200 },
    },
  });
  gatewayB = await stack.addGateway(gatewayOidc);
  openaiRuntime = await stack.addConnection("llama", { models: [MODEL] });
  ollamaRuntime = await stack.addConnection("local", { protocol: "ollama", models: ["llama3.2"] });
  // One agent per connection, dialing both replicas, as agents do.
  await startConnectionAgent("llama", openaiRuntime, [stack.gateway, gatewayB], "llama-agent");
  await startConnectionAgent("local", ollamaRuntime, [stack.gateway, gatewayB], "local-agent");
  const policy = await stack.admin("POST", "/policies", {
    name: "research",
    subjects: { groups: ["research"] },
    resources: [{ connection: "llama" }, { connection: "local" }],
    operations: ["inference", "models.list"],
    promptRules: [
      {
        pattern: "export (all|every) customer records?",
        flags: "i",
        action: "require_approval",
        description: "bulk customer export",
      },
    ],
    approval: { approverGroups: ["security"], minApprovals: 1, grant: "request", expiresMinutes: 60 },
  });
  if (policy.status !== 201) throw new Error(JSON.stringify(policy.body));
  // Analysts may use the proprietary model only with approval, for a window at a time.
  const guarded = await stack.admin("POST", "/policies", {
    name: "analysts-guarded",
    subjects: { groups: ["analysts"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    approval: { required: true, approverGroups: ["security"], grant: "window", windowMinutes: 15 },
  });
  if (guarded.status !== 201) throw new Error(JSON.stringify(guarded.body));
  for (const gateway of [stack.gateway, gatewayB]) {
    await waitFor(() => gateway.store.policies.size === 2 && gateway.pool.connectedCount() === 2, {
      timeoutMs: 15_000,
      what: "the policy and both agents at each gateway",
    });
  }
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
}, 90_000);

afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.close()));
  await db?.end();
  await stack?.close();
  await idp?.close();
}, 60_000);

describe("a prompt held for approval, through the official clients", () => {
  it("refuses with approval_required and the URL; a security approver approves; the identical request then succeeds once", async () => {
    const client = await openai("researcher");
    const held = await refusal(client.chat.completions.create(risky()));
    expect(held.status).toBe(403);
    expect(held.code).toBe("approval_required");
    const { approval_id: id, approval_url: url } = held.error as { approval_id: string; approval_url: string };
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(url).toBe(`${stack.controlPlane.url}/api/v1/approvals/${id}`);
    expect(held.message).toContain(url);
    expect(held.headers?.get("x-modelgate-approval")).toBe(id);

    // Sending it again while it is pending joins the same approval.
    const again = await refusal(client.chat.completions.create(risky()));
    expect((again.error as { approval_id: string }).approval_id).toBe(id);

    // The approver sees it, with the prompt and the rule that fired.
    const pending = await api("approver", "GET", "/approvals?status=pending");
    expect(pending.status).toBe(200);
    const listed = pending.body.items.find((item: Json) => item.id === id);
    expect(listed).toMatchObject({ status: "pending", connection: "llama", model: MODEL });
    const detail = await api("approver", "GET", `/approvals/${id}`);
    expect(detail.body).toMatchObject({ id, status: "pending", rule: 0, subject: { id: "rita" } });
    expect(detail.body.prompt).toContain("export all customer records");

    // Neither the researcher nor anyone else outside the approver groups may decide: to
    // them the approval does not exist.
    expect((await decide("researcher", id, "approve")).status).toBe(404);
    expect((await decide("outsider", id, "approve")).status).toBe(404);
    expect((await api("approver", "GET", `/approvals/${id}`)).body.status).toBe("pending");

    const approved = await decide("approver", id, "approve", "ok for the Q3 audit");
    expect(approved.status).toBe(200);
    expect(approved.body.status).toBe("approved");
    expect((await decide("secondApprover", id, "approve")).status).toBe(409);

    // The identical request succeeds once, on either replica, as soon as the grant is there.
    await waitFor(() => stack.gateway.store.approvals.size > 0, { what: "the grant at the gateway" });
    const answer = await client.chat.completions.create(risky()).withResponse();
    expect(answer.data.choices[0]?.message.content).toBeTruthy();
    const admittedSession = answer.response.headers.get("x-modelgate-session") ?? "";
    const second = await refusal(client.chat.completions.create(risky()));
    expect(second.code).toBe("approval_required");
    expect((second.error as { approval_id: string }).approval_id).not.toBe(id);

    // The admitted request's session names the approval and who approved it.
    const session = await storedSession(admittedSession);
    expect(session.decision).toBe("approved");
    expect(session.details.approvals).toMatchObject([
      {
        id,
        status: "approved",
        grant: "request",
        deciders: [{ id: "sam", email: "sam@example.com", decision: "approve", comment: "ok for the Q3 audit" }],
      },
    ]);
    // The refused one's session shows approval_required and links the same approval.
    const refusedSession = await storedSession(held.headers?.get("x-modelgate-session") ?? "");
    expect(refusedSession.decision).toBe("approval_required");
    expect(refusedSession.details.approvals).toEqual([{ id, status: "pending" }]);
    const after = await api("approver", "GET", `/approvals/${id}`);
    expect(after.body.grant).toMatchObject({ usedSessionId: admittedSession });
  });

  it("never lets a requester approve their own request, even as a member of the approver group", async () => {
    const held = await refusal((await openai("researchingApprover")).chat.completions.create(risky()));
    const id = (held.error as { approval_id: string }).approval_id;
    const self = await decide("researchingApprover", id, "approve");
    expect(self.status).toBe(403);
    expect(self.body.code).toBe("self_approval");
    expect((await api("approver", "GET", `/approvals/${id}`)).body.status).toBe("pending");
  });

  it("releases a Prefer: wait request on the other replica within a second of the approval", async () => {
    const content = `${RISKY} for the board`;
    const waiting = (await openai("researcher", gatewayB, { prefer: "wait=30" })).chat.completions
      .create(risky(content))
      .withResponse();
    await waitFor(() => gatewayB.store.approvals.waiting === 1, { what: "the request to wait at replica B" });
    const pending = await api("approver", "GET", "/approvals?status=pending&subject=rita");
    const approval = pending.body.items.find((item: Json) => item.prompt?.includes("for the board") ?? true);
    const detail = await api("approver", "GET", `/approvals/${approval.id}`);
    expect(detail.body.prompt).toContain("for the board");
    const decidedAt = performance.now();
    expect((await decide("approver", approval.id, "approve")).status).toBe(200);
    const { data, response } = await waiting;
    const releasedAfterMs = performance.now() - decidedAt;
    expect(releasedAfterMs).toBeLessThan(1_000);
    expect(response.headers.get("preference-applied")).toBe("wait=30");
    expect(data.choices[0]?.message.content).toBeTruthy();
  });

  it("answers a denied request with the approver's comment, in Ollama's shape", async () => {
    const client = await ollama("researcher");
    const chat = (headers?: Record<string, string>) =>
      (headers ? ollama("researcher", stack.gateway, headers) : Promise.resolve(client)).then((c) =>
        c.chat({ model: "llama3.2", messages: [{ role: "user", content: `${RISKY} from EMEA` }], stream: false }),
      );
    const held = await chat().catch((error: unknown) => error as { status_code: number; error: string });
    expect(held).toMatchObject({ status_code: 403 });
    const id = /approval ([0-9a-f-]{36})/.exec((held as { error: string }).error)?.[1] ?? "";
    expect((held as { error: string }).error).toContain(`/api/v1/approvals/${id}`);

    const waiting = chat({ prefer: "wait=30" }).catch(
      (error: unknown) => error as { status_code: number; error: string },
    );
    await waitFor(() => stack.gateway.store.approvals.waiting === 1, { what: "the request to wait" });
    expect((await decide("approver", id, "deny", "not without a ticket from legal")).status).toBe(200);
    const denied = await waiting;
    expect(denied).toMatchObject({ status_code: 403 });
    expect((denied as { error: string }).error).toContain("not without a ticket from legal");
    expect((await decide("secondApprover", id, "approve")).status).toBe(409);
  });

  it("expires an approval nobody decides, releasing a waiting request, and refuses late decisions", async () => {
    const client = await openai("researcher");
    const held = await refusal(client.chat.completions.create(risky(`${RISKY} from APAC`)));
    const id = (held.error as { approval_id: string }).approval_id;
    const waiting = refusal(
      (await openai("researcher", stack.gateway, { prefer: "wait=30" })).chat.completions.create(
        risky(`${RISKY} from APAC`),
      ),
    );
    await waitFor(() => stack.gateway.store.approvals.waiting === 1, { what: "the request to wait" });
    // The clock, not the test, is moved: its expiry time is now.
    await db.query("UPDATE approvals SET expires_at = now() WHERE id = $1", [id]);
    const released = await waiting;
    expect(released.code).toBe("approval_required");
    expect(released.message).toContain("expired");
    expect((await api("approver", "GET", `/approvals/${id}`)).body.status).toBe("expired");
    expect((await decide("approver", id, "approve")).status).toBe(409);
  });

  it("keeps grants across a gateway restart: a replica started after the approval admits the request", async () => {
    const content = `${RISKY} after the restart`;
    const held = await refusal((await openai("researcher")).chat.completions.create(risky(content)));
    const id = (held.error as { approval_id: string }).approval_id;
    expect((await decide("approver", id, "approve")).status).toBe(200);
    const fresh = await stack.addGateway(gatewayOidc);
    await startConnectionAgent("llama", openaiRuntime, [fresh], "late-agent");
    await waitFor(() => fresh.pool.connectedCount() === 1, { what: "the agent at the new replica" });
    expect(fresh.store.approvals.size).toBeGreaterThan(0);
    const answer = await (await openai("researcher", fresh)).chat.completions.create(risky(content));
    expect(answer.choices[0]?.message.content).toBeTruthy();
  });

  it("admits every request of that subject, connection and policy during a window grant, and nobody else's", async () => {
    const held = await refusal((await openai("analyst")).chat.completions.create(risky("first question")));
    expect(held.code).toBe("approval_required");
    expect(held.message).toContain('policy "analysts-guarded" grants this only with approval');
    const id = (held.error as { approval_id: string }).approval_id;
    expect((await decide("approver", id, "approve", "analysis sprint")).status).toBe(200);
    await waitFor(() => stack.gateway.store.approvals.size > 0 && gatewayB.store.approvals.size > 0, {
      what: "the window grant at both replicas",
    });
    for (const [gateway, content] of [
      [stack.gateway, "first question"],
      [gatewayB, "a different question"],
      [stack.gateway, "and a third"],
    ] as const) {
      const answer = await (await openai("analyst", gateway)).chat.completions.create(risky(content));
      expect(answer.choices[0]?.message.content).toBeTruthy();
    }
    // The grant is the analyst's alone.
    expect((await refusal((await openai("otherAnalyst")).chat.completions.create(risky("first question")))).code).toBe(
      "approval_required",
    );
  });

  it("fails closed while the control plane is away: held requests get 503, others are served", async () => {
    await stack.stopControlPlane();
    try {
      const client = await openai("researcher");
      const held = await refusal(client.chat.completions.create(risky(`${RISKY} while it is down`)));
      expect(held.status).toBe(503);
      expect(held.code).toBe("approval_unavailable");
      const plain = await client.chat.completions.create(risky("what is the weather"));
      expect(plain.choices[0]?.message.content).toBeTruthy();
    } finally {
      await stack.startControlPlane();
    }
  });

  it("bounds the requests one caller may hold waiting, answering the rest at once", async () => {
    const bounded = await stack.addGateway({ ...gatewayOidc, approvals: { maxWaitingPerSubject: 1 } });
    await startConnectionAgent("llama", openaiRuntime, [bounded], "bounded-agent");
    await waitFor(() => bounded.pool.connectedCount() === 1, { what: "the agent at the bounded replica" });
    const client = await openai("researcher", bounded, { prefer: "wait=30" });
    const first = refusal(client.chat.completions.create(risky(`${RISKY}, first of two`)));
    await waitFor(() => bounded.store.approvals.waiting === 1, { what: "the first request to wait" });
    const startedAt = performance.now();
    const second = await refusal(client.chat.completions.create(risky(`${RISKY}, second of two`)));
    expect(second.code).toBe("approval_required");
    // Answered at once, without the preference applied.
    expect(performance.now() - startedAt).toBeLessThan(5_000);
    expect(second.headers?.get("preference-applied")).toBeNull();
    expect(bounded.store.approvals.waiting).toBe(1);
    // Another caller still gets their wait.
    const other = refusal(
      (await openai("researchingApprover", bounded, { prefer: "wait=1" })).chat.completions.create(risky()),
    );
    await waitFor(() => bounded.store.approvals.waiting === 2, { what: "another caller's request to wait" });
    expect((await other).code).toBe("approval_required");
    const id = (second.error as { approval_id: string }).approval_id;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    // The first is released when its approval is denied.
    const pending = await api("approver", "GET", "/approvals?status=pending&subject=rita");
    const firstId = pending.body.items.find((item: Json) => item.id !== id && item.model === MODEL)?.id;
    const detail = await api("approver", "GET", `/approvals/${firstId}`);
    expect(detail.body.prompt).toContain("first of two");
    expect((await decide("approver", firstId, "deny", "one at a time")).status).toBe(200);
    expect((await first).code).toBe("approval_denied");
  });

  it("needs every policy's approval when another policy's rule holds a request a guarded grant admits", async () => {
    // A second analysts' policy: smaller answers, and exports need the security team's yes.
    const exports = await stack.admin("POST", "/policies", {
      name: "analysts-exports",
      subjects: { groups: ["analysts"] },
      resources: [{ connection: "llama" }],
      operations: ["inference"],
      limits: { maxTokens: 10 },
      promptRules: [{ pattern: "export", flags: "i", action: "require_approval", description: "exports" }],
      approval: { approverGroups: ["security"] },
    });
    expect(exports.status).toBe(201);
    await waitFor(() => stack.gateway.store.policies.size === 3, { what: "the third policy at the gateway" });
    // Only the guarded grant allows 500 tokens; the other policy's rule matches the prompt.
    const request = { ...risky("export the quarterly table"), max_tokens: 500 };
    const client = await openai("otherAnalyst");
    const first = await refusal(client.chat.completions.create(request));
    expect(first.message).toContain('rule "exports" of policy "analysts-exports"');
    const ruleApproval = (first.error as { approval_id: string }).approval_id;
    expect((await decide("approver", ruleApproval, "approve")).status).toBe(200);
    // One yes is not enough: the guarded grant's own approval is asked next.
    const second = await refusal(client.chat.completions.create(request));
    expect(second.message).toContain('policy "analysts-guarded" grants this only with approval');
    const grantApproval = (second.error as { approval_id: string }).approval_id;
    expect(grantApproval).not.toBe(ruleApproval);
    expect((await decide("approver", grantApproval, "approve")).status).toBe(200);
    const answer = await client.chat.completions.create(request).withResponse();
    expect(answer.data.choices[0]?.message.content).toBeTruthy();
    const session = await storedSession(answer.response.headers.get("x-modelgate-session") ?? "");
    expect(session.decision).toBe("approved");
    expect(session.details.approvals.map((approval: Json) => [approval.id, approval.grant]).sort()).toEqual(
      [
        [ruleApproval, "request"],
        [grantApproval, "window"],
      ].sort(),
    );
  });
});
