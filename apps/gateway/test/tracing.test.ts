// Tracing end to end: the built gateway and agent as processes, exporting
// OTLP/HTTP (JSON) to a receiver in this process, in front of a runtime
// fixture. A caller's trace is continued gateway → agent → runtime, every
// stage has its span with the GenAI attributes, nothing a caller wrote or
// was answered (or their key) is in any span; and without an endpoint
// nothing is exported and nothing changes for callers.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AUDIT_QUEUE } from "@modelgate/audit";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { Queue } from "bullmq";
import OpenAI from "openai";
import { type AgentProcess, type GatewayProcess, startAgentProcess, startGatewayProcess } from "./processes.js";
import { inferences, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** This file's audit queue on the shared Redis, emptied at the end (nothing consumes it here). */
const AUDIT_PREFIX = `tracing-test-${randomBytes(4).toString("hex")}`;
const PROMPT = "Summarise the quarterly figures for Zanzibar-Project-7731";
const ANSWER = "Sure: write to jane.doe@example.com about it, the figures are fine.";
const EMAIL = "jane.doe@example.com";

/** One span as OTLP/JSON carries it, with its resource's service.name. */
interface ExportedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
}

const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 };

/** An OTLP/HTTP receiver (POST /v1/traces, JSON), keeping every span and every raw body. */
async function startReceiver(): Promise<{ url: string; spans: ExportedSpan[]; bodies: string[]; server: Server }> {
  const spans: ExportedSpan[] = [];
  const bodies: string[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    if (req.method !== "POST" || req.url !== "/v1/traces" || !String(req.headers["content-type"]).includes("json")) {
      res.writeHead(400).end();
      return;
    }
    bodies.push(text);
    // biome-ignore lint/suspicious/noExplicitAny: OTLP/JSON, asserted on below
    const request = JSON.parse(text) as { resourceSpans: any[] };
    for (const resourceSpans of request.resourceSpans) {
      const resource = attributesOf(resourceSpans.resource?.attributes);
      for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
        for (const span of scopeSpans.spans ?? []) {
          spans.push({
            service: String(resource["service.name"]),
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? "",
            name: span.name,
            kind: span.kind,
            attributes: attributesOf(span.attributes),
            status: span.status ?? {},
          });
        }
      }
    }
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, bodies, server };
}

function attributesOf(
  list: { key: string; value: Record<string, unknown> }[] | undefined,
): Record<string, string | number | boolean> {
  const result: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if ("stringValue" in value) result[key] = value.stringValue as string;
    else if ("intValue" in value) result[key] = Number(value.intValue);
    else if ("boolValue" in value) result[key] = value.boolValue as boolean;
    else if ("doubleValue" in value) result[key] = value.doubleValue as number;
  }
  return result;
}

let stack: Stack;
let runtime: RuntimeFixture;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
const gateways: GatewayProcess[] = [];
const agents: AgentProcess[] = [];

/** A gateway process and an agent process for "llama", with `env` added to both. */
async function startPair(name: string, env: { gateway: Record<string, string>; agent: Record<string, string> }) {
  const gateway = await startGatewayProcess({
    MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
    MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
    MODELGATE_REDIS_URL: REDIS_URL,
    MODELGATE_AUDIT_QUEUE_PREFIX: AUDIT_PREFIX,
    ...env.gateway,
  });
  gateways.push(gateway);
  const { token } = await stack.issueAgentToken("llama", name);
  const agent = await startAgentProcess({
    MODELGATE_GATEWAY_URLS: `grpc://${gateway.tunnel}`,
    MODELGATE_AGENT_TOKEN: token,
    MODELGATE_RUNTIME_URL: runtime.url,
    MODELGATE_RUNTIME_API_KEY: RUNTIME_API_KEY,
    ...env.agent,
  });
  agents.push(agent);
  await waitFor(
    async () => {
      const ready = (await fetch(`${gateway.ops}/readyz`).then((response) => response.json())) as {
        status: string;
        agents: number;
        policies: number;
      };
      return ready.status === "ready" && ready.agents > 0 && ready.policies === 1;
    },
    { timeoutMs: 15_000, what: "the gateway to hold the policy and the agent" },
  );
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
  return { gateway, agent, client };
}

/** Exports to `receiver`, quickly: a short batch delay, JSON so the test can read it. */
const exporting = (serviceName?: string) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  OTEL_BSP_SCHEDULE_DELAY: "20",
  ...(serviceName ? { OTEL_SERVICE_NAME: serviceName } : {}),
});

beforeAll(async () => {
  receiver = await startReceiver();
  stack = await startStack({}, { grantEveryone: false });
  runtime = await stack.addConnection("llama", { fixture: { completionText: ANSWER } });
  const created = await stack.admin("POST", "/policies", {
    name: "masked-llama",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    masking: { entities: ["EMAIL"], style: "label" },
  });
  expect(created.status).toBe(201);
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await agent.stop();
  for (const gateway of gateways) await gateway.stop();
  await stack?.close();
  receiver?.server.close();
  const queue = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: AUDIT_PREFIX });
  await queue.obliterate({ force: true });
  await queue.close();
});

/** The spans of one trace, once `count` of them have arrived. */
async function traceOf(traceId: string, count: number): Promise<ExportedSpan[]> {
  await waitFor(() => receiver.spans.filter((span) => span.traceId === traceId).length >= count, {
    timeoutMs: 10_000,
    what: `${count} spans of trace ${traceId}`,
  });
  return receiver.spans.filter((span) => span.traceId === traceId);
}

function only(spans: ExportedSpan[], name: string): ExportedSpan {
  const found = spans.filter((span) => span.name === name);
  expect(found.map((span) => span.name)).toEqual([name]);
  return found[0] as ExportedSpan;
}

/** The runtime's record of the latest inference, and the traceparent it received. */
function lastTraceparent(): string | undefined {
  const latest = inferences(runtime).at(-1);
  return latest?.headers.traceparent as string | undefined;
}

describe("with OTEL_EXPORTER_OTLP_ENDPOINT set", () => {
  let client: OpenAI;

  beforeAll(async () => {
    ({ client } = await startPair("traced-agent", { gateway: exporting(), agent: exporting() }));
  }, 60_000);

  /** Checks the whole tree of one request and returns its spans by name. */
  async function checkTree(traceId: string, sessionId: string) {
    // gateway: request, authenticate, policy, queue_wait, agent; agent: agent.request, runtime, masking.
    const spans = await traceOf(traceId, 8);
    expect(spans.map((span) => span.name).sort()).toEqual(
      [
        "POST /v1/chat/completions",
        "authenticate",
        "policy",
        "queue_wait",
        "agent",
        "agent.request",
        "runtime",
        "masking",
      ].sort(),
    );
    const request = only(spans, "POST /v1/chat/completions");
    const authenticate = only(spans, "authenticate");
    const policy = only(spans, "policy");
    const queueWait = only(spans, "queue_wait");
    const agent = only(spans, "agent");
    const agentRequest = only(spans, "agent.request");
    const runtimeCall = only(spans, "runtime");
    const masking = only(spans, "masking");
    for (const span of [request, authenticate, policy, queueWait, agent])
      expect(span.service).toBe("modelgate-gateway");
    for (const span of [agentRequest, runtimeCall, masking]) expect(span.service).toBe("modelgate-agent");

    expect(request.kind).toBe(KIND.SERVER);
    for (const span of [authenticate, policy, queueWait]) {
      expect(span.kind).toBe(KIND.INTERNAL);
      expect(span.parentSpanId).toBe(request.spanId);
    }
    expect(agent).toMatchObject({ kind: KIND.CLIENT, parentSpanId: request.spanId });
    expect(agentRequest).toMatchObject({ kind: KIND.SERVER, parentSpanId: agent.spanId });
    expect(runtimeCall).toMatchObject({ kind: KIND.CLIENT, parentSpanId: agentRequest.spanId });
    expect(masking).toMatchObject({ kind: KIND.INTERNAL, parentSpanId: agentRequest.spanId });

    expect(request.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/v1/chat/completions",
      "http.response.status_code": 200,
      "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "demo-chat",
      "modelgate.connection": "llama",
      "modelgate.operation": "inference",
      "modelgate.decision": "masked",
      "modelgate.session_id": sessionId,
    });
    expect(request.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
    expect(request.attributes["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
    expect(policy.attributes).toMatchObject({ "modelgate.decision": "allowed" });
    expect(agent.attributes).toMatchObject({ "http.response.status_code": 200 });
    expect(agentRequest.attributes).toMatchObject({
      "modelgate.session_id": sessionId,
      "modelgate.operation": "inference",
      "modelgate.agent.outcome": "completed",
    });
    expect(runtimeCall.attributes).toMatchObject({ "http.request.method": "POST", "http.response.status_code": 200 });
    expect(masking.attributes).toMatchObject({
      "modelgate.masking.style": "label",
      "modelgate.masked.EMAIL": 1,
      "modelgate.masked_total": 1,
    });
    // The runtime was called as a child of the agent's runtime span, sampled.
    expect(lastTraceparent()).toBe(`00-${traceId}-${runtimeCall.spanId}-01`);
    return { request };
  }

  it("continues a caller's trace through gateway, agent and runtime, with a span per stage", async () => {
    const traceId = randomBytes(16).toString("hex");
    const callerSpan = randomBytes(8).toString("hex");
    const { data, response } = await client.chat.completions
      .create(
        { model: "llama/demo-chat", messages: [{ role: "user", content: PROMPT }] },
        { headers: { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: "caller=abc" } },
      )
      .withResponse();
    expect(data.choices[0]?.message.content).toBe(ANSWER.replace(EMAIL, "[EMAIL]"));
    const sessionId = response.headers.get("x-modelgate-session") as string;

    const { request } = await checkTree(traceId, sessionId);
    expect(request.parentSpanId).toBe(callerSpan);
    // The caller's tracestate travels with its trace; its traceparent never reaches the runtime as sent.
    expect(inferences(runtime).at(-1)?.headers.tracestate).toBe("caller=abc");
  });

  it("starts a trace for a request without one, and for one whose traceparent is malformed", async () => {
    for (const headers of [{}, { traceparent: "00-not-a-trace-01" }]) {
      const before = new Set(receiver.spans.map((span) => span.traceId));
      const { response } = await client.chat.completions
        .create({ model: "llama/demo-chat", messages: [{ role: "user", content: PROMPT }] }, { headers })
        .withResponse();
      expect(response.status).toBe(200);
      const sessionId = response.headers.get("x-modelgate-session") as string;
      const traceparent = lastTraceparent() as string;
      const traceId = traceparent.split("-")[1] as string;
      expect(before.has(traceId)).toBe(false);
      const { request } = await checkTree(traceId, sessionId);
      expect(request.parentSpanId).toBe("");
    }
  });

  it("puts the refusal's code on the stage that refused", async () => {
    const traceId = randomBytes(16).toString("hex");
    const refused = await fetch(`${gateways[0]?.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer mg_${"x".repeat(32)}`,
        "content-type": "application/json",
        traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
      },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: PROMPT }] }),
    });
    expect(refused.status).toBe(401);
    const spans = await traceOf(traceId, 2);
    expect(spans.map((span) => span.name).sort()).toEqual(["POST /v1/chat/completions", "authenticate"]);
    expect(only(spans, "authenticate").attributes).toMatchObject({ "modelgate.error_code": "unauthenticated" });
    expect(only(spans, "POST /v1/chat/completions").attributes).toMatchObject({
      "http.response.status_code": 401,
      "modelgate.decision": "denied",
      "modelgate.error_code": "unauthenticated",
    });
  });

  it("never exports a prompt, an answer, a credential or a caller's identity", () => {
    // Every export so far, raw: the requests above sent PROMPT, were answered ANSWER (with an email).
    const exported = receiver.bodies.join("\n");
    expect(exported.length).toBeGreaterThan(0);
    for (const secret of [PROMPT, "Zanzibar", ANSWER, EMAIL, "[EMAIL]", stack.apiKey, RUNTIME_API_KEY]) {
      expect(exported).not.toContain(secret);
    }
  });
});

describe("without an endpoint", () => {
  it("exports nothing and serves as before, passing the caller's traceparent on untouched", async () => {
    const exportedBefore = receiver.bodies.length;
    // The gateway has no endpoint; the agent has one but OTEL_SDK_DISABLED.
    const { gateway, agent, client } = await startPair("untraced-agent", {
      gateway: { OTEL_SERVICE_NAME: "untraced-gateway" },
      agent: { ...exporting("untraced-agent"), OTEL_SDK_DISABLED: "true" },
    });
    const traceparent = `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
    const { data, response } = await client.chat.completions
      .create({ model: "llama/demo-chat", messages: [{ role: "user", content: PROMPT }] }, { headers: { traceparent } })
      .withResponse();
    expect(response.status).toBe(200);
    expect(data.choices[0]?.message.content).toBe(ANSWER.replace(EMAIL, "[EMAIL]"));
    // Nothing of tracing happens: the runtime gets what it always got.
    expect(lastTraceparent()).toBe(traceparent);
    expect(gateway.lines.some((line) => line.includes('"tracing":false'))).toBe(true);
    expect(agent.lines.some((line) => line.includes('"tracing":false'))).toBe(true);
    // Stopped, the processes have flushed whatever they had: nothing.
    await agent.stop();
    await gateway.stop();
    expect(receiver.bodies.slice(exportedBefore).filter((body) => body.includes("untraced"))).toEqual([]);
    expect(receiver.spans.some((span) => span.traceId === traceparent.split("-")[1])).toBe(false);
  });
});
