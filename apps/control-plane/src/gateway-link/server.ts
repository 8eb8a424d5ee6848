// The control plane's gRPC endpoint for gateways: keeps each connected
// gateway's configuration current (Subscribe: a first message, then deltas;
// Watch: snapshots, for gateways that predate deltas), collects their
// agent reports, and opens and uses approvals (RequestApproval,
// ConsumeApproval).
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { bearerToken, type Logger, secretsEqual } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import {
  type ApprovalTicketInput,
  type ConfigSnapshotInput,
  type ConfigUpdateInput,
  type GatewayConfigHandlers,
  type GatewayReport,
  loadConfigProto,
  SERVER_KEEPALIVE_OPTIONS,
  type ServerTlsFiles,
  serverCredentials,
} from "@modelgate/protocol";
import type { z } from "zod";
import { type QuotaAlerts, quotaThresholdInput } from "../features/alerts/quota-alerts.js";
import { approvalRequestInput, consumeApprovalInput } from "../features/approvals/schemas.js";
import type { ApprovalService } from "../features/approvals/service.js";
import type { PresenceRegistry } from "./presence.js";
import type { ConfigPosition, ConfigPublisher } from "./publisher.js";

/** How often an agent's "last seen" and version are written to Postgres at most. */
const LAST_SEEN_WRITE_INTERVAL_MS = 60_000;
const MAX_REPORTED_AGENTS = 100_000;
/** Longest epoch a gateway may present (a UUID has 36 characters). */
const MAX_EPOCH_LENGTH = 64;

export interface GatewayLinkServer {
  /** `host:port` gateways dial. */
  address: string;
  close(): Promise<void>;
}

type Call = Parameters<GatewayConfigHandlers["Subscribe"]>[0] | Parameters<GatewayConfigHandlers["Watch"]>[0];

/** What a refused unary call answers with. */
interface CallError {
  code: grpc.status;
  details: string;
}

const TICKET_OUTCOMES = {
  pending: "APPROVAL_OUTCOME_PENDING",
  too_many_pending: "APPROVAL_OUTCOME_TOO_MANY_PENDING",
  policy_changed: "APPROVAL_OUTCOME_POLICY_CHANGED",
  granted: "APPROVAL_OUTCOME_GRANTED",
} as const;

/** Parses a unary request, or names its first bad fields (never their values: a prompt may be among them). */
function parseOrRefuse<S extends z.ZodType>(schema: S, message: unknown): z.output<S> | CallError {
  const parsed = schema.safeParse(message);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.map(String).join(".") || "message"}: ${issue.message}`);
  return { code: grpc.status.INVALID_ARGUMENT, details: fields.join("; ").slice(0, 1000) };
}

const isCallError = (value: unknown): value is CallError =>
  typeof value === "object" && value !== null && "code" in value && "details" in value;

export async function startGatewayLinkServer({
  host,
  port,
  tls,
  gatewayToken,
  publisher,
  presence,
  approvals,
  quotaAlerts,
  db,
  logger,
}: {
  host: string;
  port: number;
  tls?: ServerTlsFiles | undefined;
  gatewayToken: string;
  publisher: ConfigPublisher;
  presence: PresenceRegistry;
  /** Serves RequestApproval and ConsumeApproval; without it both answer UNIMPLEMENTED. */
  approvals?: ApprovalService | undefined;
  /** Serves ReportQuotaThreshold; without it the call answers UNIMPLEMENTED. */
  quotaAlerts?: QuotaAlerts | undefined;
  db: Database;
  logger: Logger;
}): Promise<GatewayLinkServer> {
  const lastSeenWritten = new Map<string, number>();

  const persistLastSeen = (agents: GatewayReport["agents"]) => {
    const now = Date.now();
    for (const agent of agents?.agents ?? []) {
      if (now - (lastSeenWritten.get(agent.agentId) ?? 0) < LAST_SEEN_WRITE_INTERVAL_MS) continue;
      lastSeenWritten.set(agent.agentId, now);
      db.agent
        .updateMany({
          where: { id: agent.agentId },
          data: {
            lastSeenAt: new Date(agent.lastHeartbeatAt || now),
            version: agent.agentVersion.slice(0, 64) || null,
          },
        })
        .catch((error: unknown) => logger.warn({ err: error }, "could not record agent last-seen time"));
    }
  };

  /**
   * What both streams share: the gateway token, the hello, agent reports and
   * the end of the stream. `keepCurrent` runs the configuration side and
   * returns what to do on a snapshot request and when the stream ends.
   */
  const serve = (
    call: Call,
    keepCurrent: (hello: NonNullable<GatewayReport["hello"]>, gatewayId: string) => { stop(): void; resync?(): void },
  ) => {
    const presented = bearerToken(call.metadata.get("authorization")[0]);
    if (!presented || !secretsEqual(presented, gatewayToken)) {
      logger.warn({ peer: call.getPeer() }, "gateway refused: wrong gateway token");
      call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: "invalid gateway token" });
      return;
    }
    let gatewayId: string | undefined;
    let session: ReturnType<typeof keepCurrent> | undefined;
    call.on("data", (report: GatewayReport) => {
      if (report.hello && !gatewayId) {
        gatewayId = report.hello.gatewayId.slice(0, 64) || "unnamed";
        logger.info({ gatewayId, version: report.hello.version, url: report.hello.publicUrl }, "gateway connected");
        session = keepCurrent(report.hello, gatewayId);
      } else if (report.agents && gatewayId) {
        const agents = report.agents.agents.slice(0, MAX_REPORTED_AGENTS);
        presence.report(gatewayId, agents);
        persistLastSeen({ agents });
      } else if (report.snapshotRequest && gatewayId) {
        logger.warn(
          { gatewayId, revision: report.snapshotRequest.revision, reason: report.snapshotRequest.reason },
          "gateway asked for a configuration snapshot",
        );
        session?.resync?.();
      }
    });
    let closed = false;
    const onClose = () => {
      if (closed) return;
      closed = true;
      session?.stop();
      if (gatewayId) {
        presence.forget(gatewayId);
        logger.info({ gatewayId }, "gateway disconnected");
      }
    };
    call.on("end", () => {
      onClose();
      call.end();
    });
    call.on("cancelled", onClose);
    call.on("error", onClose);
    call.on("close", onClose);
  };

  /** Writes one message; resolves when the stream can take the next (or is gone). */
  const write = async (call: Call, message: ConfigUpdateInput | ConfigSnapshotInput): Promise<boolean> => {
    if (call.cancelled || call.writableEnded || call.destroyed) return false;
    // A slow gateway must not make this process buffer snapshot after snapshot.
    if (!(call as { write(message: unknown): boolean }).write(message)) {
      // The listener that loses the race is removed, so a slow gateway
      // does not pile up listeners on its stream.
      const settled = new AbortController();
      await Promise.race([
        once(call, "drain", { signal: settled.signal }),
        once(call, "close", { signal: settled.signal }),
      ]).catch(() => undefined);
      settled.abort();
    }
    return !call.cancelled && !call.destroyed;
  };

  const unavailable = (call: Call, error: unknown) => {
    logger.error({ err: error }, "could not read configuration for a gateway");
    call.emit("error", { code: grpc.status.UNAVAILABLE, details: "configuration unavailable" });
  };

  /**
   * One loop per stream: `pass` brings the gateway up to date (returning
   * false once the stream is gone) and runs again whenever the publisher
   * moves on; runs requested while one is running coalesce into one more.
   * The caller starts the first run, once it holds the loop.
   */
  const streamLoop = (call: Call, pass: () => Promise<boolean>) => {
    let stopped = false;
    let running = false;
    let again = false;
    const run = async () => {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          if (!(await pass())) stopped = true;
        } while (again && !stopped);
      } catch (error) {
        stopped = true;
        unavailable(call, error);
      } finally {
        running = false;
      }
    };
    const unsubscribe = publisher.subscribe(() => void run());
    return {
      run,
      get stopped() {
        return stopped;
      },
      stop() {
        stopped = true;
        unsubscribe();
      },
    };
  };

  /**
   * One loop per stream brings the gateway from what it holds to the
   * published head, one message at a time, and runs again whenever the
   * publisher moves on; runs requested meanwhile coalesce into one.
   */
  const subscribe: GatewayConfigHandlers["Subscribe"] = (call) =>
    serve(call, (hello, gatewayId) => {
      const epoch = hello.epoch.slice(0, MAX_EPOCH_LENGTH);
      let sent: ConfigPosition | undefined = epoch ? { epoch, revision: Number(hello.revision) } : undefined;
      let first = true;
      let wantSnapshot = false;

      const next = async (): Promise<ConfigUpdateInput | undefined> => {
        if (wantSnapshot) {
          wantSnapshot = false;
          return { snapshot: await publisher.snapshot() };
        }
        if (first) return publisher.updateFor(sent);
        const head = publisher.head();
        if (!head || (sent && sent.epoch === head.epoch && sent.revision >= head.revision)) return undefined;
        return publisher.updateFor(sent);
      };
      const loop = streamLoop(call, async () => {
        for (let update = await next(); update && !loop.stopped; update = await next()) {
          first = false;
          const position = update.snapshot ?? update.delta;
          if (position) sent = { epoch: String(position.epoch), revision: Number(position.revision) };
          if (update.snapshot) {
            logger.info({ gatewayId, revision: sent?.revision }, "sending a configuration snapshot");
          }
          if (!(await write(call, update))) return false;
        }
        return true;
      });
      void loop.run();
      return {
        stop: loop.stop,
        resync() {
          wantSnapshot = true;
          void loop.run();
        },
      };
    });

  /** The deprecated stream: a whole snapshot whenever the published head moves. */
  const watch: GatewayConfigHandlers["Watch"] = (call) =>
    serve(call, (_hello, gatewayId) => {
      logger.warn({ gatewayId }, "gateway uses the deprecated Watch stream (full snapshots); upgrade it");
      let sent: ConfigPosition | undefined;
      const loop = streamLoop(call, async () => {
        const head = publisher.head();
        if (!head || (sent?.epoch === head.epoch && sent.revision >= head.revision)) return true;
        const snapshot = await publisher.snapshot();
        sent = { epoch: String(snapshot.epoch), revision: Number(snapshot.revision) };
        return write(call, snapshot);
      });
      void loop.run();
      return { stop: loop.stop };
    });

  /**
   * A unary call: the gateway token as on the streams, then the handler.
   * What the handler cannot do because the database is away is UNAVAILABLE
   * (the gateway answers its caller 503 and may retry); nothing else leaks.
   */
  const unary =
    <Request, Response>(name: string, handle: (request: Request) => Promise<Response | CallError>) =>
    (call: grpc.ServerUnaryCall<Request, Response>, callback: grpc.sendUnaryData<Response>) => {
      const presented = bearerToken(call.metadata.get("authorization")[0]);
      if (!presented || !secretsEqual(presented, gatewayToken)) {
        logger.warn({ peer: call.getPeer(), method: name }, "gateway refused: wrong gateway token");
        callback({ code: grpc.status.UNAUTHENTICATED, details: "invalid gateway token" });
        return;
      }
      handle(call.request).then(
        (result) => (isCallError(result) ? callback(result) : callback(null, result)),
        (error: unknown) => {
          logger.error({ err: error, method: name }, "could not serve a gateway's approval call");
          callback({ code: grpc.status.UNAVAILABLE, details: "approvals are unavailable" });
        },
      );
    };

  const requestApproval: GatewayConfigHandlers["RequestApproval"] = unary(
    "RequestApproval",
    async (message): Promise<ApprovalTicketInput | CallError> => {
      if (!approvals) return { code: grpc.status.UNIMPLEMENTED, details: "approvals are not served here" };
      const input = parseOrRefuse(approvalRequestInput, message);
      if (isCallError(input)) {
        logger.warn({ details: input.details }, "gateway sent an approval request out of bounds; refused");
        return input;
      }
      const ticket = await approvals.request(input);
      if (ticket.outcome === "granted") {
        return { outcome: TICKET_OUTCOMES.granted, approvalId: ticket.grant.id, url: ticket.url, grant: ticket.grant };
      }
      if (ticket.outcome !== "pending") return { outcome: TICKET_OUTCOMES[ticket.outcome] };
      return {
        outcome: TICKET_OUTCOMES.pending,
        approvalId: ticket.id,
        url: ticket.url,
        expiresAt: ticket.expiresAt.getTime(),
        created: ticket.created,
      };
    },
  );

  const consumeApproval: GatewayConfigHandlers["ConsumeApproval"] = unary("ConsumeApproval", async (message) => {
    if (!approvals) return { code: grpc.status.UNIMPLEMENTED, details: "approvals are not served here" };
    const input = parseOrRefuse(consumeApprovalInput, message);
    if (isCallError(input)) return input;
    return { granted: await approvals.consume(input) };
  });

  const reportQuotaThreshold: GatewayConfigHandlers["ReportQuotaThreshold"] = unary(
    "ReportQuotaThreshold",
    async (message) => {
      if (!quotaAlerts) return { code: grpc.status.UNIMPLEMENTED, details: "quota alerts are not served here" };
      const input = parseOrRefuse(quotaThresholdInput, message);
      if (isCallError(input)) {
        logger.warn({ details: input.details }, "gateway sent a quota threshold out of bounds; refused");
        return input;
      }
      return { raised: await quotaAlerts.raise(input) };
    },
  );

  const server = new grpc.Server(SERVER_KEEPALIVE_OPTIONS);
  server.addService(loadConfigProto().modelgate.config.v1.GatewayConfig.service, {
    Subscribe: subscribe,
    Watch: watch,
    RequestApproval: requestApproval,
    ConsumeApproval: consumeApproval,
    ReportQuotaThreshold: reportQuotaThreshold,
  });
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, serverCredentials(tls), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return {
    address: `${host}:${boundPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Config streams never end by themselves.
        setTimeout(() => server.forceShutdown(), 1_000).unref();
      }),
  };
}
