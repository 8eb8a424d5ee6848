// The agent's tunnels: one per gateway replica. Replicas are named either
// one by one (`grpc://host:port`, `grpcs://host:port`) or by a DNS name that
// resolves to all of them (`dns:///name:port`, e.g. a Kubernetes headless
// Service), re-resolved periodically: an address that appears gets a
// tunnel within one interval, one that disappears is drained (the gateway
// stops sending it requests, the ones in flight finish) and then closed.
import { lookup } from "node:dns/promises";
import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import type { Logger } from "@modelgate/core";

/** Gateway replicas one DNS name may give an agent tunnels to (sorted addresses, the first kept). */
export const MAX_REPLICAS_PER_NAME = 64;

export type GatewayTarget =
  /** One replica at a fixed address (`host:port`). */
  | { kind?: "static"; address: string; tls: boolean }
  /** Every address the name resolves to (A and AAAA), all on `port`. */
  | { kind: "dns"; host: string; port: number; tls: boolean };

/** Where one tunnel dials. */
export interface GatewayEndpoint {
  /** `host:port` (an IP address for DNS-discovered replicas). */
  address: string;
  tls: boolean;
  /** The DNS name it was found under: with TLS, the name its certificate must carry. */
  serverName?: string | undefined;
}

/** A name's addresses (IPv4 and IPv6, as `dns.lookup` returns them: /etc/hosts included). */
export type Resolve = (host: string) => Promise<string[]>;

const resolveAll: Resolve = async (host) =>
  (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

/** What the set needs of a tunnel. */
export interface ManagedTunnel {
  readonly address: string;
  readonly quiet: boolean;
  start(): void;
  drain(): void;
  close(): void;
  once(event: "idle", listener: () => void): unknown;
}

export interface TunnelSetOptions<T extends ManagedTunnel> {
  targets: readonly GatewayTarget[];
  createTunnel(endpoint: GatewayEndpoint): T;
  resolve?: Resolve | undefined;
  /** How often DNS names are resolved again (default 10 s). */
  resolveIntervalMs?: number | undefined;
  /** How long a replica that left DNS may take to finish its requests before its tunnel closes anyway. */
  retireTimeoutMs: number;
  logger: Logger;
}

export const DEFAULT_RESOLVE_INTERVAL_MS = 10_000;
/** While a name has never resolved, try again this often, not once per interval. */
const UNRESOLVED_RETRY_MS = 1_000;

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Emits "change" when a tunnel is added or retired. `tunnels()` lists the
 * live ones and those still finishing after their address left DNS.
 */
export class TunnelSet<T extends ManagedTunnel> extends EventEmitter {
  readonly #options: TunnelSetOptions<T>;
  readonly #resolve: Resolve;
  readonly #intervalMs: number;
  /** Live tunnels by address. */
  readonly #live = new Map<string, T>();
  /** Tunnels whose address left DNS, finishing their requests. */
  readonly #retiring = new Set<T>();
  /** Last good answer per DNS name: a failed lookup keeps it. */
  readonly #known = new Map<string, GatewayEndpoint[]>();
  #timer: NodeJS.Timeout | undefined;
  /** Resolutions run one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  #firstResolution: Promise<void> | undefined;

  constructor(options: TunnelSetOptions<T>) {
    super();
    this.#options = options;
    this.#resolve = options.resolve ?? resolveAll;
    this.#intervalMs = options.resolveIntervalMs ?? DEFAULT_RESOLVE_INTERVAL_MS;
  }

  get hasDnsTargets(): boolean {
    return this.#options.targets.some((target) => target.kind === "dns");
  }

  tunnels(): T[] {
    return [...this.#live.values(), ...this.#retiring];
  }

  /** Live tunnels only (not those retiring). */
  live(): T[] {
    return [...this.#live.values()];
  }

  /** Opens the static tunnels now and the DNS ones once resolved; resolves after the first resolution. */
  start(): Promise<void> {
    this.#firstResolution ??= this.#refresh();
    return this.#firstResolution;
  }

  /** Resolves every DNS name now and applies the result (tests; the timer does it otherwise). */
  refresh(): Promise<void> {
    return this.#refresh();
  }

  /** Stops resolving; the tunnels stay as they are (the agent drains or closes them). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Stops resolving and closes every tunnel now. */
  close(): void {
    this.stop();
    for (const tunnel of this.tunnels()) tunnel.close();
  }

  #refresh(): Promise<void> {
    const run = this.#queue.then(() => this.#refreshOnce());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #refreshOnce(): Promise<void> {
    if (this.#stopped) return;
    const endpoints = new Map<string, GatewayEndpoint>();
    let unresolved = false;
    for (const target of this.#options.targets) {
      if (target.kind !== "dns") {
        if (!endpoints.has(target.address)) endpoints.set(target.address, { address: target.address, tls: target.tls });
        continue;
      }
      const name = hostPort(target.host, target.port);
      let found = this.#known.get(name);
      try {
        const all = [...new Set(await this.#resolve(target.host))].sort();
        if (all.length === 0) throw new Error("no addresses");
        // A tunnel per address, so the answer is bounded: one DNS answer
        // (planted, or a misconfigured name) must not make the agent dial
        // thousands of addresses every second.
        const addresses = all.slice(0, MAX_REPLICAS_PER_NAME);
        if (all.length > MAX_REPLICAS_PER_NAME) {
          this.#options.logger.warn(
            { gateways: name, addresses: all.length, using: MAX_REPLICAS_PER_NAME },
            "the gateways' DNS name has more addresses than an agent keeps tunnels to; using the first",
          );
        }
        found = addresses.map((ip) => ({
          address: hostPort(ip, target.port),
          tls: target.tls,
          serverName: target.host,
        }));
        this.#known.set(name, found);
      } catch (error) {
        // A failed lookup (the resolver restarting, the name briefly gone
        // while every replica is replaced) changes nothing: dropping every
        // tunnel on a DNS blip would take every model offline.
        this.#options.logger.warn(
          { gateways: name, err: error, keeping: found?.map((endpoint) => endpoint.address) ?? [] },
          "could not resolve the gateways' DNS name; keeping the tunnels it last named",
        );
        if (!found) unresolved = true;
      }
      for (const endpoint of found ?? [])
        if (!endpoints.has(endpoint.address)) endpoints.set(endpoint.address, endpoint);
    }
    if (this.#stopped) return;
    this.#apply(endpoints);
    if (this.hasDnsTargets) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.#refresh(), unresolved ? UNRESOLVED_RETRY_MS : this.#intervalMs);
      // What keeps the agent's process alive is decided in main.ts.
      this.#timer.unref();
    }
  }

  #apply(endpoints: Map<string, GatewayEndpoint>): void {
    let changed = false;
    for (const [address, endpoint] of endpoints) {
      if (this.#live.has(address)) continue;
      const tunnel = this.#options.createTunnel(endpoint);
      this.#live.set(address, tunnel);
      if (endpoint.serverName) {
        this.#options.logger.info({ gateway: address, gatewayName: endpoint.serverName }, "new gateway replica");
      }
      tunnel.start();
      changed = true;
    }
    for (const [address, tunnel] of this.#live) {
      if (endpoints.has(address)) continue;
      this.#live.delete(address);
      this.#retire(tunnel);
      changed = true;
    }
    if (changed) this.emit("change");
  }

  /** The replica left DNS: it gets no new requests from us; the ones in flight finish (bounded). */
  #retire(tunnel: T): void {
    this.#options.logger.info({ gateway: tunnel.address }, "gateway replica gone from DNS; draining its tunnel");
    this.#retiring.add(tunnel);
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      tunnel.close();
      this.#retiring.delete(tunnel);
      this.emit("change");
    };
    const timer = setTimeout(done, this.#options.retireTimeoutMs);
    timer.unref();
    tunnel.once("idle", done);
    tunnel.drain();
    if (tunnel.quiet) done();
  }
}
