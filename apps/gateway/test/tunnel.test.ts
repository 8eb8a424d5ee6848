// The agent tunnel under load and failure: load sharing, an agent killed
// mid-load, revocation, draining, deadlines and per-request flow control.
import { once } from "node:events";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { inferences, type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;

beforeEach(async () => {
  stack = await startStack({ upstreamTimeoutMs: 3_000 });
});

afterEach(async () => {
  await stack?.close();
});

function openai() {
  return new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
}

function chat(client: OpenAI, headers: Record<string, string> = {}, maxTokens?: number) {
  return client.chat.completions.create(
    {
      model: "llama/demo-chat",
      messages: [{ role: "user", content: "hi" }],
      ...(maxTokens ? { max_tokens: maxTokens } : {}),
    },
    { headers },
  );
}

/** Collects a whole streamed answer and says how it ended. */
async function streamOutcome(client: OpenAI, headers: Record<string, string>): Promise<string> {
  try {
    const stream = await client.chat.completions.create(
      { model: "llama/demo-chat", messages: [{ role: "user", content: "stream" }], stream: true },
      { headers },
    );
    let finish: string | null | undefined;
    for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish;
    return finish === "stop" ? "complete" : `truncated (${finish})`;
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

describe("load sharing and failover", () => {
  it("spreads concurrent requests over two agents", async () => {
    const runtimeA = await stack.addConnection("llama");
    const runtimeB = await startSecondRuntime();
    await stack.addAgent("llama", runtimeA, { capacity: 4 });
    await stack.addAgent("llama", runtimeB, { capacity: 4 });
    const client = openai();
    await Promise.all(Array.from({ length: 16 }, () => chat(client, { "x-fixture-delay-ms": "50" })));
    const servedByA = inferences(runtimeA).length;
    const servedByB = inferences(runtimeB).length;
    expect(servedByA).toBeGreaterThanOrEqual(4);
    expect(servedByB).toBeGreaterThanOrEqual(4);
    expect(servedByA + servedByB).toBe(16);
  });

  it("loses no request that had not started when an agent process is killed mid-load", async () => {
    const runtimeA = await stack.addConnection("llama");
    const runtimeB = await startSecondRuntime();
    const doomed = await stack.addAgent("llama", runtimeA, { capacity: 4, process: true });
    await stack.addAgent("llama", runtimeB, { capacity: 4 });
    const client = openai();
    // 24 streams of ~300 ms each on 8 slots: when the agent dies, some of its
    // requests are streaming, and queued ones wait for a slot.
    // Each request is tagged with an end-to-end header the runtimes record.
    const outcomes = Array.from({ length: 24 }, (_, index) =>
      streamOutcome(client, { "x-fixture-chunks": "15", "x-fixture-interval-ms": "20", "x-test-id": String(index) }),
    );
    await waitFor(() => inferences(runtimeA).length >= 4, { what: "the doomed agent to be busy" });
    doomed.child?.kill("SIGKILL");
    const results = await Promise.all(outcomes);

    // Every request either completed or failed loudly; none was cut short
    // and delivered as a success.
    for (const result of results) expect(result).toMatch(/^(complete|error: )/);
    // Only requests the killed agent had already handed to its runtime may
    // fail; everything else was retried on the surviving agent.
    const startedOnDoomed = new Set(inferences(runtimeA).map((request) => request.headers["x-test-id"]));
    const failedIds = results.flatMap((result, index) => (result === "complete" ? [] : [String(index)]));
    for (const id of failedIds) expect(startedOnDoomed).toContain(id);
    expect(inferences(runtimeB).length).toBeGreaterThan(0);
    expect(results.filter((result) => result === "complete").length).toBeGreaterThan(24 - 8);
  });
});

async function startSecondRuntime() {
  // A second runtime process for the same connection: agents are told apart
  // by which runtime receives their requests.
  const { startRuntimeFixture } = await import("@modelgate/runtime-fixture");
  const { RUNTIME_API_KEY } = await import("./stack.js");
  const runtime = await startRuntimeFixture({ requiredBearer: RUNTIME_API_KEY, models: ["demo-chat", "demo-embed"] });
  afterCleanup.push(() => runtime.close());
  return runtime;
}
const afterCleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of afterCleanup.splice(0)) await cleanup();
});

describe("agent lifecycle", () => {
  it("shows the agent's tunnel state, in-flight count and heartbeat in GET /agents", async () => {
    const runtime = await stack.addConnection("llama");
    const agent = await stack.addAgent("llama", runtime, { capacity: 3 });
    const slow = chat(openai(), { "x-fixture-delay-ms": "1500" });
    await waitFor(
      async () => {
        const { body } = await stack.admin("GET", "/agents");
        const view = body.items.find((item: { id: string }) => item.id === agent.id);
        return view?.tunnel.state === "connected" && view.tunnel.inFlight === 1 && view.tunnel.runtimeHealthy;
      },
      { what: "GET /agents to show one request in flight" },
    );
    const { body } = await stack.admin("GET", "/agents");
    const view = body.items.find((item: { id: string }) => item.id === agent.id);
    expect(view.tunnel).toMatchObject({ state: "connected", capacity: 3, runtimeHealthy: true });
    expect(Date.now() - Date.parse(view.tunnel.lastHeartbeatAt)).toBeLessThan(5_000);
    await slow;

    await agent.stop();
    await waitFor(
      async () => {
        const listed = await stack.admin("GET", "/agents");
        return listed.body.items.find((item: { id: string }) => item.id === agent.id)?.tunnel.state === "disconnected";
      },
      { what: "the agent to show as disconnected" },
    );
  });

  it("disconnects an agent whose token is revoked, and refuses it on reconnect", async () => {
    const runtime = await stack.addConnection("llama");
    const agent = await stack.addAgent("llama", runtime);
    expect((await stack.admin("DELETE", `/agents/${agent.id}`)).status).toBe(204);
    await waitFor(() => ![...stack.gateway.pool.tunnels()].some((tunnel) => tunnel.agentId === agent.id), {
      timeoutMs: 2_000,
      what: "the revoked agent to be disconnected",
    });
    const refused = await chat(openai()).catch((error: unknown) => error);
    expect((refused as { status?: number }).status).toBe(503);
    await waitFor(() => agent.logs.some((line) => line.includes("unknown or revoked agent token")), {
      what: "the agent to be told its token was refused",
    });
  });

  it("refuses a token nobody issued with UNAUTHENTICATED; the agent says so loudly and keeps trying, slowly", async () => {
    const runtime = await stack.addConnection("llama");
    const { startTestAgent } = await import("./agents.js");
    const { generateSecret } = await import("@modelgate/core");
    const impostor = await startTestAgent({
      id: "impostor",
      token: generateSecret("mgagent_"),
      gatewayAddress: stack.gateway.tunnelAddress,
      runtimeUrl: runtime.url,
    });
    try {
      const refusals = () =>
        impostor.logs
          .filter((line) => line.includes('"code":"UNAUTHENTICATED"'))
          .map((line) => JSON.parse(line) as { level: string; retryInMs: number });
      await waitFor(() => refusals().length >= 2, { what: "two refusals" });
      expect([...stack.gateway.pool.tunnels()]).toHaveLength(0);
      // At error, every time; and a refused token waits at least half a
      // second (1 s, doubling to a minute), though this agent's reconnects
      // are otherwise set to 50-500 ms.
      for (const refusal of refusals()) {
        expect(refusal.level).toBe("error");
        expect(refusal.retryInMs).toBeGreaterThanOrEqual(500);
      }
    } finally {
      await impostor.stop();
    }
  });

  it("holds a request for MODELGATE_AGENT_WAIT_MS while the connection's agent (re)connects", async () => {
    const waiting = await startStack({ agentWaitMs: 5_000 });
    try {
      const runtime = await waiting.addConnection("llama");
      const client = new OpenAI({ baseURL: `${waiting.gateway.url}/v1`, apiKey: waiting.apiKey, maxRetries: 0 });
      const answer = chat(client);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await waiting.addAgent("llama", runtime);
      expect((await answer).choices[0]?.finish_reason).toBe("stop");
    } finally {
      await waiting.close();
    }
  });

  it("lets one agent token hold at most 4 tunnels on a gateway", async () => {
    const runtime = await stack.addConnection("llama");
    const { id, token } = await stack.issueAgentToken("llama", "cloned");
    const { startTestAgent } = await import("./agents.js");
    const clones = await Promise.all(
      Array.from({ length: 5 }, () =>
        startTestAgent({
          id,
          token,
          gatewayAddress: stack.gateway.tunnelAddress,
          runtimeUrl: runtime.url,
          capacity: 2,
        }),
      ),
    );
    try {
      const tunnelsOf = () => [...stack.gateway.pool.tunnels()].filter((tunnel) => tunnel.agentId === id).length;
      await waitFor(() => tunnelsOf() === 4, { what: "four tunnels" });
      await waitFor(() => clones.some((clone) => clone.logs.some((line) => line.includes("RESOURCE_EXHAUSTED"))), {
        what: "the fifth to be refused",
      });
      expect(tunnelsOf()).toBe(4);
    } finally {
      for (const clone of clones) await clone.stop();
    }
  });

  it("drains: in-flight requests finish, new ones go elsewhere", async () => {
    const runtime = await stack.addConnection("llama");
    const draining = await stack.addAgent("llama", runtime);
    const inFlight = streamOutcome(openai(), { "x-fixture-chunks": "20", "x-fixture-interval-ms": "25" });
    await waitFor(() => runtime.inFlight() === 1, { what: "the request to start" });
    const drained = draining.agent?.drain(5_000);
    await waitFor(() => [...stack.gateway.pool.tunnels()].every((tunnel) => tunnel.state === "draining"), {
      what: "the gateway to see the agent draining",
    });
    // No other agent: a new request is refused at once rather than sent to a draining agent.
    const refused = await chat(openai()).catch((error: unknown) => error);
    expect((refused as { status?: number }).status).toBe(503);
    expect(await inFlight).toBe("complete");
    expect(await drained).toBe(true);
  });
});

describe("deadlines and flow control", () => {
  it("answers 504 upstream_timeout and stops the runtime when the deadline passes", async () => {
    const runtime = await stack.addConnection("llama");
    await stack.addAgent("llama", runtime);
    const error = await chat(openai(), { "x-fixture-delay-ms": "10000" }).catch((caught: unknown) => caught);
    expect((error as { status?: number }).status).toBe(504);
    expect((error as { code?: string }).code).toBe("upstream_timeout");
    const request = inferences(runtime).at(-1);
    await runtime.waitForAbort(request?.id ?? -1, 1_000);
  });

  it("answers a whole 504 when the runtime sends a non-streamed answer's head and then nothing", async () => {
    await stack.addConnection("llama");
    // A runtime that answers its health check, then sends the head of every
    // other answer at once and never its body.
    const stalling = createServer((req, res) => {
      if (req.url === "/health") return res.end("ok");
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
    });
    stalling.listen(0, "127.0.0.1");
    await once(stalling, "listening");
    try {
      const { port } = stalling.address() as AddressInfo;
      await stack.addAgent("llama", { url: `http://127.0.0.1:${port}` } as RuntimeFixture);
      const error = await chat(openai()).catch((caught: unknown) => caught);
      // Not a 200 cut off when the deadline passed: the agent holds a
      // non-streamed answer's head until its body (or its end) is there.
      expect((error as { status?: number }).status).toBe(504);
      expect((error as { code?: string }).code).toBe("upstream_timeout");
    } finally {
      stalling.closeAllConnections();
      stalling.close();
    }
  });

  it("a client that stops reading slows only its own request, and loses nothing", async () => {
    // Several MB of SSE that the client stops reading after the head: the
    // socket buffers and the request's HTTP/2 window fill up.
    const runtime = await stack.addConnection("llama", { fixture: { completionText: "word ".repeat(400_000) } });
    await stack.addAgent("llama", runtime, { capacity: 4 });
    const url = new URL(stack.gateway.url);
    const stalled = httpRequest({
      host: url.hostname,
      port: url.port,
      method: "POST",
      path: "/v1/chat/completions",
      headers: {
        authorization: `Bearer ${stack.apiKey}`,
        "content-type": "application/json",
        "x-fixture-chunks": "2000",
        "x-fixture-interval-ms": "0",
      },
    });
    const response = await new Promise<import("node:http").IncomingMessage>((resolve) => {
      stalled.on("response", (incoming) => {
        incoming.pause();
        resolve(incoming);
      });
      stalled.end(
        JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "x" }], stream: true }),
      );
    });

    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 3 }, () => chat(openai(), {}, 5)));
    expect(answers.every((answer) => answer.choices[0]?.finish_reason === "length")).toBe(true);
    expect(performance.now() - started).toBeLessThan(2_000);

    // The stalled reader resumes and gets the whole stream, intact.
    const chunks: Buffer[] = [];
    response.on("data", (chunk: Buffer) => chunks.push(chunk));
    response.resume();
    await new Promise((resolve) => response.on("end", resolve));
    const events = Buffer.concat(chunks).toString("utf8").split("\n\n").filter(Boolean);
    expect(events.at(-1)).toBe("data: [DONE]");
    const content = events
      .slice(0, -1)
      .map((event) => JSON.parse(event.slice("data: ".length)).choices[0]?.delta?.content ?? "")
      .join("");
    expect(content).toBe("word ".repeat(400_000));
  });
});

describe("agent process", () => {
  it("on SIGTERM finishes its in-flight request, then exits 0", async () => {
    const runtime = await stack.addConnection("llama");
    const agent = await stack.addAgent("llama", runtime, { process: true });
    const inFlight = streamOutcome(openai(), { "x-fixture-chunks": "20", "x-fixture-interval-ms": "25" });
    await waitFor(() => inferences(runtime).length === 1, { what: "the request to reach the runtime" });
    agent.child?.kill("SIGTERM");
    expect(await inFlight).toBe("complete");
    const [code] = (await agent.exited) ?? [];
    expect(code).toBe(0);
    expect(agent.logs.join("\n")).toContain("drained, exiting");
  });
});
