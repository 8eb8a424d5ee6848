// Quotas end to end through the official `openai` client: the budget in
// response headers, the 429 once it is used up, a stream that crosses the
// limit finishing whole, a group's shared budget, and two gateway processes
// sharing one quota in Redis.
import { randomBytes } from "node:crypto";
import { startAgent } from "@modelgate/agent";
import { AUDIT_QUEUE } from "@modelgate/audit";
import { startRuntimeFixture } from "@modelgate/runtime-fixture";
import { Queue } from "bullmq";
import OpenAI from "openai";
import { type GatewayProcess, startGatewayProcess } from "./processes.js";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  const runtime = await stack.addConnection("llama");
  await stack.addAgent("llama", runtime);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

/** A policy for one group (with its quota), and a client with a key of that group. */
async function caller(group: string, quota: Record<string, unknown>, { policy = true } = {}) {
  if (policy) {
    const created = await stack.admin("POST", "/policies", {
      name: `quota-${group}`,
      subjects: { groups: [group] },
      resources: [{ connection: "llama" }],
      operations: ["inference"],
      quota,
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await waitFor(
      () =>
        stack.gateway.store.policies.evaluate(
          { userId: "probe", groups: [group] },
          { connection: "llama", model: "demo-chat", operation: "inference", format: "none" },
        ).decision === "allowed",
      { what: `policy ${id} to reach the gateway` },
    );
  }
  const key = await stack.admin("POST", "/api-keys", {
    name: `${group}-${randomBytes(3).toString("hex")}`,
    groups: [group],
  });
  expect(key.status).toBe(201);
  const client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: key.body.key, maxRetries: 0 });
  // The key reaches the gateway by push.
  await waitFor(
    async () => {
      try {
        await client.models.list();
        return true;
      } catch (error) {
        return !(error instanceof OpenAI.AuthenticationError);
      }
    },
    { what: "the API key to reach the gateway" },
  );
  return client;
}

const ask = (client: OpenAI, content = "hello") =>
  client.chat.completions.create({ model: "llama/demo-chat", messages: [{ role: "user", content }] }).withResponse();

async function refusal(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (error) {
    if (error instanceof OpenAI.APIError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("a token quota", () => {
  it("tells the budget in x-ratelimit headers, charges the tokens the runtime reported, then refuses with 429 quota_exceeded", async () => {
    const client = await caller("tokens", { tokens: 250, per: "day", scope: "subject" });
    const first = await ask(client);
    const used = first.data.usage?.total_tokens ?? 0;
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThan(125);
    expect(first.response.headers.get("x-ratelimit-limit-tokens")).toBe("250");
    expect(first.response.headers.get("x-ratelimit-remaining-tokens")).toBe("250");
    expect(first.response.headers.get("x-ratelimit-reset-tokens")).toMatch(/^(\d+h)?(\d+m)?\d+s$/);
    // The headers of the second answer count the first answer's tokens.
    const second = await ask(client);
    expect(second.response.headers.get("x-ratelimit-remaining-tokens")).toBe(String(250 - used));

    // Once the settled tokens reach 250, nothing more is admitted today.
    let error: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 10 && !error; i++) {
      error = await ask(client).then(
        () => undefined,
        (thrown: unknown) => {
          if (thrown instanceof OpenAI.APIError) return thrown;
          throw thrown;
        },
      );
    }
    if (!error) throw new Error("the quota never refused");
    expect(error.status).toBe(429);
    expect(error.code).toBe("quota_exceeded");
    expect(error.message).toMatch(/quota of 250 tokens per day used up; it renews in/);
    const endOfDay = new Date();
    endOfDay.setUTCHours(24, 0, 0, 0);
    const retryAfter = Number(error.headers?.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((endOfDay.getTime() - Date.now()) / 1000) + 1);
    expect(error.headers?.get("x-ratelimit-remaining-tokens")).toBe("0");
    expect(error.headers?.get("x-ratelimit-limit-tokens")).toBe("250");
  });

  it("lets a stream that crosses the quota finish whole, counts it, and refuses the next request", async () => {
    const client = await caller("streams", { tokens: 5, per: "hour", scope: "subject" });
    const stream = await client.chat.completions.create(
      {
        model: "llama/demo-chat",
        messages: [{ role: "user", content: "tell me everything" }],
        stream: true,
        stream_options: { include_usage: true },
      },
      { headers: { "x-fixture-chunks": "20" } },
    );
    let text = "";
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    // Far beyond 5 tokens, and never cut.
    expect(finish).toBe("stop");
    expect(usage?.total_tokens).toBeGreaterThan(5);
    expect(text.split(/\s+/).filter(Boolean).length).toBe(usage?.completion_tokens);
    const refused = await refusal(ask(client));
    expect(refused.status).toBe(429);
    expect(refused.code).toBe("quota_exceeded");
  });
});

describe("a request quota of a group", () => {
  it("is shared by the group's members: each request of any member counts", async () => {
    const alice = await caller("team", { requests: 3, per: "month", scope: "group" });
    const bob = await caller("team", {}, { policy: false });
    await ask(alice);
    const second = await ask(bob);
    expect(second.response.headers.get("x-ratelimit-remaining-requests")).toBe("1");
    await ask(alice);
    for (const member of [alice, bob]) {
      const refused = await refusal(ask(member));
      expect(refused.status).toBe(429);
      expect(refused.code).toBe("quota_exceeded");
      expect(refused.message).toContain('shared by group "team"');
      expect(refused.headers?.get("x-ratelimit-remaining-requests")).toBe("0");
    }
  });
});

describe("two gateway processes sharing Redis", () => {
  const LIMIT = 30;
  const AUDIT_PREFIX = `quota-test-${randomBytes(4).toString("hex")}`;
  const gateways: GatewayProcess[] = [];
  let stopAgent: (() => Promise<void>) | undefined;
  let apiKey: string;

  beforeAll(async () => {
    const created = await stack.admin("POST", "/policies", {
      name: "replicated-quota",
      subjects: { groups: ["replicas"] },
      resources: [{ connection: "llama" }],
      operations: ["inference"],
      quota: { requests: LIMIT, per: "day", scope: "group" },
    });
    expect(created.status).toBe(201);
    const key = await stack.admin("POST", "/api-keys", { name: "replicas", groups: ["replicas"] });
    apiKey = key.body.key;
    const env = {
      MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
      MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
      MODELGATE_REDIS_URL: REDIS_URL,
      MODELGATE_AUDIT_QUEUE_PREFIX: AUDIT_PREFIX,
      // Leases of a third of what is left: most requests are admitted
      // without a round trip while the quota is far away.
      MODELGATE_QUOTA_RESERVE_FRACTION: "0.3",
      MODELGATE_QUOTA_RESERVE_MAX: "100",
    };
    gateways.push(await startGatewayProcess(env), await startGatewayProcess(env));
    const { token } = await stack.issueAgentToken("llama", "replica-agent");
    const fixture = await startRuntimeFixture({ requiredBearer: RUNTIME_API_KEY, models: ["demo-chat", "demo-embed"] });
    const agent = startAgent({
      gateways: gateways.map((gateway) => ({ address: gateway.tunnel, tls: false })),
      token,
      runtimeUrl: fixture.url,
      runtimeCredential: { kind: "bearer", token: RUNTIME_API_KEY },
      runtimeHealthPath: "/health",
      healthIntervalMs: 500,
      capacity: 8,
      version: "test",
      logger: captureLogger("agent").logger,
      reconnectBackoff: { initialMs: 50, maxMs: 500 },
    });
    stopAgent = async () => {
      await agent.close();
      await fixture.close();
    };
    for (const gateway of gateways) {
      await waitFor(
        async () => {
          const ready = (await fetch(`${gateway.ops}/readyz`).then((response) => response.json())) as {
            status: string;
            agents: number;
          };
          return ready.status === "ready" && ready.agents > 0;
        },
        { timeoutMs: 10_000, what: "the gateway to hold the agent" },
      );
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0 });
      await waitFor(
        async () => {
          try {
            await client.models.list();
            return true;
          } catch {
            return false;
          }
        },
        { what: "the key and policy to reach the gateway process" },
      );
    }
  }, 60_000);

  afterAll(async () => {
    await stopAgent?.();
    for (const gateway of gateways) await gateway.stop();
    const queue = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: AUDIT_PREFIX });
    await queue.obliterate({ force: true });
    await queue.close();
  });

  it("admit exactly the quota between them, leases and all, and count the local admissions", async () => {
    const clients = gateways.map((gateway) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0 }));
    const codes = await Promise.all(
      Array.from({ length: LIMIT * 2 }, (_, index) =>
        ask(clients[index % 2] as OpenAI).then(
          () => "admitted",
          (error: unknown) => (error instanceof OpenAI.APIError ? String(error.code) : "failed"),
        ),
      ),
    );
    expect(codes.filter((code) => code === "admitted")).toHaveLength(LIMIT);
    expect(new Set(codes)).toEqual(new Set(["admitted", "quota_exceeded"]));
    const metrics = await Promise.all(gateways.map((gateway) => fetch(`${gateway.ops}/metrics`).then((r) => r.text())));
    const local = metrics
      .map((text) => Number(text.match(/^modelgate_quota_local_admissions_total (\d+)/m)?.[1] ?? 0))
      .reduce((a, b) => a + b, 0);
    expect(local).toBeGreaterThan(0);
    expect(metrics.join("\n")).toMatch(/^modelgate_quota_refused_total\{scope="group",kind="requests"\} \d+/m);
  });
});

describe("quota alerts", () => {
  it("raises an alert in the control plane at 80 and at 100 percent of a budget, once each", async () => {
    const client = await caller("alerted", { requests: 5, per: "day", scope: "group" });
    for (let i = 0; i < 5; i++) await ask(client);
    expect((await refusal(ask(client))).code).toBe("quota_exceeded");
    expect((await refusal(ask(client))).code).toBe("quota_exceeded");

    type AlertItem = { ruleId: string | null; kind: string; subject: string | null; details: Record<string, unknown> };
    let alerts: AlertItem[] = [];
    await waitFor(
      async () => {
        const listed = await stack.admin("GET", "/alerts?limit=100");
        alerts = (listed.body.items as AlertItem[]).filter(
          (alert) => alert.kind === "quota_threshold" && alert.details.owner === "alerted",
        );
        return alerts.length >= 2;
      },
      { what: "the quota alerts" },
    );
    expect(alerts.map((alert) => alert.details.threshold).sort()).toEqual([100, 80]);
    for (const alert of alerts) {
      expect(alert).toMatchObject({
        ruleId: null,
        subject: null,
        details: { scope: "group", kind: "requests", per: "day", limit: 5, policyName: "quota-alerted" },
      });
    }
    // More refusals in the same window raise nothing more.
    expect((await refusal(ask(client))).code).toBe("quota_exceeded");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const again = await stack.admin("GET", "/alerts?limit=100");
    expect(
      (again.body.items as AlertItem[]).filter(
        (alert) => alert.kind === "quota_threshold" && alert.details.owner === "alerted",
      ),
    ).toHaveLength(2);
  });
});
