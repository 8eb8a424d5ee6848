// The control plane's gRPC endpoint for gateways: streams configuration
// snapshots to each connected gateway and collects their agent reports.
import * as grpc from "@grpc/grpc-js";
import { bearerToken, type Logger, secretsEqual } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import {
  type ConfigSnapshotInput,
  type GatewayConfigHandlers,
  type GatewayReport,
  loadConfigProto,
  SERVER_KEEPALIVE_OPTIONS,
  type ServerTlsFiles,
  serverCredentials,
} from "@modelgate/protocol";
import type { PresenceRegistry } from "./presence.js";
import type { ConfigPublisher } from "./publisher.js";

/** How often an agent's "last seen" and version are written to Postgres at most. */
const LAST_SEEN_WRITE_INTERVAL_MS = 60_000;
const MAX_REPORTED_AGENTS = 100_000;

export interface GatewayLinkServer {
  /** `host:port` gateways dial. */
  address: string;
  close(): Promise<void>;
}

export async function startGatewayLinkServer({
  host,
  port,
  tls,
  gatewayToken,
  publisher,
  presence,
  db,
  logger,
}: {
  host: string;
  port: number;
  tls?: ServerTlsFiles | undefined;
  gatewayToken: string;
  publisher: ConfigPublisher;
  presence: PresenceRegistry;
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

  const watch: GatewayConfigHandlers["Watch"] = (call) => {
    const presented = bearerToken(call.metadata.get("authorization")[0]);
    if (!presented || !secretsEqual(presented, gatewayToken)) {
      logger.warn({ peer: call.getPeer() }, "gateway refused: wrong gateway token");
      call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: "invalid gateway token" });
      return;
    }
    let gatewayId: string | undefined;
    let unsubscribe: (() => void) | undefined;
    const send = (snapshot: ConfigSnapshotInput) => {
      if (!call.cancelled && !call.writableEnded) call.write(snapshot);
    };

    call.on("data", (report: GatewayReport) => {
      if (report.hello && !gatewayId) {
        gatewayId = report.hello.gatewayId.slice(0, 64) || "unnamed";
        logger.info({ gatewayId, version: report.hello.version, url: report.hello.publicUrl }, "gateway connected");
        unsubscribe = publisher.subscribe(send);
        publisher.current().then(send, (error: unknown) => {
          logger.error({ err: error }, "could not build configuration for a gateway");
          call.emit("error", { code: grpc.status.UNAVAILABLE, details: "configuration unavailable" });
        });
      } else if (report.agents && gatewayId) {
        const agents = report.agents.agents.slice(0, MAX_REPORTED_AGENTS);
        presence.report(gatewayId, agents);
        persistLastSeen({ agents });
      }
    });
    let closed = false;
    const onClose = () => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
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

  const server = new grpc.Server(SERVER_KEEPALIVE_OPTIONS);
  server.addService(loadConfigProto().modelgate.config.v1.GatewayConfig.service, { Watch: watch });
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
        // Watch streams never end by themselves.
        setTimeout(() => server.forceShutdown(), 1_000).unref();
      }),
  };
}
