// An agent: runtime client, runtime health monitor and one tunnel per
// gateway replica (named, or found through DNS), with draining for
// graceful shutdown.
import type { Logger, MetricsSource, Readiness } from "@modelgate/core";
import { type ClientTlsFiles, channelCredentials, type RuntimeHealth } from "@modelgate/protocol";
import type { Tracer } from "@opentelemetry/api";
import { createAgentMetrics } from "./metrics.js";
import type { ReconnectSettings } from "./reconnect.js";
import { createRuntimeClient, type RuntimeCredential } from "./runtime-client.js";
import { createCapacityLimiter, TunnelClient } from "./tunnel-client.js";
import { type GatewayTarget, type Resolve, TunnelSet } from "./tunnel-set.js";

export interface AgentOptions {
  /** The gateways' tunnel listeners: fixed addresses, or DNS names resolving to every replica. */
  gateways: GatewayTarget[];
  /** How DNS names are resolved (default: `dns.lookup`, every address). */
  resolve?: Resolve | undefined;
  /** How often DNS names are resolved again (default 10 s). */
  resolveIntervalMs?: number | undefined;
  tunnelTls?: ClientTlsFiles | undefined;
  token: string;
  runtimeUrl: string;
  runtimeCredential?: RuntimeCredential | undefined;
  runtimeHealthPath: string;
  healthIntervalMs?: number;
  capacity: number;
  version: string;
  logger: Logger;
  /** Bounds on reconnect delays (defaults: 200 ms first, 5 s most, 60 s for a refused token). */
  reconnectBackoff?: Partial<ReconnectSettings> | undefined;
  /** How long a replica that left DNS may take to finish its requests (default 30 s). */
  retireTimeoutMs?: number | undefined;
  /** Collect Node process metrics (default true; off when several agents share a process). */
  processMetrics?: boolean;
  /**
   * Spans of every exchange (exchange-trace.ts); undefined: none. Whoever
   * made it flushes it after drain() or close() (main.ts).
   */
  tracer?: Tracer | undefined;
}

export interface RunningAgent {
  /** Every tunnel: live ones, and those finishing after their replica left DNS. */
  readonly tunnels: readonly TunnelClient[];
  runtimeHealth(): RuntimeHealth;
  /**
   * Ready while at least one tunnel is registered with its gateway: then the
   * agent takes requests. The runtime's health is in the details but does not
   * count: gateways already route around an agent whose runtime is down, and
   * an agent that restarted because of it would not mend the runtime.
   */
  readiness(): Readiness;
  /** Prometheus text for the ops listener. */
  readonly metrics: MetricsSource;
  /** Resolves once DNS names are resolved and every tunnel has registered with its gateway. */
  connected(): Promise<void>;
  /**
   * Takes no new requests, waits up to `timeoutMs` for in-flight ones, then
   * closes. Resolves true when everything finished in time.
   */
  drain(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

function runtimeLabel(health: RuntimeHealth): "healthy" | "unhealthy" | "unknown" {
  if (health === "RUNTIME_HEALTH_HEALTHY") return "healthy";
  if (health === "RUNTIME_HEALTH_UNHEALTHY") return "unhealthy";
  return "unknown";
}

export function startAgent(options: AgentOptions): RunningAgent {
  const { logger } = options;
  const runtime = createRuntimeClient({
    url: options.runtimeUrl,
    credential: options.runtimeCredential,
    connections: options.capacity,
  });
  const limiter = createCapacityLimiter(options.capacity);
  const metrics = createAgentMetrics({ processMetrics: options.processMetrics ?? true });

  // Unknown until the first probe; the gateway treats it like unhealthy only
  // when a healthy agent is available instead.
  let health: RuntimeHealth = "RUNTIME_HEALTH_UNSPECIFIED";
  const probe = async () => {
    const healthy = await runtime.probe(options.runtimeHealthPath, 2_000);
    const next: RuntimeHealth = healthy ? "RUNTIME_HEALTH_HEALTHY" : "RUNTIME_HEALTH_UNHEALTHY";
    if (next !== health)
      logger[healthy ? "info" : "warn"]({ runtime: runtime.origin, healthy }, "runtime health changed");
    health = next;
  };
  void probe();
  // Unref'd like every timer of the agent: an agent embedded in another
  // process (tests, the zero-config launcher) must not hold it open. The
  // agent process decides what keeps it alive (main.ts).
  const healthTimer = setInterval(() => void probe(), options.healthIntervalMs ?? 5_000);
  healthTimer.unref();

  const set = new TunnelSet<TunnelClient>({
    targets: options.gateways,
    resolve: options.resolve,
    resolveIntervalMs: options.resolveIntervalMs,
    retireTimeoutMs: options.retireTimeoutMs ?? 30_000,
    logger,
    createTunnel: (endpoint) =>
      new TunnelClient({
        address: endpoint.address,
        serverName: endpoint.serverName,
        // Per tunnel, so a replica found later reads the certificate files as they are then.
        credentials: channelCredentials(endpoint.tls ? (options.tunnelTls ?? {}) : undefined),
        token: options.token,
        version: options.version,
        limiter,
        runtime,
        runtimeHealth: () => health,
        logger,
        reconnect: options.reconnectBackoff,
        onOutcome: (outcome) => metrics.requests.inc({ outcome }),
        tracer: options.tracer,
      }),
  });
  metrics.observe({
    tunnels: () => set.tunnels(),
    inFlight: () => limiter.inFlight,
    capacity: limiter.capacity,
    runtimeHealthy: () => runtimeLabel(health) === "healthy",
  });
  const resolved = set.start();

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    clearInterval(healthTimer);
    set.close();
    await runtime.close();
  };

  const registered = (tunnel: TunnelClient) =>
    tunnel.state === "connected"
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const onState = (state: string) => {
            if (state !== "connected") return;
            tunnel.off("state", onState);
            resolve();
          };
          tunnel.on("state", onState);
        });

  return {
    get tunnels() {
      return set.tunnels();
    },
    runtimeHealth: () => health,
    readiness: () => {
      const tunnels = set.tunnels();
      return {
        // A tunnel to a gateway that said Goodbye does not count: it is about to end.
        ready: tunnels.some((tunnel) => tunnel.state === "connected"),
        details: {
          tunnels: tunnels.map((tunnel) => ({
            gateway: tunnel.address,
            ...(tunnel.serverName ? { name: tunnel.serverName } : {}),
            state: tunnel.state,
          })),
          runtime: runtimeLabel(health),
          inFlight: limiter.inFlight,
          capacity: limiter.capacity,
        },
      };
    },
    metrics: metrics.registry,
    connected: async () => {
      await resolved;
      await Promise.all(set.live().map(registered));
    },
    async drain(timeoutMs) {
      set.stop();
      const tunnels = set.tunnels();
      const idle = tunnels.map(
        (tunnel) =>
          new Promise<void>((resolve) => {
            tunnel.once("idle", resolve);
            tunnel.drain();
            if (tunnel.quiet) resolve();
          }),
      );
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        Promise.all(idle).then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      await close();
      return finished;
    },
    close,
  };
}
