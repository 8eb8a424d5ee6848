// Gateway replicas seen from an agent: a DNS name that resolves to every
// replica (a Kubernetes headless Service) gets one tunnel per address,
// follows replicas as they come and go, and verifies TLS against the name;
// and a gateway shutting down (SIGTERM) turns unready first, keeps serving
// while load balancers move its clients, tells its agents it is going,
// finishes what runs, and exits 0.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type RunningAgent, startAgent } from "@modelgate/agent";
import { createStoreTransport } from "@modelgate/audit";
import { generateSecret } from "@modelgate/core";
import { type GatewayOptions, type RunningGateway, startGateway } from "@modelgate/gateway";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { freePort, startGatewayProcess } from "./processes.js";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

let stack: Stack;
let runtime: RuntimeFixture;
const gateways: RunningGateway[] = [];
const agents: RunningAgent[] = [];
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "mg-replicas-"));
  stack = await startStack();
  runtime = await stack.addConnection("llama", { fixture: { streamChunks: 10, chunkIntervalMs: 5 } });
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await agent.close();
  for (const gateway of gateways) await gateway.close(1_000);
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A gateway replica in this process, on the stack's control plane, its tunnel on `tunnelHost:tunnelPort`. */
async function replica(tunnelHost: string, tunnelPort: number, overrides: Partial<GatewayOptions> = {}) {
  const { logger } = captureLogger("gateway");
  const gateway = await startGateway({
    host: "127.0.0.1",
    port: 0,
    ops: { host: "127.0.0.1", port: 0 },
    tunnelHost,
    tunnelPort,
    controlPlane: { address: stack.controlPlane.grpcAddress, token: stack.gatewayToken },
    maxBodyBytes: 256 * 1024,
    upstreamTimeoutMs: 30_000,
    queueWaitMs: 2_000,
    agentWaitMs: 0,
    heartbeatIntervalMs: 1_000,
    audit: { transport: createStoreTransport({ store: stack.controlPlane.auditStore, logger }) },
    version: "test",
    logger,
    processMetrics: false,
    ...overrides,
  });
  gateways.push(gateway);
  await gateway.configured();
  return gateway;
}

function agentWith(token: string, options: Partial<Parameters<typeof startAgent>[0]>) {
  const { logger, lines } = captureLogger("agent");
  const agent = startAgent({
    gateways: [],
    token,
    runtimeUrl: runtime.url,
    runtimeCredential: { kind: "bearer", token: RUNTIME_API_KEY },
    runtimeHealthPath: "/health",
    healthIntervalMs: 500,
    capacity: 4,
    version: "test",
    logger,
    processMetrics: false,
    ...options,
  });
  agents.push(agent);
  return { agent, logs: lines };
}

const stateAt = (gateway: RunningGateway, agentId: string) =>
  [...gateway.pool.tunnels()].find((tunnel) => tunnel.agentId === agentId)?.state;

async function ask(gateway: { url: string }, headers: Record<string, string> = {}) {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({ model: "llama/demo-chat", stream: true, messages: [{ role: "user", content: "hi" }] }),
  });
  const text = await response.text();
  const complete = response.status === 200 && text.trimEnd().endsWith("data: [DONE]") && !text.includes('"error"');
  return { status: response.status, complete, connection: response.headers.get("connection") };
}

describe("a DNS name for every replica", () => {
  it("opens a tunnel per address, follows replicas as they come and go, and holds on through DNS failures", async () => {
    // Two replicas on one port, as pods behind a headless Service.
    const port = await freePort();
    const [first, second] = [await replica("127.0.0.2", port), await replica("127.0.0.3", port)] as [
      RunningGateway,
      RunningGateway,
    ];
    const { id, token } = await stack.issueAgentToken("llama", "dns-agent");
    for (const gateway of [first, second]) {
      await waitFor(() => gateway.store.agentById(id) !== undefined, { what: "the token at both replicas" });
    }
    let answer: string[] | Error = ["127.0.0.2"];
    const asked: string[] = [];
    const { agent, logs } = agentWith(token, {
      gateways: [{ kind: "dns", host: "gateways.modelgate.test", port, tls: false }],
      resolve: async (host) => {
        asked.push(host);
        if (answer instanceof Error) throw answer;
        return answer;
      },
      resolveIntervalMs: 100,
    });
    await agent.connected();
    expect(asked[0]).toBe("gateways.modelgate.test");
    expect(stateAt(first, id)).toBe("connected");
    expect(stateAt(second, id)).toBeUndefined();
    expect(await ask(first)).toMatchObject({ status: 200, complete: true });

    // A replica appears: it gets a tunnel within an interval.
    answer = ["127.0.0.3", "127.0.0.2"];
    await waitFor(() => stateAt(second, id) === "connected", { what: "a tunnel to the new replica" });
    expect(await ask(second)).toMatchObject({ status: 200, complete: true });

    // A replica disappears while it runs a request: the agent drains that
    // tunnel (no new requests), the request finishes whole, then it closes.
    const slow = ask(first, { "x-fixture-chunks": "20", "x-fixture-interval-ms": "50" });
    await waitFor(() => runtime.inFlight() === 1, { what: "the request at the runtime" });
    answer = ["127.0.0.3"];
    await waitFor(() => stateAt(first, id) === "draining", { what: "the agent to drain the departed replica" });
    expect(await slow).toMatchObject({ status: 200, complete: true });
    await waitFor(() => stateAt(first, id) === undefined, { what: "the departed replica's tunnel to close" });
    expect(agent.tunnels.map((tunnel) => tunnel.address)).toEqual([`127.0.0.3:${port}`]);
    expect(await ask(first)).toMatchObject({ status: 503 });

    // The name stops resolving: the tunnels it last named stay.
    answer = new Error("queryA ESERVFAIL gateways.modelgate.test");
    const failures = () => logs.filter((line) => line.includes("could not resolve the gateways' DNS name")).length;
    await waitFor(() => failures() >= 3, { what: "three failed lookups" });
    expect(stateAt(second, id)).toBe("connected");
    expect(await ask(second)).toMatchObject({ status: 200, complete: true });
    expect(agent.readiness()).toMatchObject({
      ready: true,
      details: { tunnels: [{ gateway: `127.0.0.3:${port}`, name: "gateways.modelgate.test", state: "connected" }] },
    });
  });

  it("verifies a replica's TLS certificate against the DNS name, not the address it dials", async () => {
    // The certificate names only the Service's DNS name, as cert-manager would issue it.
    const certs = makeCertificates("gateways.modelgate.test");
    const gateway = await replica("127.0.0.1", 0, { tunnelTls: { certFile: certs.cert, keyFile: certs.key } });
    const port = Number(gateway.tunnelAddress.split(":").at(-1));
    const { id, token } = await stack.issueAgentToken("llama", "tls-dns-agent");
    await waitFor(() => gateway.store.agentById(id) !== undefined, { what: "the token at the replica" });

    const byName = agentWith(token, {
      gateways: [{ kind: "dns", host: "gateways.modelgate.test", port, tls: true }],
      tunnelTls: { caFile: certs.ca },
      resolve: async () => ["127.0.0.1"],
    });
    await byName.agent.connected();
    expect(stateAt(gateway, id)).toBe("connected");

    // The same replica dialled by its address: the certificate does not name it.
    const byAddress = agentWith(generateSecret("mgagent_"), {
      gateways: [{ address: gateway.tunnelAddress, tls: true }],
      tunnelTls: { caFile: certs.ca },
    });
    await waitFor(() => byAddress.logs.some((line) => line.includes("gateway tunnel closed")), {
      what: "the agent dialling the address to fail",
    });
    expect(byAddress.logs.find((line) => line.includes("gateway tunnel closed"))).toMatch(/altnames|certificate/i);
    await byAddress.agent.close();
  });
});

describe("a gateway shutting down", () => {
  it("turns unready, keeps serving with Connection: close, says Goodbye, finishes its stream and exits 0", async () => {
    const gateway = await startGatewayProcess({
      MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
      MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
      MODELGATE_REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
      MODELGATE_AUDIT_QUEUE_PREFIX: `replicas-${generateSecret("t").slice(-8)}`,
      MODELGATE_SHUTDOWN_DELAY_MS: "1500",
    });
    const { token } = await stack.issueAgentToken("llama", "goodbye-agent");
    const { agent, logs } = agentWith(token, { gateways: [{ address: gateway.tunnel, tls: false }] });
    await agent.connected();
    const readyz = async () => {
      const response = await fetch(`${gateway.ops}/readyz`);
      return { status: response.status, body: (await response.json()) as { draining: boolean } };
    };
    expect((await readyz()).status).toBe(200);

    // 30 chunks 100 ms apart: runs through the whole shutdown delay.
    const long = ask(gateway, { "x-fixture-chunks": "30", "x-fixture-interval-ms": "100" });
    await waitFor(() => runtime.inFlight() === 1, { what: "the long request at the runtime" });
    const exited = new Promise<number | null>((resolve) => gateway.child.once("exit", resolve));
    gateway.child.kill("SIGTERM");

    // Unready first, while still serving, with every answer closing its connection.
    await waitFor(async () => (await readyz()).status === 503, { what: "the gateway to turn unready" });
    expect((await readyz()).body.draining).toBe(true);
    expect(await ask(gateway)).toMatchObject({ status: 200, complete: true, connection: "close" });
    // The agent heard it is going; a new agent is turned away.
    await waitFor(() => agent.tunnels[0]?.state === "leaving", { what: "the agent to hear Goodbye" });
    expect(agent.readiness().ready).toBe(false);
    const late = agentWith(generateSecret("mgagent_"), { gateways: [{ address: gateway.tunnel, tls: false }] });
    await waitFor(() => late.logs.some((line) => line.includes("gateway shutting down")), {
      what: "a late agent to be refused",
    });

    // What ran finishes whole; then the process exits cleanly.
    expect(await long).toMatchObject({ status: 200, complete: true });
    expect(await exited).toBe(0);
    await waitFor(() => logs.some((line) => line.includes("gateway closed the tunnel after its goodbye")), {
      what: "the agent to see the tunnel end",
    });
    const levels = logs.map((line) => JSON.parse(line) as { level: string; msg: string });
    const goodbye = levels.findIndex((line) => line.msg.startsWith("gateway closed the tunnel after its goodbye"));
    // Until the gateway was gone, nothing looked like a failure to the agent.
    expect(levels.slice(0, goodbye).filter((line) => ["warn", "error", "fatal"].includes(line.level))).toEqual([]);
    expect(goodbye).toBeGreaterThan(0);
    await late.agent.close();
  }, 30_000);
});

/** A throwaway CA and a server certificate for one DNS name only (no IP address), made with openssl. */
function makeCertificates(name: string): { ca: string; cert: string; key: string } {
  const file = (base: string) => path.join(dir, base);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-days",
    "1",
    "-subj",
    "/CN=replicas test CA",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  );
  writeFileSync(file("server.ext"), `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth\n`);
  openssl("req", ...ec, "-subj", `/CN=${name}`, "-keyout", file("server.key"), "-out", file("server.csr"));
  openssl(
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    file("server.ext"),
    "-out",
    file("server.pem"),
  );
  return { ca: file("ca.pem"), cert: file("server.pem"), key: file("server.key") };
}
