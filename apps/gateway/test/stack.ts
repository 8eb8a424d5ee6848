// A whole modelgate on loopback for end-to-end tests: control plane on its
// own test database, a gateway, agents and runtime fixtures, all real and
// in this process (agents can also run as child processes).

import { Writable } from "node:stream";
import { type AuditTransport, createStoreTransport } from "@modelgate/audit";
import { type ControlPlaneOptions, type RunningControlPlane, startControlPlane } from "@modelgate/control-plane";
import { createLogger, generateSecret, hashSecret, type Logger } from "@modelgate/core";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { type GatewayOptions, type RunningGateway, startGateway } from "@modelgate/gateway";
import { type RuntimeFixture, type RuntimeFixtureOptions, startRuntimeFixture } from "@modelgate/runtime-fixture";
import { type StartAgentOptions, startTestAgent } from "./agents.js";
import { restartablePort } from "./ports.js";

export const RUNTIME_API_KEY = "runtime-secret-the-caller-never-sees";

/** Log lines of every component, kept for assertions and printed on failure by choice. */
export function captureLogger(name: string): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ name, level: "debug", destination }), lines };
}

export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 5_000, what = "condition" } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface Stack {
  /** The current control plane (replaced by restartControlPlane). */
  controlPlane: RunningControlPlane;
  stopControlPlane(): Promise<void>;
  /** Starts the control plane again on the same ports and database. */
  startControlPlane(): Promise<void>;
  gateway: RunningGateway;
  /** Starts one more gateway on the same control plane (closed with the stack). */
  addGateway(overrides?: Partial<GatewayOptions>): Promise<RunningGateway>;
  /** The control plane's database. */
  databaseUrl: string;
  gatewayToken: string;
  adminToken: string;
  /** An API key for callers. */
  apiKey: string;
  logs: { controlPlane: string[]; gateway: string[] };
  /** Calls the control-plane API as admin. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /**
   * The audit session of an answer (its `x-modelgate-session`), once the
   * control plane has stored it: records travel through the queue, so it
   * is read until it is there.
   */
  // biome-ignore lint/suspicious/noExplicitAny: sessions are parsed JSON, asserted field by field
  storedSession(sessionId: string | null): Promise<any>;
  /** Creates a connection served by a fresh runtime fixture. */
  addConnection(
    name: string,
    options?: { protocol?: string; models?: string[]; fixture?: RuntimeFixtureOptions },
  ): Promise<RuntimeFixture>;
  /** Registers an agent for a connection and starts it in this process, registered with the gateway. */
  addAgent(connection: string, runtime: RuntimeFixture, options?: Partial<StartAgentOptions>): Promise<TestAgent>;
  /** Issues an agent token without starting an agent. */
  issueAgentToken(connection: string, name: string): Promise<{ id: string; token: string }>;
  close(): Promise<void>;
}

type TestAgent = Awaited<ReturnType<typeof startTestAgent>>;

/** Connection names the default grant covers; tests name their connections from these. */
const TEST_CONNECTIONS = ["llama", "idle", "local", "other", "json", "sse"];

export async function startStack(
  gatewayOverrides: Partial<GatewayOptions> = {},
  options: { grantEveryone?: boolean; controlPlane?: Partial<ControlPlaneOptions> } = {},
): Promise<Stack> {
  const database: TestDatabase = await createTestDatabase();
  const adminToken = generateSecret("mgadmin_");
  const gatewayToken = generateSecret("mggateway_");
  const cpLog = captureLogger("control-plane");
  const launchControlPlane = (port: number, grpcPort: number) =>
    startControlPlane({
      host: "127.0.0.1",
      port,
      ops: { host: "127.0.0.1", port: 0 },
      processMetrics: false,
      grpc: { host: "127.0.0.1", port: grpcPort },
      databaseUrl: database.url,
      dbPoolSize: 4,
      adminToken,
      gatewayToken,
      version: "test",
      logger: cpLog.logger,
      ...options.controlPlane,
    });
  // Ports the control plane keeps across restarts (stopControlPlane, startControlPlane).
  let controlPlane = await launchControlPlane(await restartablePort(), await restartablePort());
  let controlPlaneRunning = true;
  const controlPlanePorts = {
    http: Number(new URL(controlPlane.url).port),
    grpc: Number(controlPlane.grpcAddress.split(":").at(-1)),
  };

  const admin: Stack["admin"] = async (method, path, body) => {
    const response = await fetch(`${controlPlane.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };

  const createdKey = await admin("POST", "/api-keys", { name: "e2e", groups: ["everyone"] });
  if (createdKey.status !== 201) throw new Error(`could not create API key: ${JSON.stringify(createdKey.body)}`);
  if (options.grantEveryone !== false) {
    // Default deny: the data-path tests' key may use every operation on
    // every connection they create (policy tests opt out and write their own).
    const granted = await admin("POST", "/policies", {
      name: "e2e-everyone",
      subjects: { groups: ["everyone"] },
      resources: Array.from(TEST_CONNECTIONS, (connection) => ({ connection, models: ["*"] })),
      operations: ["inference", "embeddings", "models.list", "read", "raw"],
    });
    if (granted.status !== 201) throw new Error(`could not create policy: ${JSON.stringify(granted.body)}`);
  }

  const gwLog = captureLogger("gateway");
  // Records go to whichever control plane is running (tests restart it),
  // the way the zero-config process hands them over; while it is stopped,
  // sends fail and the gateway's buffer holds the records.
  const auditTransport: AuditTransport = {
    send(records) {
      if (!controlPlaneRunning) return Promise.reject(new Error("the control plane is stopped"));
      return createStoreTransport({ store: controlPlane.auditStore, logger: gwLog.logger }).send(records);
    },
    async close() {},
  };
  const launchGateway = (overrides: Partial<GatewayOptions>) =>
    startGateway({
      host: "127.0.0.1",
      port: 0,
      ops: { host: "127.0.0.1", port: 0 },
      tunnelHost: "127.0.0.1",
      tunnelPort: 0,
      controlPlane: { address: controlPlane.grpcAddress, token: gatewayToken },
      maxBodyBytes: 256 * 1024,
      upstreamTimeoutMs: 30_000,
      queueWaitMs: 2_000,
      agentWaitMs: 0,
      heartbeatIntervalMs: 1_000,
      audit: { transport: auditTransport, flushTimeoutMs: 5_000 },
      version: "test",
      logger: gwLog.logger,
      processMetrics: false,
      ...overrides,
    });
  const gateway = await launchGateway(gatewayOverrides);
  const extraGateways: RunningGateway[] = [];
  await gateway.configured();
  const apiKey = createdKey.body.key as string;
  await waitFor(
    () =>
      gateway.store.apiKeyByHash(hashSecret(apiKey)) !== undefined &&
      (options.grantEveryone === false || gateway.store.policies.size > 0),
    { what: "the API key and policies to reach the gateway" },
  );

  const fixtures: RuntimeFixture[] = [];
  const agents: TestAgent[] = [];

  const issueAgentToken: Stack["issueAgentToken"] = async (connection, name) => {
    const created = await admin("POST", `/connections/${connection}/agents`, { name });
    if (created.status !== 201) throw new Error(`could not create agent: ${JSON.stringify(created.body)}`);
    const { id, token } = created.body as { id: string; token: string };
    await waitFor(() => gateway.store.agentById(id) !== undefined, { what: "the agent to reach the gateway" });
    return { id, token };
  };

  return {
    get controlPlane() {
      return controlPlane;
    },
    async stopControlPlane() {
      await controlPlane.close();
      controlPlaneRunning = false;
    },
    async startControlPlane() {
      controlPlane = await launchControlPlane(controlPlanePorts.http, controlPlanePorts.grpc);
      controlPlaneRunning = true;
    },
    gateway,
    async addGateway(overrides = {}) {
      const added = await launchGateway(overrides);
      extraGateways.push(added);
      await added.configured();
      return added;
    },
    databaseUrl: database.url,
    gatewayToken,
    adminToken,
    apiKey,
    logs: { controlPlane: cpLog.lines, gateway: gwLog.lines },
    admin,
    async storedSession(sessionId) {
      if (!sessionId) throw new Error("the answer has no session id");
      // biome-ignore lint/suspicious/noExplicitAny: as admin()
      let session: { status: number; body: any } = { status: 0, body: undefined };
      await waitFor(
        async () => {
          session = await admin("GET", `/sessions/${sessionId}`);
          return session.status === 200;
        },
        { timeoutMs: 10_000, what: `session ${sessionId} to be stored` },
      );
      return session.body;
    },
    issueAgentToken,
    async addConnection(name, options = {}) {
      const models = options.models ?? ["demo-chat", "demo-embed"];
      const fixture = await startRuntimeFixture({ requiredBearer: RUNTIME_API_KEY, models, ...options.fixture });
      fixtures.push(fixture);
      const created = await admin("POST", "/connections", {
        name,
        protocol: options.protocol ?? "openai",
        models,
      });
      if (created.status !== 201) throw new Error(`could not create connection: ${JSON.stringify(created.body)}`);
      await waitFor(() => gateway.store.connectionByName(name) !== undefined, { what: "the connection" });
      return fixture;
    },
    async addAgent(connection, runtime, options = {}) {
      const { id, token } = await issueAgentToken(connection, options.name ?? `agent-${agents.length + 1}`);
      const agent = await startTestAgent({
        id,
        token,
        gatewayAddress: gateway.tunnelAddress,
        runtimeUrl: runtime.url,
        ...options,
      });
      agents.push(agent);
      await waitFor(() => [...gateway.pool.tunnels()].some((tunnel) => tunnel.agentId === id), {
        what: "the agent to register",
      });
      return agent;
    },
    async close() {
      for (const agent of agents) await agent.stop();
      for (const added of extraGateways) await added.close(1_000);
      await gateway.close(1_000);
      if (controlPlaneRunning) await controlPlane.close();
      for (const fixture of fixtures) await fixture.close();
      await database.drop();
    },
  };
}

/** What a runtime received apart from the agents' health probes. */
export function inferences(runtime: RuntimeFixture) {
  return runtime.requests.filter((request) => request.path !== "/health");
}
