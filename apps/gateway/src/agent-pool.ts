// The agents connected to this gateway, and the choice of one for each
// request. This state is local to the gateway process by design: every
// gateway replica holds its own tunnels, so nothing here is shared.
import type * as grpc from "@grpc/grpc-js";
import type { Slot } from "./slot.js";

type AgentTunnelState = "connected" | "draining";

export interface AgentTunnel {
  readonly tunnelId: string;
  readonly agentId: string;
  readonly agentName: string;
  readonly connectionId: string;
  readonly agentVersion: string;
  readonly capacity: number;
  state: AgentTunnelState;
  /** Requests this gateway is running on the agent. */
  inFlight: number;
  /** Undefined until the agent's first probe. */
  runtimeHealthy: boolean | undefined;
  lastHeartbeatAt: number;
  /** Sequence number of the last lease, to rotate between equally loaded agents. */
  lastLeaseSeq: number;
  /** Every open slot (Exchange stream) of the agent. */
  readonly slots: Set<Slot>;
  /** Open slots with no request on them. */
  readonly idle: Slot[];
  /** Ends the agent's control stream (and with it, the registration). */
  close(code: grpc.status, details: string): void;
}

export interface Lease {
  readonly tunnel: AgentTunnel;
  readonly slot: Slot;
  /**
   * Call once when the exchange ends. `reusable`: the agent ended the
   * request cleanly (end or error frame), so the slot can take the next one;
   * otherwise the slot is closed.
   */
  release(reusable: boolean): void;
}

interface Waiter {
  exclude: ReadonlySet<string>;
  resolve(lease: Lease | undefined): void;
}

export interface AcquireOptions {
  /** Tunnels already tried for this request. */
  exclude?: ReadonlySet<string>;
  /** How long to wait for a free agent before giving up. */
  waitMs: number;
  signal?: AbortSignal;
}

export class AgentPool {
  readonly #tunnels = new Map<string, AgentTunnel>();
  readonly #waiters = new Map<string, Waiter[]>();
  #listeners = new Set<() => void>();
  #leaseSeq = 0;

  /** Called after any change an operator could see (for status reports and metrics). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  add(tunnel: AgentTunnel): void {
    this.#tunnels.set(tunnel.tunnelId, tunnel);
    this.#changed();
  }

  remove(tunnelId: string): void {
    const tunnel = this.#tunnels.get(tunnelId);
    if (!tunnel) return;
    this.#tunnels.delete(tunnelId);
    tunnel.idle.length = 0;
    for (const slot of tunnel.slots) slot.cancel("agent disconnected");
    this.#changed();
  }

  get(tunnelId: string): AgentTunnel | undefined {
    return this.#tunnels.get(tunnelId);
  }

  tunnels(): IterableIterator<AgentTunnel> {
    return this.#tunnels.values();
  }

  setDraining(tunnelId: string): void {
    const tunnel = this.#tunnels.get(tunnelId);
    if (!tunnel || tunnel.state === "draining") return;
    tunnel.state = "draining";
    // The agent closes its slots as their requests finish; idle ones now.
    for (const slot of tunnel.idle.splice(0)) slot.cancel("agent draining");
    this.#changed();
  }

  heartbeat(tunnelId: string, runtimeHealthy: boolean | undefined, now = Date.now()): void {
    const tunnel = this.#tunnels.get(tunnelId);
    if (!tunnel) return;
    const healthChanged = tunnel.runtimeHealthy !== runtimeHealthy;
    tunnel.lastHeartbeatAt = now;
    tunnel.runtimeHealthy = runtimeHealthy;
    if (healthChanged) this.#changed();
  }

  /** A slot the agent opened; it may satisfy a waiting request at once. */
  addSlot(tunnelId: string, slot: Slot): boolean {
    const tunnel = this.#tunnels.get(tunnelId);
    if (tunnel?.state !== "connected" || slot.closed) return false;
    tunnel.slots.add(slot);
    tunnel.idle.push(slot);
    this.#serveWaiters(tunnel.connectionId);
    return true;
  }

  /** Forgets a slot whose stream closed. */
  removeSlot(tunnelId: string, slot: Slot): void {
    const tunnel = this.#tunnels.get(tunnelId);
    if (!tunnel) return;
    tunnel.slots.delete(slot);
    const index = tunnel.idle.indexOf(slot);
    if (index !== -1) tunnel.idle.splice(index, 1);
  }

  /**
   * An idle slot on the best agent for the connection: connected, with a
   * free slot, healthy runtime preferred, then the lowest in-flight/capacity
   * ratio. Waits up to `waitMs` when every agent is busy or none is
   * connected; resolves undefined when none became available.
   */
  acquire(connectionId: string, { exclude = new Set(), waitMs, signal }: AcquireOptions): Promise<Lease | undefined> {
    const lease = this.#tryAcquire(connectionId, exclude);
    if (lease || waitMs <= 0 || signal?.aborted) return Promise.resolve(lease);
    return new Promise((resolve) => {
      const queue = this.#waiters.get(connectionId) ?? [];
      const waiter: Waiter = {
        exclude,
        resolve: (result) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(result);
        },
      };
      const giveUp = () => {
        const index = queue.indexOf(waiter);
        if (index !== -1) queue.splice(index, 1);
        if (queue.length === 0) this.#waiters.delete(connectionId);
        waiter.resolve(undefined);
      };
      const onAbort = () => giveUp();
      const timer = setTimeout(giveUp, waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      queue.push(waiter);
      this.#waiters.set(connectionId, queue);
    });
  }

  /**
   * Hands free slots to waiting requests in arrival order. A waiter that
   * cannot use what is free (it excludes that agent) is skipped, not allowed
   * to block the ones behind it.
   */
  #serveWaiters(connectionId: string): void {
    const queue = this.#waiters.get(connectionId);
    if (!queue) return;
    for (let index = 0; index < queue.length; ) {
      const waiter = queue[index] as Waiter;
      const lease = this.#tryAcquire(connectionId, waiter.exclude);
      if (!lease) {
        index++;
        continue;
      }
      queue.splice(index, 1);
      waiter.resolve(lease);
    }
    if (queue.length === 0) this.#waiters.delete(connectionId);
  }

  #tryAcquire(connectionId: string, exclude: ReadonlySet<string>): Lease | undefined {
    let best: AgentTunnel | undefined;
    let bestScore = Number.POSITIVE_INFINITY;
    for (const tunnel of this.#tunnels.values()) {
      if (tunnel.connectionId !== connectionId || tunnel.state !== "connected") continue;
      if (tunnel.idle.length === 0 || tunnel.inFlight >= tunnel.capacity || exclude.has(tunnel.tunnelId)) continue;
      // Unhealthy runtimes sort after every healthy one but stay usable:
      // a health probe can be wrong, and a request beats a certain 503.
      const score = tunnel.inFlight / tunnel.capacity + (tunnel.runtimeHealthy === false ? 2 : 0);
      if (score < bestScore || (score === bestScore && best && tunnel.lastLeaseSeq < best.lastLeaseSeq)) {
        best = tunnel;
        bestScore = score;
      }
    }
    if (!best) return undefined;
    const tunnel = best;
    const slot = tunnel.idle.pop() as Slot;
    tunnel.inFlight++;
    tunnel.lastLeaseSeq = ++this.#leaseSeq;
    let released = false;
    return {
      tunnel,
      slot,
      release: (reusable) => {
        if (released) return;
        released = true;
        tunnel.inFlight--;
        if (!reusable) slot.cancel("exchange abandoned");
        else if (!slot.closed && tunnel.state === "connected" && this.#tunnels.get(tunnel.tunnelId) === tunnel) {
          tunnel.idle.push(slot);
        }
        this.#serveWaiters(tunnel.connectionId);
      },
    };
  }

  /** Connected (not draining) agents per connection id, for readiness and metrics. */
  connectedCount(connectionId?: string): number {
    let count = 0;
    for (const tunnel of this.#tunnels.values()) {
      if (tunnel.state === "connected" && (connectionId === undefined || tunnel.connectionId === connectionId)) count++;
    }
    return count;
  }
}
