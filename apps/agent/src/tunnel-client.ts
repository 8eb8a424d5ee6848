// One agent's tunnel to one gateway. An agent keeps one of these per gateway
// address; they share only the capacity limiter and the runtime client.
import { EventEmitter } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { createBackoff, type Logger } from "@modelgate/core";
import {
  AGENT_CHANNEL_OPTIONS,
  type AgentMessageInput,
  type AgentTunnelClient,
  type GatewayMessage,
  loadAgentProto,
  type RuntimeHealth,
  TUNNEL_ID_METADATA,
} from "@modelgate/protocol";
import { type ExchangeOutcome, runSlot, type Slot, type SlotCall } from "./exchange.js";
import type { RuntimeClient } from "./runtime-client.js";

export type TunnelState = "connecting" | "connected" | "draining" | "closed";

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
  address: string;
  credentials: grpc.ChannelCredentials;
  token: string;
  version: string;
  limiter: CapacityLimiter;
  runtime: RuntimeClient;
  runtimeHealth: () => RuntimeHealth;
  logger: Logger;
  /** Bounds on the reconnect delay (exponential with jitter). */
  backoff?: { initialMs: number; maxMs: number };
  /** A request on this tunnel ended (for the agent's metrics). */
  onOutcome?: (outcome: ExchangeOutcome) => void;
}

/**
 * Keeps a registration with the gateway alive, reconnecting with backoff, and
 * keeps one Exchange stream (slot) per unit of capacity open for the gateway
 * to send requests on. Emits "state" (TunnelState) and "idle" (draining, and
 * every request finished and its stream closed).
 */
export class TunnelClient extends EventEmitter {
  readonly address: string;
  #state: TunnelState = "connecting";
  #client: AgentTunnelClient;
  #options: TunnelClientOptions;
  #control: grpc.ClientDuplexStream<AgentMessageInput, GatewayMessage> | undefined;
  #tunnelId: string | undefined;
  /** Open Exchange streams, each running at most one request at a time. */
  #slots = new Set<Slot>();
  #inFlight = 0;
  #refillTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  #backoff;
  #logger: Logger;

  constructor(options: TunnelClientOptions) {
    super();
    this.address = options.address;
    this.#options = options;
    this.#logger = options.logger.child({ gateway: options.address });
    this.#backoff = createBackoff(options.backoff ?? { initialMs: 200, maxMs: 15_000 });
    const { AgentTunnel } = loadAgentProto().modelgate.agent.v1;
    this.#client = new AgentTunnel(options.address, options.credentials, {
      ...AGENT_CHANNEL_OPTIONS,
      // Reconnects are ours (with jitter), not the channel's.
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 5_000,
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

  /** Sends a heartbeat now, e.g. because the runtime's health changed. */
  heartbeat(): void {
    if (this.#state === "connected") this.#sendHeartbeat();
  }

  /** Stops taking requests from this gateway; in-flight ones continue. */
  drain(): void {
    if (this.#state === "closed" || this.#state === "draining") return;
    this.#setState("draining");
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
    this.#closeSlots({ idleOnly: false });
    this.#control?.cancel();
    this.#client.close();
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
    const control = this.#client.connect(this.#metadata());
    this.#control = control;
    control.write({
      hello: {
        agentVersion: this.#options.version,
        capacity: this.#options.limiter.capacity,
        runtimeHealth: this.#options.runtimeHealth(),
      },
    });
    control.on("data", (message: GatewayMessage) => {
      if (message.welcome) {
        this.#tunnelId = message.welcome.tunnelId;
        this.#backoff.reset();
        this.#setState("connected");
        this.#logger.info(
          { agentId: message.welcome.agentId, connection: message.welcome.connection },
          "registered with gateway",
        );
        clearInterval(this.#heartbeat);
        const interval = Math.max(1_000, message.welcome.heartbeatIntervalMs || 5_000);
        this.#heartbeat = setInterval(() => this.#sendHeartbeat(), interval);
        this.#heartbeat.unref();
        this.#refill();
      }
    });
    // Exactly one of "error" / "status"-with-OK ends a call; both lead here.
    let ended = false;
    const onEnd = (status: grpc.StatusObject | grpc.ServiceError) => {
      if (ended || control !== this.#control) return;
      ended = true;
      this.#onControlEnded(status);
    };
    control.on("error", onEnd);
    control.on("status", (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) onEnd(status);
    });
  }

  #onControlEnded(status: grpc.StatusObject): void {
    clearInterval(this.#heartbeat);
    this.#control = undefined;
    this.#tunnelId = undefined;
    this.#closeSlots({ idleOnly: false });
    if (this.#state === "closed") return;
    if (this.#state === "draining") {
      this.#emitIdleWhenDone();
      return;
    }
    this.#setState("connecting");
    const refused = status.code === grpc.status.UNAUTHENTICATED || status.code === grpc.status.PERMISSION_DENIED;
    const delay = this.#backoff.next();
    // A refused token will not start working by itself; say so loudly, but
    // keep trying (it may be an agent registered a moment ago, not yet pushed).
    const log = refused ? this.#logger.error.bind(this.#logger) : this.#logger.warn.bind(this.#logger);
    log({ code: grpc.status[status.code], details: status.details, retryInMs: delay }, "gateway tunnel closed");
    this.#reconnect = setTimeout(() => this.#connect(), delay);
    this.#reconnect.unref();
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
    while (this.#state === "connected" && this.#tunnelId && this.#slots.size < this.#options.limiter.capacity) {
      this.#openSlot();
    }
  }

  #scheduleRefill(): void {
    if (this.#refillTimer || this.#state !== "connected") return;
    this.#refillTimer = setTimeout(() => {
      this.#refillTimer = undefined;
      this.#refill();
    }, 50);
    this.#refillTimer.unref();
  }

  #openSlot(): void {
    const call: SlotCall = this.#client.exchange(this.#metadata());
    const slot = runSlot(call, {
      runtime: this.#options.runtime,
      limiter: this.#options.limiter,
      draining: () => this.#state === "draining" || this.#state === "closed",
      logger: this.#logger,
      onOutcome: this.#options.onOutcome,
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
