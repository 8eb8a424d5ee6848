// One agent's tunnel to one gateway. An agent keeps one of these per gateway
// address (a TunnelSet holds them); they share only the capacity limiter
// and the runtime client.
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "@modelgate/core";
import {
  AGENT_CHANNEL_OPTIONS,
  type AgentMessageInput,
  type AgentTunnelClient,
  type GatewayMessage,
  loadAgentProto,
  type RuntimeHealth,
  TUNNEL_ID_METADATA,
} from "@modelgate/protocol";
import type { Tracer } from "@opentelemetry/api";
import { type ExchangeOutcome, runSlot, type Slot, type SlotCall } from "./exchange.js";
import { createReconnectSchedule, type FailureKind, type ReconnectSettings } from "./reconnect.js";
import type { RuntimeClient } from "./runtime-client.js";

/**
 * - connecting: not registered (first attempt, or the gateway went away);
 * - connected: registered, taking requests;
 * - leaving: registered, but the gateway said Goodbye (it is shutting down):
 *   requests it still sends are served, and the tunnel does not count
 *   towards the agent's readiness;
 * - draining: this agent takes no new requests (SIGTERM, or the gateway's
 *   address left DNS), finishing the ones in flight;
 * - closed.
 */
export type TunnelState = "connecting" | "connected" | "leaving" | "draining" | "closed";

/**
 * A registration that has not been welcomed in this time is given up and
 * tried again: a connection to an address that swallows packets (a replica
 * whose IP went away) would otherwise wait out TCP's own timeout.
 */
const REGISTER_TIMEOUT_MS = 10_000;

/** Caps requests across all of an agent's tunnels. */
export interface CapacityLimiter {
  readonly capacity: number;
  readonly inFlight: number;
  tryAcquire(): boolean;
  release(): void;
}

export function createCapacityLimiter(capacity: number): CapacityLimiter {
  let inFlight = 0;
  return {
    capacity,
    get inFlight() {
      return inFlight;
    },
    tryAcquire() {
      if (inFlight >= capacity) return false;
      inFlight++;
      return true;
    },
    release() {
      inFlight = Math.max(0, inFlight - 1);
    },
  };
}

export interface TunnelClientOptions {
  /** `host:port` the tunnel dials. */
  address: string;
  /**
   * The DNS name a replica was found under: it is dialled at its IP
   * address, but the name is its `:authority` and, with TLS, the name its
   * certificate must carry.
   */
  serverName?: string | undefined;
  credentials: grpc.ChannelCredentials;
  token: string;
  version: string;
  limiter: CapacityLimiter;
  runtime: RuntimeClient;
  runtimeHealth: () => RuntimeHealth;
  logger: Logger;
  /** Bounds on the reconnect delays (reconnect.ts). */
  reconnect?: Partial<ReconnectSettings> | undefined;
  /** A request on this tunnel ended (for the agent's metrics). */
  onOutcome?: (outcome: ExchangeOutcome) => void;
  /** Spans of every exchange; undefined when the agent does not trace. */
  tracer?: Tracer | undefined;
}

/**
 * Keeps a registration with the gateway alive, reconnecting with backoff
 * for as long as the agent runs, and keeps one Exchange stream (slot) per
 * unit of capacity open for the gateway to send requests on. Emits "state"
 * (TunnelState) and "idle" (draining, and every request finished and its
 * stream closed).
 */
export class TunnelClient extends EventEmitter {
  readonly address: string;
  readonly serverName: string | undefined;
  #state: TunnelState = "connecting";
  /** The channel of the current registration attempt (a new one per attempt). */
  #client: AgentTunnelClient | undefined;
  #options: TunnelClientOptions;
  #control: grpc.ClientDuplexStream<AgentMessageInput, GatewayMessage> | undefined;
  #tunnelId: string | undefined;
  /** Open Exchange streams, each running at most one request at a time. */
  #slots = new Set<Slot>();
  #inFlight = 0;
  #refillTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  #registerTimer: NodeJS.Timeout | undefined;
  #schedule;
  /** The outage being retried: its first failure is logged at warn, the attempts after it at debug. */
  #outage: { since: number; attempts: number; last: string } | undefined;
  #logger: Logger;

  constructor(options: TunnelClientOptions) {
    super();
    this.address = options.address;
    this.serverName = options.serverName;
    this.#options = options;
    this.#logger = options.logger.child({
      gateway: options.address,
      ...(options.serverName ? { gatewayName: options.serverName } : {}),
    });
    this.#schedule = createReconnectSchedule(options.reconnect);
  }

  /**
   * A new channel for each registration attempt. Reconnecting is this
   * class's job alone: a channel that failed once would wait out gRPC's own
   * connection backoff before trying again, on top of ours, and a fresh one
   * dials at once.
   */
  #newChannel(): AgentTunnelClient {
    const { AgentTunnel } = loadAgentProto().modelgate.agent.v1;
    const { serverName } = this.#options;
    return new AgentTunnel(this.#options.address, this.#options.credentials, {
      ...AGENT_CHANNEL_OPTIONS,
      // Verify the certificate against the DNS name, and send it as the
      // :authority, though the channel dials an IP address.
      ...(serverName ? { "grpc.ssl_target_name_override": serverName, "grpc.default_authority": serverName } : {}),
    });
  }

  get state(): TunnelState {
    return this.#state;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** No request running and no stream open: a draining tunnel may close now. */
  get quiet(): boolean {
    return this.#inFlight === 0 && this.#slots.size === 0;
  }

  start(): void {
    this.#connect();
  }

  /** Registered with the gateway: it may send requests. */
  get registered(): boolean {
    return this.#state === "connected" || this.#state === "leaving";
  }

  /** Sends a heartbeat now, e.g. because the runtime's health changed. */
  heartbeat(): void {
    if (this.registered) this.#sendHeartbeat();
  }

  /** Stops taking requests from this gateway; in-flight ones continue. */
  drain(): void {
    if (this.#state === "closed" || this.#state === "draining") return;
    this.#setState("draining");
    clearTimeout(this.#reconnect);
    this.#control?.write({ drain: {} });
    // Idle slots go now; busy ones finish their request first.
    this.#closeSlots({ idleOnly: true });
    this.#emitIdleWhenDone();
  }

  /** Closes the tunnel now; in-flight exchanges are cancelled with it. */
  close(): void {
    if (this.#state === "closed") return;
    this.#setState("closed");
    clearInterval(this.#heartbeat);
    clearTimeout(this.#reconnect);
    clearTimeout(this.#refillTimer);
    clearTimeout(this.#registerTimer);
    this.#closeSlots({ idleOnly: false });
    this.#control?.cancel();
    this.#client?.close();
  }

  #metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${this.#options.token}`);
    if (this.#tunnelId) metadata.set(TUNNEL_ID_METADATA, this.#tunnelId);
    return metadata;
  }

  #setState(state: TunnelState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }

  #connect(): void {
    if (this.#state === "closed" || this.#state === "draining") return;
    this.#tunnelId = undefined;
    const client = this.#newChannel();
    this.#client = client;
    const control = client.connect(this.#metadata());
    this.#control = control;
    let timedOut = false;
    this.#registerTimer = setTimeout(() => {
      if (control !== this.#control || this.#tunnelId) return;
      timedOut = true;
      control.cancel();
    }, REGISTER_TIMEOUT_MS);
    this.#registerTimer.unref();
    control.write({
      hello: {
        agentVersion: this.#options.version,
        capacity: this.#options.limiter.capacity,
        runtimeHealth: this.#options.runtimeHealth(),
      },
    });
    control.on("data", (message: GatewayMessage) => {
      if (control !== this.#control) return;
      if (message.welcome) {
        clearTimeout(this.#registerTimer);
        this.#tunnelId = message.welcome.tunnelId;
        this.#schedule.reset();
        const outage = this.#outage;
        this.#outage = undefined;
        this.#setState("connected");
        this.#logger.info(
          {
            agentId: message.welcome.agentId,
            connection: message.welcome.connection,
            gatewayId: message.welcome.gatewayId,
            ...(outage ? { attempts: outage.attempts, awayMs: Date.now() - outage.since } : {}),
          },
          "registered with gateway",
        );
        clearInterval(this.#heartbeat);
        const interval = Math.max(1_000, message.welcome.heartbeatIntervalMs || 5_000);
        this.#heartbeat = setInterval(() => this.#sendHeartbeat(), interval);
        this.#heartbeat.unref();
        this.#refill();
      } else if (message.goodbye && this.#state === "connected") {
        // The gateway is shutting down: it still finishes (and may still
        // send) requests on this tunnel, then ends it. Expected, not an error.
        this.#setState("leaving");
        this.#logger.info({ reason: message.goodbye.reason }, "gateway is shutting down; serving its last requests");
      }
    });
    // Exactly one of "error" / "status"-with-OK ends a call; both lead here.
    let ended = false;
    const onEnd = (status: grpc.StatusObject | grpc.ServiceError) => {
      if (ended || control !== this.#control) return;
      ended = true;
      // Nobody welcomed us: as good as absent.
      const why = timedOut
        ? { ...status, code: grpc.status.UNAVAILABLE, details: `no welcome within ${REGISTER_TIMEOUT_MS} ms` }
        : status;
      this.#onControlEnded(why);
    };
    control.on("error", onEnd);
    control.on("status", (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) onEnd(status);
    });
  }

  #onControlEnded(status: grpc.StatusObject): void {
    clearInterval(this.#heartbeat);
    clearTimeout(this.#registerTimer);
    const wasLeaving = this.#state === "leaving";
    this.#control = undefined;
    this.#tunnelId = undefined;
    this.#closeSlots({ idleOnly: false });
    // The registration's channel goes with it; the next attempt dials a new one.
    this.#client?.close();
    this.#client = undefined;
    if (this.#state === "closed") return;
    if (this.#state === "draining") {
      this.#emitIdleWhenDone();
      return;
    }
    this.#setState("connecting");
    // After its Goodbye the gateway is going away: as good as absent.
    const { kind, delayMs } = this.#schedule.next(wasLeaving ? grpc.status.UNAVAILABLE : status.code);
    this.#logFailure(status, kind, delayMs, wasLeaving);
    // Never given up: a gateway can come back at any time, and an agent
    // exists to serve it. Only SIGTERM or SIGINT ends an agent.
    this.#reconnect = setTimeout(() => this.#connect(), delayMs);
    this.#reconnect.unref();
  }

  /**
   * A refused token is logged at error every time: it will not start
   * working by itself (but a token can be re-issued, or may not have reached
   * this gateway yet, so it is retried). A gateway that said Goodbye ending
   * the tunnel is expected (info). Anything else: warn once per outage and
   * whenever the reason changes, debug for the attempts in between, so a
   * gateway away for an hour does not fill the log.
   */
  #logFailure(status: grpc.StatusObject, kind: FailureKind, retryInMs: number, wasLeaving: boolean): void {
    const fields = { code: grpc.status[status.code], details: status.details, retryInMs };
    const reason = `${status.code} ${status.details}`;
    const outage = this.#outage;
    this.#outage = { since: outage?.since ?? Date.now(), attempts: (outage?.attempts ?? 0) + 1, last: reason };
    if (kind === "refused") {
      this.#logger.error(fields, "gateway refused the agent token; retrying slowly (is the token revoked or wrong?)");
    } else if (wasLeaving) {
      this.#logger.info(fields, "gateway closed the tunnel after its goodbye; reconnecting");
    } else if (!outage || outage.last !== reason) {
      this.#logger.warn(fields, outage ? "gateway still unreachable" : "gateway tunnel closed; reconnecting");
    } else {
      this.#logger.debug({ ...fields, attempts: this.#outage.attempts }, "gateway still unreachable");
    }
  }

  #sendHeartbeat(): void {
    this.#control?.write({
      heartbeat: { inFlight: this.#inFlight, runtimeHealth: this.#options.runtimeHealth() },
    });
  }

  /**
   * Opens slots until there is one per unit of capacity. Streams that died are
   * replaced, after a short pause so a gateway that keeps refusing them
   * cannot make this spin.
   */
  #refill(): void {
    while (this.registered && this.#tunnelId && this.#slots.size < this.#options.limiter.capacity) {
      this.#openSlot();
    }
  }

  #scheduleRefill(): void {
    if (this.#refillTimer || !this.registered) return;
    this.#refillTimer = setTimeout(() => {
      this.#refillTimer = undefined;
      this.#refill();
    }, 50);
    this.#refillTimer.unref();
  }

  #openSlot(): void {
    const client = this.#client;
    if (!client) return;
    const call: SlotCall = client.exchange(this.#metadata());
    const slot = runSlot(call, {
      runtime: this.#options.runtime,
      limiter: this.#options.limiter,
      draining: () => this.#state === "draining" || this.#state === "closed",
      logger: this.#logger,
      onOutcome: this.#options.onOutcome,
      tracer: this.#options.tracer,
      onBusy: (busy) => {
        this.#inFlight += busy ? 1 : -1;
        // Finished its last request: a draining agent half-closes the
        // stream, so the end part already written still reaches the gateway.
        if (!busy && this.#state === "draining") slot.finish();
      },
      onClosed: () => {
        this.#slots.delete(slot);
        if (this.#state === "draining") this.#emitIdleWhenDone();
        else this.#scheduleRefill();
      },
    });
    this.#slots.add(slot);
  }

  /** "idle": draining, and every request finished and its stream closed. */
  #emitIdleWhenDone(): void {
    if (this.quiet) this.emit("idle");
  }

  #closeSlots({ idleOnly }: { idleOnly: boolean }): void {
    for (const slot of [...this.#slots]) {
      if (idleOnly && slot.busy) continue;
      slot.close();
    }
  }
}
