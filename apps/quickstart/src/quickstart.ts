// All of modelgate in one process: database, control plane, gateway, one
// agent and its runtime, provisioned through the admin API and checked end
// to end before anyone is told the gateway is ready.
import type { Writable } from "node:stream";
import { startAgent, startAgentOps } from "@modelgate/agent";
import { createStoreTransport } from "@modelgate/audit";
import { startControlPlane, VERSION } from "@modelgate/control-plane";
import { createLogger, generateSecret, type Logger } from "@modelgate/core";
import { ensureDatabaseExists, migrate } from "@modelgate/db";
import { startGateway } from "@modelgate/gateway";
import { startTracing, tracingSettings } from "@modelgate/tracing";
import type { QuickstartConfig } from "./config.js";
import { startEmbeddedPostgres } from "./embedded-postgres.js";
import { ShutdownStack, until, within } from "./lifecycle.js";
import { createAdminClient, provision } from "./provision.js";
import { resolveRuntime } from "./runtime.js";

/**
 * The gRPC listeners carry tokens in plaintext and nothing outside this
 * process dials them, and the ops listeners are for this machine's
 * operator, so they stay on loopback whatever MODELGATE_HOST says.
 */
const INTERNAL_HOST = "127.0.0.1";
const MIB = 1024 * 1024;
/** Each wait covers work measured in milliseconds; the margin is for slow, shared machines. */
const READY_TIMEOUT_MS = 30_000;
/** Ctrl-C should feel immediate, yet let a streamed answer in progress finish. */
const AGENT_DRAIN_MS = 5_000;
const GATEWAY_GRACE_MS = 5_000;

export interface QuickstartOptions {
  /** Aborting it stops a startup in progress (what is running is stopped again). */
  signal?: AbortSignal;
  /** Where log lines go; standard error by default, so standard output is the banner's. */
  logDestination?: Writable;
}

export interface RunningQuickstart {
  /** Base URL of the gateway, without `/v1`. */
  gatewayUrl: string;
  /** A key created for this run; earlier runs' keys are revoked. */
  apiKey: string;
  /** Model ids as callers send them: `<connection>/<model>`. */
  models: string[];
  controlPlaneUrl: string;
  /** Ops listeners (/livez, /readyz, /metrics), on loopback. */
  ops: { gateway: string; controlPlane: string; agent: string };
  /** Valid for this run only. */
  adminToken: string;
  runtime: { kind: "demo" | "external"; url: string; connection: string };
  database: { kind: "embedded"; clusterDir: string; port: number; created: boolean } | { kind: "external" };
  /** Drains the agent, then stops the gateway, control plane, runtime and database. */
  close(): Promise<void>;
}

export async function startQuickstart(
  config: QuickstartConfig,
  options: QuickstartOptions = {},
): Promise<RunningQuickstart> {
  const { signal } = options;
  const destination = options.logDestination ?? process.stderr;
  const log = (name: string): Logger => createLogger({ name, level: config.logLevel, destination });
  const logger = log("quickstart");
  const shutdown = new ShutdownStack((part, error) => logger.error({ err: error, part }, "could not stop cleanly"));

  try {
    signal?.throwIfAborted();
    let databaseUrl: string;
    let database: RunningQuickstart["database"];
    if (config.database.kind === "embedded") {
      const { port } = config.database;
      const postgres = await step(
        `start the embedded Postgres on 127.0.0.1:${port} (MODELGATE_EMBEDDED_POSTGRES_PORT) with data in ${config.dataDir}`,
        () => startEmbeddedPostgres({ dataDir: config.dataDir, port, logger: log("postgres") }),
      );
      shutdown.push("embedded Postgres", () => postgres.stop());
      databaseUrl = postgres.databaseUrl;
      database = { kind: "embedded", clusterDir: postgres.clusterDir, port, created: postgres.created };
    } else {
      databaseUrl = config.database.url;
      database = { kind: "external" };
    }
    signal?.throwIfAborted();
    await step("prepare the database", async () => {
      await ensureDatabaseExists(databaseUrl);
      await migrate({ databaseUrl });
    });

    signal?.throwIfAborted();
    const runtime = await step("prepare the model runtime", () => resolveRuntime(config.runtime));
    shutdown.push("runtime", () => runtime.close());

    // With OTEL_EXPORTER_OTLP_ENDPOINT set, the gateway and the agent trace
    // as they do as processes of their own, each under its service name
    // (docs/observability.md#tracing); flushed after both have stopped.
    const tracingOn = tracingSettings(process.env);
    const [gatewayTracing, agentTracing] = await Promise.all([
      startTracing(tracingOn, { serviceName: "modelgate-gateway", serviceVersion: VERSION, remoteSampling: "ignore" }),
      startTracing(tracingOn, { serviceName: "modelgate-agent", serviceVersion: VERSION, remoteSampling: "follow" }),
    ]);
    shutdown.push("tracing", () => Promise.all([gatewayTracing.shutdown(), agentTracing.shutdown()]));

    // Fresh every run: nothing secret outlives the process but the database.
    const adminToken = generateSecret("mgadmin_");
    const gatewayToken = generateSecret("mggateway_");
    const controlPlane = await step(
      `start the control plane on ${config.host}:${config.ports.controlPlane} (MODELGATE_CONTROL_PLANE_PORT), ${INTERNAL_HOST}:${config.ports.controlPlaneGrpc} (MODELGATE_CONTROL_PLANE_GRPC_PORT) and ${INTERNAL_HOST}:${config.ports.controlPlaneOps} (MODELGATE_CONTROL_PLANE_OPS_PORT)`,
      () =>
        startControlPlane({
          host: config.host,
          port: config.ports.controlPlane,
          ops: { host: INTERNAL_HOST, port: config.ports.controlPlaneOps },
          // One process: the gateway's metrics carry the process's own.
          processMetrics: false,
          grpc: { host: INTERNAL_HOST, port: config.ports.controlPlaneGrpc },
          databaseUrl,
          dbPoolSize: 5,
          inProcessAudit: true,
          adminToken,
          gatewayToken,
          version: VERSION,
          logger: log("control-plane"),
        }),
    );
    shutdown.push("control plane", () => controlPlane.close());
    const controlPlaneUrl = reachable(controlPlane.url);

    const gateway = await step(
      `start the gateway on ${config.host}:${config.ports.gateway} (MODELGATE_GATEWAY_PORT), ${INTERNAL_HOST}:${config.ports.tunnel} (MODELGATE_TUNNEL_PORT) and ${INTERNAL_HOST}:${config.ports.gatewayOps} (MODELGATE_GATEWAY_OPS_PORT)`,
      () =>
        startGateway({
          host: config.host,
          port: config.ports.gateway,
          ops: { host: INTERNAL_HOST, port: config.ports.gatewayOps },
          tunnelHost: INTERNAL_HOST,
          tunnelPort: config.ports.tunnel,
          controlPlane: { address: controlPlane.grpcAddress, token: gatewayToken },
          // The gateway's own defaults (apps/gateway/src/config.ts).
          maxBodyBytes: 10 * MIB,
          upstreamTimeoutMs: 600_000,
          queueWaitMs: 10_000,
          agentWaitMs: 0,
          // No Redis here: records go straight to the control plane's store
          // in this process, still off the request path and still fail-closed.
          audit: { transport: createStoreTransport({ store: controlPlane.auditStore, logger: log("audit") }) },
          version: VERSION,
          logger: log("gateway"),
          tracer: gatewayTracing.tracer,
        }),
    );
    shutdown.push("gateway", () => gateway.close(GATEWAY_GRACE_MS));
    const gatewayUrl = reachable(gateway.url);

    const provisioned = await step("provision the connection, agent and API key", () =>
      provision(createAdminClient(controlPlaneUrl, adminToken), {
        connection: runtime.connection,
        protocol: runtime.protocol,
        models: runtime.models,
      }),
    );
    logger.info({ revoked: provisioned.revoked }, "revoked earlier runs' agents and API keys");

    await within(gateway.configured(), {
      what: "the gateway's first configuration",
      timeoutMs: READY_TIMEOUT_MS,
      signal,
    });
    // An agent that dials before its token reached the gateway is refused
    // and backs off; waiting here saves that detour.
    await until(async () => gateway.store.agentById(provisioned.agent.id) !== undefined, {
      what: "the agent token to reach the gateway",
      timeoutMs: READY_TIMEOUT_MS,
      signal,
    });
    const agent = startAgent({
      gateways: [{ address: gateway.tunnelAddress, tls: false }],
      token: provisioned.agent.token,
      runtimeUrl: runtime.url,
      runtimeCredential: runtime.credential,
      runtimeHealthPath: runtime.healthPath,
      capacity: 32,
      version: VERSION,
      logger: log("agent"),
      processMetrics: false,
      tracer: agentTracing.tracer,
    });
    shutdown.push("agent", () => agent.drain(AGENT_DRAIN_MS));
    const agentOps = await step(
      `start the agent's ops listener on ${INTERNAL_HOST}:${config.ports.agentOps} (MODELGATE_AGENT_OPS_PORT)`,
      () => startAgentOps(agent, { host: INTERNAL_HOST, port: config.ports.agentOps, logger: log("agent") }),
    );
    // Closed before the agent drains: nothing probes a launcher that is stopping.
    shutdown.push("agent ops listener", () => agentOps.close());
    await within(agent.connected(), { what: "the agent to connect", timeoutMs: READY_TIMEOUT_MS, signal });

    // The same request a caller makes first: the key works and every model is listed.
    const models = runtime.models.map((model) => `${runtime.connection}/${model}`);
    await until(() => gatewayServes(gatewayUrl, provisioned.apiKey.key, models), {
      what: "the gateway to accept the new API key",
      timeoutMs: READY_TIMEOUT_MS,
      signal,
    });

    return {
      gatewayUrl,
      apiKey: provisioned.apiKey.key,
      models,
      controlPlaneUrl,
      ops: { gateway: gateway.opsUrl, controlPlane: controlPlane.opsUrl, agent: agentOps.url },
      adminToken,
      runtime: { kind: runtime.kind, url: runtime.url, connection: runtime.connection },
      database,
      close: () => shutdown.close(),
    };
  } catch (error) {
    await shutdown.close();
    throw error;
  }
}

/** Runs one startup step; a failure says which step and which setting to look at. */
async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new Error(`could not ${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

async function gatewayServes(gatewayUrl: string, apiKey: string, models: string[]): Promise<boolean> {
  try {
    const response = await fetch(`${gatewayUrl}/v1/models`, {
      headers: { authorization: `Bearer ${apiKey}` },
      signal: AbortSignal.timeout(2_000),
    });
    if (response.status !== 200) return false;
    const listed = new Set(((await response.json()) as { data: { id: string }[] }).data.map((model) => model.id));
    return models.every((model) => listed.has(model));
  } catch {
    return false;
  }
}

/** A URL this machine can call: a listener on every interface is reached on loopback. */
function reachable(url: string): string {
  return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:");
}
