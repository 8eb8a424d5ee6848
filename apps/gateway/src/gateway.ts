// A gateway: HTTP ingress, the agent tunnel listener and the configuration
// stream from the control plane, wired together.
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { AuditSink, AuditSpool, type AuditTransport } from "@modelgate/audit";
import { type Logger, type OpsServer, startOpsServer } from "@modelgate/core";
import { OidcVerifier, type OidcVerifierOptions } from "@modelgate/identity";
import {
  type AgentPresenceInput,
  type ClientTlsFiles,
  channelCredentials,
  SERVER_KEEPALIVE_OPTIONS,
  type ServerTlsFiles,
  serverCredentials,
} from "@modelgate/protocol";
import type { Tracer } from "@opentelemetry/api";
import { DEFAULT_MAX_IN_FLIGHT_PER_SUBJECT } from "./admission.js";
import { AgentPool } from "./agent-pool.js";
import { answerClientError } from "./client-errors.js";
import { ConfigClient } from "./config-client.js";
import { type ConfigChange, ConfigStore } from "./config-store.js";
import { type BodyLimits, DEFAULT_MAX_JSON_DEPTH } from "./http-body.js";
import { Authenticator } from "./identity.js";
import { createIngress } from "./ingress.js";
import { createMetrics } from "./metrics.js";
import { createQuotaMetrics, DEFAULT_QUOTA_OPTIONS, QuotaKeeper, type QuotaReserveOptions } from "./quota.js";
import { quotaThresholdReporter } from "./quota-alerts.js";
import { MemoryQuotaStore, RedisQuotaStore } from "./quota-store.js";
import { MemoryRateLimiter, type RateLimiter, RedisRateLimiter } from "./rate-limit.js";
import { DEFAULT_REFUSAL_BRAKE, RefusalBrake, type RefusalBrakeOptions } from "./refusal-brake.js";
import { createTunnelService, tunnelServiceDefinition } from "./tunnel-server.js";

export interface GatewayOptions {
  host: string;
  port: number;
  /** The ops listener: /livez, /readyz, /metrics (port 0: any free one). */
  ops: { host: string; port: number };
  tunnelHost: string;
  tunnelPort: number;
  tunnelTls?: ServerTlsFiles | undefined;
  controlPlane: { address: string; tls?: ClientTlsFiles | undefined; token: string };
  maxBodyBytes: number;
  /** A body that stalls this long is refused with 408 (default 15 s). */
  bodyIdleTimeoutMs?: number | undefined;
  /** After that grace, bodies must arrive at least this fast on average (default 64 KiB/s). */
  bodyMinBytesPerSecond?: number | undefined;
  /** JSON nesting depth the gateway parses (default 64). */
  maxJsonDepth?: number | undefined;
  /** Requests one subject may have in flight on this gateway (default 64). */
  maxInFlightPerSubject?: number | undefined;
  upstreamTimeoutMs: number;
  queueWaitMs: number;
  agentWaitMs: number;
  heartbeatIntervalMs?: number;
  /** Trust OIDC access tokens from these issuers (besides modelgate API keys). */
  oidc?: OidcVerifierOptions | undefined;
  /**
   * Redis for rate limits shared by every gateway replica. Without it the
   * limits are kept in this process: right for one gateway (zero-config),
   * per replica with several.
   */
  redisUrl?: string | undefined;
  /** Where audit records go and how much of them the gateway holds while that is away. */
  audit: GatewayAuditOptions;
  version: string;
  logger: Logger;
  /**
   * Largest request head (request line and headers) Node reads; beyond it
   * Node answers 431 before the gateway sees the request (default 64 KiB).
   */
  maxHeaderBytes?: number | undefined;
  /** Collect Node process metrics (off when several gateways share a process). */
  processMetrics?: boolean;
  /** Requests held for human approval (docs/approvals.md); defaults below. */
  approvals?: GatewayApprovalOptions | undefined;
  /** Slower answers for a caller refused again and again (refusal-brake.ts); each unset field has its default. */
  refusalBrake?: Partial<RefusalBrakeOptions> | undefined;
  /** The local reserve of quotas (docs/policies.md#quotas); each unset field has its default. */
  quota?: Partial<QuotaReserveOptions> | undefined;
  /**
   * Spans of every request (request-trace.ts); undefined: none. Whoever
   * made it flushes it after close() (main.ts).
   */
  tracer?: Tracer | undefined;
}

interface GatewayApprovalOptions {
  /** Longest `Prefer: wait` honoured, in seconds (default and cap 300). */
  maxWaitSeconds?: number | undefined;
  /** Requests one subject may have waiting on this gateway (default 8). */
  maxWaitingPerSubject?: number | undefined;
  /** Requests waiting on this gateway, all subjects together (default 1,000). */
  maxWaiting?: number | undefined;
}

/** RFC 7240 lets the server choose; the issue caps a wait at five minutes. */
const MAX_APPROVAL_WAIT_SECONDS = 300;
const DEFAULT_APPROVAL_WAITING_PER_SUBJECT = 8;
const DEFAULT_APPROVAL_WAITING = 1_000;
/** A held request is refused (fail closed) when the control plane takes longer than this to open or spend an approval. */
const APPROVAL_CALL_TIMEOUT_MS = 5_000;

export interface GatewayAuditOptions {
  /** The BullMQ queue (createQueueTransport) or, in the zero-config process, the control plane's store. */
  transport: AuditTransport;
  /** Serve requests even when their record cannot be kept (default false: refuse with 503). */
  failOpen?: boolean | undefined;
  /** Records and estimated bytes held locally before requests are refused (defaults 10,000 and 256 MiB). */
  bufferRecords?: number | undefined;
  bufferBytes?: number | undefined;
  /** Cap per recorded body, request and response each (default 4 MiB). */
  maxBodyBytes?: number | undefined;
  /** Include the (audit-masked) request body in the decision log line (default false). */
  logPrompts?: boolean | undefined;
  /** How long close() waits to hand over buffered records (default 10 s). */
  flushTimeoutMs?: number | undefined;
  /**
   * Keep records on disk, not in memory, while the transport fails, so a
   * gateway killed meanwhile loses none (docs/audit.md). Unset: memory only.
   */
  spool?: { dir: string; maxBytes?: number | undefined } | undefined;
}

export const DEFAULT_AUDIT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_BODY_IDLE_TIMEOUT_MS = 15_000;
const DEFAULT_BODY_MIN_BYTES_PER_SECOND = 64 * 1024;
/** Four times Node's default: a 16 KiB access token still reaches the authenticator and gets a recorded 401. */
const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
/** How long close() waits for handlers to unwind once their sockets are closed. */
const HANDLER_SETTLE_MS = 5_000;
/** How long agents get to close their tunnels after theirs ended, before the rest is cut. */
const TUNNEL_CLOSE_MS = 1_000;

export interface RunningGateway {
  readonly gatewayId: string;
  readonly url: string;
  /** Base URL of the ops listener (/livez, /readyz, /metrics). */
  readonly opsUrl: string;
  /** `host:port` agents dial. */
  readonly tunnelAddress: string;
  readonly store: ConfigStore;
  readonly pool: AgentPool;
  readonly audit: AuditSink;
  /** Resolves when the first configuration snapshot has arrived. */
  configured(): Promise<void>;
  /**
   * Shuts down in order: /readyz turns unready and agents hear Goodbye (no
   * new registrations); for `delayMs` requests are still served, with
   * `Connection: close`, while load balancers notice and move clients to
   * other replicas; then the listener closes, in-flight requests finish
   * (bounded by `graceMs`), tunnels end, audit records are flushed.
   */
  close(graceMs?: number, options?: { delayMs?: number }): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const gatewayId = randomUUID();
  const logger = options.logger.child({ gatewayId: gatewayId.slice(0, 8) });
  const auditLogger = logger.child({ component: "audit" });
  // First, before anything that would need undoing: it refuses an unsafe
  // directory, and adopts the records a killed predecessor left there.
  const spool = options.audit.spool
    ? await AuditSpool.open({ ...options.audit.spool, ownerId: gatewayId, logger: auditLogger })
    : undefined;
  const store = new ConfigStore();
  const pool = new AgentPool();
  const metrics = createMetrics({ defaultMetrics: options.processMetrics ?? true });
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5_000;
  const oidc = options.oidc ? new OidcVerifier({ ...options.oidc, logger }) : undefined;
  const rateLimiter: RateLimiter = options.redisUrl
    ? new RedisRateLimiter({ url: options.redisUrl, logger })
    : new MemoryRateLimiter();
  const quotaOptions = withDefaults(DEFAULT_QUOTA_OPTIONS, options.quota);
  const quotaLeaseMs = quotaOptions.syncIntervalMs * 3;
  const quotas = new QuotaKeeper({
    store: options.redisUrl
      ? new RedisQuotaStore({ url: options.redisUrl, gatewayId, leaseMs: quotaLeaseMs, logger })
      : new MemoryQuotaStore({ gatewayId, leaseMs: quotaLeaseMs }),
    reserveFraction: quotaOptions.reserveFraction,
    reserveMax: quotaOptions.reserveMax,
    syncIntervalMs: quotaOptions.syncIntervalMs,
    metrics: createQuotaMetrics(metrics.registry),
    logger: logger.child({ component: "quota" }),
    // The link to the control plane opens below; a crossing before then waits for it.
    onThreshold: quotaThresholdReporter(() => configClient, logger.child({ component: "quota" })),
  });
  const audit = new AuditSink({
    transport: options.audit.transport,
    logger: auditLogger,
    failOpen: options.audit.failOpen,
    maxRecords: options.audit.bufferRecords,
    maxBytes: options.audit.bufferBytes,
    onDropped: () => metrics.auditDropped.inc(),
    spool,
  });
  metrics.observeAudit(() => audit.status());
  // Discovery failures are retried in the background: API keys work meanwhile.
  await oidc?.start();

  const presence = (): AgentPresenceInput[] =>
    [...pool.tunnels()].map((tunnel) => ({
      agentId: tunnel.agentId,
      state: tunnel.state === "draining" ? "AGENT_STATE_DRAINING" : "AGENT_STATE_CONNECTED",
      inFlight: tunnel.inFlight,
      capacity: tunnel.capacity,
      runtimeHealthy: tunnel.runtimeHealthy === true,
      lastHeartbeatAt: tunnel.lastHeartbeatAt,
      agentVersion: tunnel.agentVersion,
    }));

  // Tunnel listener for agents.
  const tunnelService = createTunnelService({ store, pool, gatewayId, logger, heartbeatIntervalMs });
  const grpcServer = new grpc.Server(SERVER_KEEPALIVE_OPTIONS);
  grpcServer.addService(tunnelServiceDefinition(), tunnelService.handlers);
  const tunnelPort = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync(
      `${options.tunnelHost}:${options.tunnelPort}`,
      serverCredentials(options.tunnelTls),
      (error, port) => (error ? reject(error) : resolve(port)),
    );
  });

  const body: BodyLimits = {
    maxBytes: options.maxBodyBytes,
    idleTimeoutMs: options.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS,
    minBytesPerSecond: options.bodyMinBytesPerSecond ?? DEFAULT_BODY_MIN_BYTES_PER_SECOND,
  };
  const http: Server = createServer({
    keepAliveTimeout: 65_000,
    // Headers get the body's idle time: a caller that cannot send a request
    // line and headers in that time (slowloris) loses the socket.
    headersTimeout: body.idleTimeoutMs,
    // Node's own bound on receiving a whole request is only a backstop
    // behind the body reader's (which answers 408 with an audit record):
    // the slowest body the limits allow, and a margin.
    requestTimeout: body.idleTimeoutMs + Math.ceil((body.maxBytes / body.minBytesPerSecond) * 1000) + 10_000,
    noDelay: true,
    maxHeaderSize: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
  });
  http.on("clientError", answerClientError({ metrics, logger }));
  const url = `http://${options.host.includes(":") ? `[${options.host}]` : options.host}`;

  // Configuration from the control plane; agent reports go back on it.
  const configClient = new ConfigClient({
    address: options.controlPlane.address,
    credentials: channelCredentials(options.controlPlane.tls),
    token: options.controlPlane.token,
    gatewayId,
    version: options.version,
    publicUrl: url,
    store,
    logger,
    agents: presence,
  });
  const updateAgentMetrics = () => {
    metrics.agentsConnected.reset();
    for (const connection of store.connections()) {
      metrics.agentsConnected.set({ connection: connection.name }, pool.connectedCount(connection.id));
    }
  };
  pool.onChange(() => {
    configClient.reportAgents();
    updateAgentMetrics();
  });
  store.on("change", updateAgentMetrics);
  let policyProblems: ConfigChange["policyProblems"] = [];
  store.on("change", (change: ConfigChange) => {
    policyProblems = change.policyProblems;
    for (const problem of policyProblems) {
      logger.error(problem, "policy cannot be enforced by this gateway; it grants nothing here");
    }
  });
  store.on("change", (change: ConfigChange) => {
    metrics.configReceived.set((store.receivedAt ?? 0) / 1000);
    metrics.configUpdates.inc({ kind: change.kind });
  });
  configClient.on("connected", () => metrics.configLive.set(1));
  configClient.on("disconnected", () => metrics.configLive.set(0));
  // Heartbeats change "last seen" without changing the pool's shape; report
  // them at the heartbeat rate so the control plane's view stays fresh.
  const reportTimer = setInterval(() => configClient.reportAgents(), heartbeatIntervalMs);
  reportTimer.unref();
  configClient.start();

  let draining = false;
  const refusalBrake = new RefusalBrake(withDefaults(DEFAULT_REFUSAL_BRAKE, options.refusalBrake));
  const handle = createIngress({
    store,
    pool,
    authenticator: new Authenticator(store, oidc),
    rateLimiter,
    quotas,
    metrics,
    logger,
    body,
    maxJsonDepth: options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH,
    maxInFlightPerSubject: options.maxInFlightPerSubject ?? DEFAULT_MAX_IN_FLIGHT_PER_SUBJECT,
    upstreamTimeoutMs: options.upstreamTimeoutMs,
    queueWaitMs: options.queueWaitMs,
    agentWaitMs: options.agentWaitMs,
    tracer: options.tracer,
    audit,
    gatewayId,
    auditMaxBodyBytes: options.audit.maxBodyBytes ?? DEFAULT_AUDIT_MAX_BODY_BYTES,
    logPrompts: options.audit.logPrompts ?? false,
    approvals: {
      link: configClient,
      maxWaitSeconds: Math.min(
        options.approvals?.maxWaitSeconds ?? MAX_APPROVAL_WAIT_SECONDS,
        MAX_APPROVAL_WAIT_SECONDS,
      ),
      maxWaitingPerSubject: options.approvals?.maxWaitingPerSubject ?? DEFAULT_APPROVAL_WAITING_PER_SUBJECT,
      maxWaiting: options.approvals?.maxWaiting ?? DEFAULT_APPROVAL_WAITING,
      controlPlaneTimeoutMs: APPROVAL_CALL_TIMEOUT_MS,
    },
    refusalBrake,
    version: options.version,
  });
  // What the ops listener reports on /readyz (started below, with /metrics).
  const probes = {
    readiness: () => ({
      ready: store.loaded && !draining && audit.status().accepting,
      details: {
        draining,
        config: {
          revision: store.revision,
          source: configClient.connected ? "live" : store.loaded ? "last-known" : "none",
          receivedAt: store.receivedAt ? new Date(store.receivedAt).toISOString() : null,
        },
        agents: pool.connectedCount(),
        policies: store.policies.size,
        // Policies this gateway could not read grant nothing here; operators
        // should know before their users do.
        policyProblems: policyProblems.map((problem) => problem.policyId),
        rateLimits: options.redisUrl ? "redis" : "in-process",
        audit: auditReadiness(audit),
        ...(oidc ? { oidc: oidc.status() } : {}),
      },
    }),
  };
  // Handlers still running (answering, or building their audit record):
  // close() waits for them before the audit buffer is flushed.
  const handlers = new Set<Promise<void>>();
  http.on("request", (req, res) => {
    // Shutting down: a keep-alive client opens its next connection anew,
    // which the load balancer sends to another replica.
    if (draining) res.setHeader("connection", "close");
    const handling = handle(req, res).catch((error: unknown) => {
      logger.error({ err: error }, "request handler failed unexpectedly");
      res.destroy();
    });
    handlers.add(handling);
    void handling.finally(() => handlers.delete(handling));
  });
  let ops: OpsServer;
  try {
    http.listen(options.port, options.host);
    await once(http, "listening");
    ops = await startOpsServer({
      ...options.ops,
      readiness: probes.readiness,
      metrics: metrics.registry,
      logger: logger.child({ component: "ops" }),
    });
  } catch (error) {
    // A taken port: undo what already runs, so the caller sees one clear error.
    http.close();
    clearInterval(reportTimer);
    oidc?.close();
    await rateLimiter.close();
    await quotas.close();
    await audit.close(0);
    configClient.close();
    tunnelService.close();
    grpcServer.forceShutdown();
    throw error;
  }
  const { port } = http.address() as AddressInfo;
  let closing: Promise<void> | undefined;

  return {
    gatewayId,
    url: `${url}:${port}`,
    opsUrl: ops.url,
    tunnelAddress: `${options.tunnelHost}:${tunnelPort}`,
    store,
    pool,
    audit,
    configured: () => (store.loaded ? Promise.resolve() : once(store, "change").then(() => undefined)),
    close(graceMs = 10_000, { delayMs = 0 } = {}) {
      closing ??= shutDown(graceMs, delayMs);
      return closing;
    },
  };

  async function shutDown(graceMs: number, delayMs: number): Promise<void> {
    // Unready first, so load balancers stop sending new clients here, and
    // agents hear that this gateway is going.
    draining = true;
    tunnelService.drain();
    // Requests waiting for an approval are answered now (approval_required,
    // the approval stays pending): their callers send again, to a replica
    // that stays.
    store.approvals.close();
    // Refusals the brake holds back are answered now, and none are held after.
    refusalBrake.close();
    logger.info({ delayMs, graceMs }, "draining: unready, finishing requests");
    if (delayMs > 0) await sleep(delayMs);
    http.close();
    http.closeIdleConnections();
    // In-flight responses finish (bounded by graceMs), then everything goes.
    const closed = once(http, "close").catch(() => undefined);
    const timer = setTimeout(() => http.closeAllConnections(), graceMs);
    // A keep-alive connection whose response finishes during the drain
    // turns idle; close it then, rather than wait out the grace period.
    const sweeper = setInterval(() => http.closeIdleConnections(), 50);
    await closed;
    clearTimeout(timer);
    clearInterval(sweeper);
    // Sockets are gone; a handler may still be finishing (a request cut off
    // at the grace period records itself as it unwinds).
    await Promise.race([Promise.allSettled([...handlers]), sleep(HANDLER_SETTLE_MS, undefined, { ref: false })]);
    clearInterval(reportTimer);
    configClient.close();
    // Every request is over: end the registrations (OK, after the Goodbye),
    // so agents reconnect at once, to this gateway's successor. Agents close
    // their idle streams when theirs ends; a GOAWAY (tryShutdown) lets that
    // happen cleanly, and whatever remains after a moment is cut.
    tunnelService.close();
    await new Promise<void>((resolve) => {
      const cut = setTimeout(() => {
        grpcServer.forceShutdown();
        resolve();
      }, TUNNEL_CLOSE_MS);
      grpcServer.tryShutdown(() => {
        clearTimeout(cut);
        resolve();
      });
    });
    oidc?.close();
    await rateLimiter.close();
    // Every request has settled: what this gateway spent reaches Redis and
    // its leases go back, for the other replicas to use.
    await quotas.close();
    // Every finished request has submitted its record by now; hand them
    // over before the process goes.
    await audit.close(options.audit.flushTimeoutMs ?? 10_000);
    // Last: /readyz says "draining" to the very end.
    await ops.close();
  }
}

function auditReadiness(audit: AuditSink) {
  const status = audit.status();
  return {
    transport: status.transportHealthy ? "ok" : "failing",
    buffered: status.buffered,
    accepting: status.accepting,
    ...(status.spool
      ? {
          spool: {
            records: status.spool.records,
            bytes: status.spool.bytes,
            maxBytes: status.spool.maxBytes,
            files: status.spool.files,
            failing: status.spool.failing,
          },
        }
      : {}),
    ...(status.failOpen ? { failOpen: true, dropped: status.dropped } : {}),
  };
}

/** `defaults` with every field `overrides` sets (an undefined field keeps its default). */
function withDefaults<T extends object>(defaults: T, overrides: Partial<T> | undefined): T {
  const merged = { ...defaults };
  for (const [name, value] of Object.entries(overrides ?? {})) {
    if (value !== undefined) (merged as Record<string, unknown>)[name] = value;
  }
  return merged;
}
