// The gateway's side of the agent tunnel: registers agents that present a
// valid token, keeps their Exchange streams (slots) in the pool, drops them
// when their token is revoked or they stop sending heartbeats, and tells
// them when this gateway shuts down.
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { bearerToken, hashSecret, type Logger, secretsEqual } from "@modelgate/core";
import {
  type AgentMessage,
  type AgentTunnelHandlers,
  type GatewayMessage,
  loadAgentProto,
  TUNNEL_ID_METADATA,
} from "@modelgate/protocol";
import type { AgentPool, AgentTunnel } from "./agent-pool.js";
import type { ConfigStore } from "./config-store.js";
import { type ExchangeCall, Slot } from "./slot.js";

const MAX_CAPACITY = 4096;
/**
 * Registrations one agent token may hold on this gateway at once: a restarted
 * agent overlaps briefly with its old, not yet timed-out tunnel, but a token
 * cannot open tunnels without bound.
 */
const MAX_TUNNELS_PER_AGENT = 4;
const HELLO_TIMEOUT_MS = 10_000;
/**
 * A registration that arrives before the first configuration waits for it
 * (agents probe a restarting gateway and should be taken the moment it can
 * check their token), this long at most, and this many at once.
 */
const CONFIG_WAIT_MS = 5_000;
const MAX_WAITING_FOR_CONFIG = 1_024;

export interface TunnelServiceOptions {
  store: ConfigStore;
  pool: AgentPool;
  gatewayId: string;
  logger: Logger;
  heartbeatIntervalMs: number;
}

export interface TunnelService {
  handlers: AgentTunnelHandlers;
  /**
   * The gateway is shutting down: refuse new registrations (UNAVAILABLE, so
   * agents retry soon, at this gateway's successor) and send Goodbye on
   * every registered tunnel. Tunnels keep working: requests in flight, and
   * those still arriving while load balancers move clients away, need them.
   */
  drain(): void;
  /**
   * Stops the heartbeat sweep and ends every registration with OK (after
   * drain(): nothing runs on them any more). The streams go with the server.
   */
  close(): void;
}

function bearerOf(metadata: grpc.Metadata): string | undefined {
  return bearerToken(metadata.get("authorization")[0]);
}

function endWithStatus(
  call: { emit(event: "error", error: Partial<grpc.StatusObject>): boolean },
  code: grpc.status,
  details: string,
) {
  call.emit("error", { code, details });
}

export function createTunnelService({
  store,
  pool,
  gatewayId,
  logger,
  heartbeatIntervalMs,
}: TunnelServiceOptions): TunnelService {
  /** Open Connect calls per agent id. */
  const registrations = new Map<string, number>();
  /** Welcomed Connect calls, to say Goodbye to. */
  const welcomed = new Set<grpc.ServerDuplexStream<AgentMessage, GatewayMessage>>();
  let draining = false;
  const GOODBYE = "gateway shutting down";
  // Revocation and deletion take effect on live tunnels, not only on the
  // next connection attempt.
  const onConfigChange = () => {
    for (const tunnel of [...pool.tunnels()]) {
      const credential = store.agentById(tunnel.agentId);
      if (!credential || credential.connectionId !== tunnel.connectionId) {
        tunnel.close(grpc.status.PERMISSION_DENIED, "agent token revoked");
      }
    }
  };
  store.on("change", onConfigChange);

  // An agent whose process hangs keeps its TCP connection (and HTTP/2 pings)
  // alive; missing heartbeats are what give it away.
  const sweep = setInterval(() => {
    const deadline = Date.now() - 3 * heartbeatIntervalMs;
    for (const tunnel of [...pool.tunnels()]) {
      if (tunnel.lastHeartbeatAt < deadline) tunnel.close(grpc.status.DEADLINE_EXCEEDED, "no heartbeat from agent");
    }
  }, heartbeatIntervalMs);
  sweep.unref();

  let waitingForConfig = 0;
  const connect: AgentTunnelHandlers["Connect"] = (call: grpc.ServerDuplexStream<AgentMessage, GatewayMessage>) => {
    if (draining) return endWithStatus(call, grpc.status.UNAVAILABLE, GOODBYE);
    if (!store.loaded) {
      const notYet = () =>
        endWithStatus(call, grpc.status.UNAVAILABLE, "gateway has not received its configuration yet");
      if (waitingForConfig >= MAX_WAITING_FOR_CONFIG) return notYet();
      waitingForConfig++;
      const settle = (then: () => void) => {
        waitingForConfig--;
        clearTimeout(timer);
        store.off("change", onConfig);
        call.off("cancelled", onCancelled);
        then();
      };
      const onConfig = () => settle(() => connect(call));
      const onCancelled = () => settle(() => undefined);
      const timer = setTimeout(() => settle(notYet), CONFIG_WAIT_MS);
      store.once("change", onConfig);
      call.once("cancelled", onCancelled);
      return;
    }
    const token = bearerOf(call.metadata);
    const credential = token ? store.agentByTokenHash(hashSecret(token)) : undefined;
    if (!credential) {
      logger.warn({ peer: call.getPeer() }, "agent refused: unknown or revoked token");
      return endWithStatus(call, grpc.status.UNAUTHENTICATED, "unknown or revoked agent token");
    }
    const connection = store.connectionById(credential.connectionId);
    if (!connection)
      return endWithStatus(call, grpc.status.PERMISSION_DENIED, "the agent's connection no longer exists");
    // Counted from the call, not from Hello, so simultaneous attempts cannot slip through.
    const held = registrations.get(credential.id) ?? 0;
    if (held >= MAX_TUNNELS_PER_AGENT) {
      return endWithStatus(call, grpc.status.RESOURCE_EXHAUSTED, "this agent already has the most tunnels allowed");
    }
    registrations.set(credential.id, held + 1);

    let tunnel: AgentTunnel | undefined;
    const helloTimer = setTimeout(
      () => endWithStatus(call, grpc.status.INVALID_ARGUMENT, "expected Hello as the first message"),
      HELLO_TIMEOUT_MS,
    );
    const log = logger.child({ agentId: credential.id, connection: connection.name });

    call.on("data", (message: AgentMessage) => {
      if (!tunnel) {
        clearTimeout(helloTimer);
        const hello = message.hello;
        if (!hello || hello.capacity < 1 || hello.capacity > MAX_CAPACITY) {
          return endWithStatus(call, grpc.status.INVALID_ARGUMENT, `expected Hello with capacity 1..${MAX_CAPACITY}`);
        }
        const tunnelId = randomBytes(24).toString("base64url");
        const slots = new Set<Slot>();
        tunnel = {
          tunnelId,
          agentId: credential.id,
          agentName: credential.name,
          connectionId: credential.connectionId,
          agentVersion: hello.agentVersion.slice(0, 64),
          capacity: hello.capacity,
          state: "connected",
          inFlight: 0,
          runtimeHealthy: healthOf(hello.runtimeHealth),
          lastHeartbeatAt: Date.now(),
          lastLeaseSeq: 0,
          slots,
          idle: [],
          close: (code, details) => {
            log.warn({ code: grpc.status[code], details }, "closing agent tunnel");
            for (const slot of [...slots]) slot.destroy(code, details);
            endWithStatus(call, code, details);
          },
        };
        pool.add(tunnel);
        log.info({ tunnelId: tunnelId.slice(0, 8), capacity: hello.capacity }, "agent registered");
        call.write({
          welcome: {
            agentId: credential.id,
            connection: connection.name,
            tunnelId,
            heartbeatIntervalMs,
            gatewayId,
          },
        });
        welcomed.add(call);
        // Registered in the moment the shutdown began: it hears it too.
        if (draining) call.write({ goodbye: { reason: GOODBYE } });
        return;
      }
      if (message.heartbeat) pool.heartbeat(tunnel.tunnelId, healthOf(message.heartbeat.runtimeHealth));
      else if (message.drain) {
        log.info("agent draining");
        pool.setDraining(tunnel.tunnelId);
      }
    });

    let closed = false;
    const onClose = () => {
      if (closed) return;
      closed = true;
      clearTimeout(helloTimer);
      welcomed.delete(call);
      const remaining = (registrations.get(credential.id) ?? 1) - 1;
      if (remaining > 0) registrations.set(credential.id, remaining);
      else registrations.delete(credential.id);
      if (!tunnel) return;
      pool.remove(tunnel.tunnelId);
      log.info("agent disconnected");
    };
    call.on("end", () => {
      onClose();
      call.end();
    });
    call.on("cancelled", onClose);
    call.on("error", onClose);
    call.on("close", onClose);
  };

  const exchange: AgentTunnelHandlers["Exchange"] = (call: ExchangeCall) => {
    const [tunnelId] = call.metadata.get(TUNNEL_ID_METADATA);
    const tunnel = typeof tunnelId === "string" ? pool.get(tunnelId) : undefined;
    const token = bearerOf(call.metadata);
    const credential = tunnel ? store.agentById(tunnel.agentId) : undefined;
    if (!tunnel || !token || !credential || !secretsEqual(hashSecret(token), credential.tokenHash)) {
      return endWithStatus(call, grpc.status.UNAUTHENTICATED, "unknown tunnel or token");
    }
    // One stream per unit of announced capacity, no more.
    if (tunnel.slots.size >= tunnel.capacity) {
      return endWithStatus(call, grpc.status.RESOURCE_EXHAUSTED, "more streams than the announced capacity");
    }
    const slot = new Slot(call, (closed) => pool.removeSlot(tunnel.tunnelId, closed));
    if (!pool.addSlot(tunnel.tunnelId, slot)) slot.destroy(grpc.status.UNAVAILABLE, "agent is draining");
  };

  return {
    handlers: { Connect: connect, Exchange: exchange },
    drain: () => {
      if (draining) return;
      draining = true;
      for (const call of welcomed) call.write({ goodbye: { reason: GOODBYE } });
    },
    close: () => {
      clearInterval(sweep);
      store.off("change", onConfigChange);
      for (const call of [...welcomed]) {
        welcomed.delete(call);
        if (!call.writableEnded) call.end();
      }
    },
  };
}

function healthOf(health: string): boolean | undefined {
  if (health === "RUNTIME_HEALTH_HEALTHY") return true;
  if (health === "RUNTIME_HEALTH_UNHEALTHY") return false;
  return undefined;
}

export function tunnelServiceDefinition(): grpc.ServiceDefinition {
  return loadAgentProto().modelgate.agent.v1.AgentTunnel.service;
}
