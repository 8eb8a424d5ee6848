// A running control plane: HTTP API, gRPC endpoint for gateways, and the
// configuration publisher between them. main.ts and the zero-config
// launcher both start it through here.

import { once } from "node:events";
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type AuditStore, type AuditWorker, startAuditWorker } from "@modelgate/audit";
import { type Logger, type OpsServer, startOpsServer } from "@modelgate/core";
import { createDatabaseClient, type Database } from "@modelgate/db";
import { OidcVerifier, type OidcVerifierOptions } from "@modelgate/identity";
import type { ServerTlsFiles } from "@modelgate/protocol";
import { API_BASE_PATH, createApp } from "./app.js";
import type { CliLogin, ConsoleSettings } from "./config.js";
import { defaultConsoleDir } from "./console/index.js";
import { createQuotaAlerts } from "./features/alerts/quota-alerts.js";
import { type ApprovalOptions, startApprovals } from "./features/approvals/runtime.js";
import { type RetentionPolicy, type RunningRetention, startRetention } from "./features/audit-integrity/retention.js";
import { createExportEgress } from "./features/exporters/egress.js";
import { type SiemPipeline, startSiemPipeline } from "./features/exporters/pipeline.js";
import { createSessionStore } from "./features/sessions/store.js";
import { PresenceRegistry } from "./gateway-link/presence.js";
import { type ConfigDistributionOptions, startConfigPublisher } from "./gateway-link/publisher.js";
import { type GatewayLinkServer, startGatewayLinkServer } from "./gateway-link/server.js";
import { createAuthenticator, type RoleGroups } from "./http/auth.js";
import { createControlPlaneMetrics } from "./http/metrics.js";
import { type WatchedQueues, watchQueues } from "./ops/queues.js";
import { createReadinessChecks } from "./readiness.js";
import { createSecretBox } from "./secret-box.js";

/** Records the audit worker stores at once (see createSessionStore's batching). */
const AUDIT_WORKER_CONCURRENCY = 64;

export interface ControlPlaneOptions {
  host: string;
  port: number;
  /** The ops listener: /livez, /readyz, /metrics (port 0: any free one). */
  ops: { host: string; port: number };
  /** Collect Node process metrics (default true; off when tests run several in one process). */
  processMetrics?: boolean;
  grpc: { host: string; port: number; tls?: ServerTlsFiles | undefined };
  databaseUrl: string;
  dbPoolSize: number;
  /** Redis holding the audit queue: when set, the audit worker stores the gateways' records. */
  redisUrl?: string | undefined;
  /** BullMQ key prefix of the audit queue; must match the gateways' (default `bull`). */
  auditQueuePrefix?: string | undefined;
  /** A gateway in this process hands its records to `auditStore` (the zero-config launcher): no Redis is expected. */
  inProcessAudit?: boolean | undefined;
  /** Backoff of the audit worker's retries (default 1 s doubling to 5 min); tests shorten it. */
  auditRetry?: { baseMs?: number; maxMs?: number } | undefined;
  /** Audit retention in days (needs `redisUrl`: the purge is a BullMQ job); unset keeps everything. */
  retention?: RetentionPolicy | undefined;
  /** The bootstrap admin token; optional when OIDC admins exist. */
  adminToken?: string | undefined;
  /** People sign in with OIDC access tokens; their groups give their roles. */
  oidc?: { verifier: OidcVerifierOptions; roleGroups: RoleGroups } | undefined;
  /** Told to the CLI (GET /api/v1/cli-login) so that it can sign people in; none: it asks for a token. */
  cliLogin?: CliLogin | undefined;
  /**
   * The web console (docs/console-auth.md): sign-in at the identity
   * provider, session lifetime, where its files are. Unset: sessions of 8
   * hours, admin-token sign-in only, the installed console package's files.
   */
  console?: ConsoleSettings | undefined;
  gatewayToken: string;
  /** How configuration changes are kept and sent to gateways; the defaults suit production (tests shorten them). */
  configDistribution?: ConfigDistributionOptions | undefined;
  /** Seals webhook signing secrets (MODELGATE_SECRETS_KEY, 32 bytes). */
  secretsKey?: Buffer | undefined;
  /**
   * CIDR ranges exporters may reach although they are not global unicast
   * (loopback, private, link-local, …); unset or empty: none. See docs/siem.md.
   */
  exportAllowCidrs?: readonly string[] | undefined;
  /** Just-in-time approvals: where approvers decide, the per-subject cap, the expiry sweep (docs/approvals.md). */
  approvals?: ApprovalOptions | undefined;
  version: string;
  logger: Logger;
}

export interface RunningControlPlane {
  url: string;
  /** Base URL of the ops listener (/livez, /readyz, /metrics). */
  opsUrl: string;
  /** `host:port` of the gRPC endpoint gateways dial. */
  grpcAddress: string;
  db: Database;
  /** Where audit records are stored; the zero-config process hands its gateway's records straight to it. */
  auditStore: AuditStore;
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const { logger } = options;
  // One egress policy for the export worker and the test endpoint: both send
  // events out. First, so a bad allowed range fails before anything is opened.
  const exportEgress = createExportEgress({ allowCidrs: options.exportAllowCidrs });
  const db = createDatabaseClient({ databaseUrl: options.databaseUrl, maxConnections: options.dbPoolSize });
  const presence = new PresenceRegistry();
  const publisher = await startConfigPublisher({
    db,
    databaseUrl: options.databaseUrl,
    logger,
    ...options.configDistribution,
  });

  const auditStore = createSessionStore({ db });
  const metrics = createControlPlaneMetrics({ processMetrics: options.processMetrics ?? true });
  const secrets = createSecretBox(options.secretsKey);
  if (!secrets.sealing) {
    // Exports run only with Redis; without it the unsealed storage is a note, not a risk in use.
    logger[options.redisUrl ? "warn" : "info"](
      "MODELGATE_SECRETS_KEY is not set: webhook signing secrets are stored unsealed in the database",
    );
  }
  let auditWorker: AuditWorker | undefined;
  // SIEM export and alerts run beside the audit worker, fed by its hook.
  let siem: SiemPipeline | undefined;
  let watchedQueues: WatchedQueues | undefined;
  if (options.redisUrl) {
    siem = await startSiemPipeline({
      connection: options.redisUrl,
      prefix: options.auditQueuePrefix,
      db,
      secrets,
      egress: exportEgress,
      logger,
      onDelivery: metrics.work.exportDelivery,
    });
    const exportsFor = siem.onStored;
    auditWorker = await startAuditWorker({
      connection: options.redisUrl,
      prefix: options.auditQueuePrefix,
      retry: options.auditRetry,
      store: auditStore,
      logger,
      onStored: async (record, outcome) => {
        metrics.work.auditStored(outcome);
        await exportsFor(record, outcome);
      },
      // The store writes concurrent records as one transaction: more jobs in
      // flight make fuller batches (docs/benchmarks.md, audit store).
      concurrency: AUDIT_WORKER_CONCURRENCY,
    });
    logger.info("audit worker and SIEM export started");
    watchedQueues = watchQueues(metrics.work, options.redisUrl, options.auditQueuePrefix);
  } else if (options.inProcessAudit) {
    logger.info("audit records come from the gateway in this process; no audit worker or SIEM export runs");
  } else {
    // Gateways send their records through Redis: without it, only a gateway
    // in this process (the zero-config launcher) can have its records stored.
    logger.warn("MODELGATE_REDIS_URL is not set: no audit worker runs, so records from gateways are not stored");
  }

  // Approval URLs name the API's own address unless told otherwise; it is
  // known once the API listens, before the gRPC endpoint (where gateways
  // open approvals) does.
  let apiUrl = "";
  const approvals = await startApprovals({
    db,
    config: publisher,
    logger,
    urlBase: () => options.approvals?.urlBase ?? `${apiUrl}${API_BASE_PATH}/approvals`,
    maxPendingPerSubject: options.approvals?.maxPendingPerSubject,
    sweepIntervalMs: options.approvals?.sweepIntervalMs,
    events: siem ? { approval: siem.onApproval } : undefined,
    redisUrl: options.redisUrl,
    prefix: options.auditQueuePrefix,
  });

  let retention: RunningRetention | undefined;
  const policy = options.retention;
  if (policy && (policy.contentDays !== undefined || policy.metadataDays !== undefined)) {
    if (!options.redisUrl) throw new Error("audit retention needs MODELGATE_REDIS_URL: the purge runs as a BullMQ job");
    retention = await startRetention({
      redisUrl: options.redisUrl,
      prefix: options.auditQueuePrefix,
      db,
      policy,
      logger,
    });
    logger.info({ retention: policy }, "audit retention scheduled");
  }

  const verifier = options.oidc ? new OidcVerifier({ ...options.oidc.verifier, logger }) : undefined;
  await verifier?.start();
  const consoleDir = options.console?.dir ?? defaultConsoleDir();
  if (!consoleDir || !existsSync(path.join(consoleDir, "index.html"))) {
    logger.info({ dir: consoleDir ?? null }, "the web console is not built: /console answers 503 until it is");
  }
  const readiness = await createReadinessChecks({ db, redisUrl: options.redisUrl, logger });
  const app = createApp({
    db,
    logger,
    authenticator: createAuthenticator({
      adminToken: options.adminToken,
      oidc: verifier && options.oidc ? { verifier, roleGroups: options.oidc.roleGroups } : undefined,
    }),
    version: options.version,
    config: publisher,
    presence,
    secrets,
    metrics,
    exportEgress,
    approvals: approvals.service,
    cliLogin: options.cliLogin,
    console: {
      dir: consoleDir,
      sessionHours: options.console?.sessionHours ?? 8,
      adminToken: options.adminToken,
      oidc: options.console?.oidc,
      publicUrl: options.console?.publicUrl,
    },
  });
  const server: Server = app.listen(options.port, options.host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  // A listener on every interface is reached on loopback here; behind a
  // proxy, MODELGATE_APPROVAL_URL_BASE names the public address.
  apiUrl = `http://${host}:${port}`.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:");
  let gatewayLink: GatewayLinkServer | undefined;
  let ops: OpsServer | undefined;

  const running: Omit<RunningControlPlane, "opsUrl" | "grpcAddress"> = {
    url: `http://${host}:${port}`,
    db,
    auditStore,
    async close() {
      readiness.stopping();
      const closed = new Promise((resolve) => server.close(resolve));
      // Keep-alive connections would hold close() open indefinitely.
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(force);
      verifier?.close();
      // No gateway opens or uses an approval any more; then the approvals'
      // timers stop and their last events reach the export queue.
      await gatewayLink?.close();
      await approvals.close();
      // Records in progress are written before the database goes away;
      // the rest wait in Redis for the next control plane.
      await auditWorker?.close();
      await siem?.close();
      await watchedQueues?.close();
      await exportEgress.close();
      await retention?.close();
      await publisher.close();
      await readiness.close();
      // Last but the database: /readyz says "stopping" until here.
      await ops?.close();
      await db.$disconnect();
    },
  };
  try {
    // Last of the listeners: approval URLs need the API's address.
    gatewayLink = await startGatewayLinkServer({
      host: options.grpc.host,
      port: options.grpc.port,
      tls: options.grpc.tls,
      gatewayToken: options.gatewayToken,
      publisher,
      presence,
      approvals: approvals.service,
      quotaAlerts: createQuotaAlerts({ db, send: siem?.onAlert }),
      db,
      logger,
    });
    ops = await startOpsServer({
      ...options.ops,
      readiness: () => readiness.check(),
      metrics: metrics.registry,
      logger: logger.child({ component: "ops" }),
    });
  } catch (error) {
    // A taken gRPC or ops port: the caller sees that error, and nothing keeps running.
    await running.close();
    throw error;
  }
  return { ...running, grpcAddress: gatewayLink.address, opsUrl: ops.url };
}
