// An agent: runtime client, runtime health monitor and one tunnel per
// gateway address, with draining for graceful shutdown.
import type { Logger, MetricsSource, Readiness } from "@modelgate/core";
import { type ClientTlsFiles, channelCredentials, type RuntimeHealth } from "@modelgate/protocol";
import { createAgentMetrics } from "./metrics.js";
import { createRuntimeClient, type RuntimeCredential } from "./runtime-client.js";
import { createCapacityLimiter, TunnelClient } from "./tunnel-client.js";

export interface AgentOptions {
  /** `host:port` of each gateway's tunnel listener. */
  gateways: { address: string; tls: boolean }[];
  tunnelTls?: ClientTlsFiles | undefined;
  token: string;
  runtimeUrl: string;
  runtimeCredential?: RuntimeCredential | undefined;
  runtimeHealthPath: string;
  healthIntervalMs?: number;
  capacity: number;
  version: string;
  logger: Logger;
  reconnectBackoff?: { initialMs: number; maxMs: number };
  /** Collect Node process metrics (default true; off when several agents share a process). */
  processMetrics?: boolean;
}

export interface RunningAgent {
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
  /** Resolves once every tunnel has registered with its gateway. */
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
  const healthTimer = setInterval(() => void probe(), options.healthIntervalMs ?? 5_000);
  healthTimer.unref();

  const tunnels = options.gateways.map(
    (gateway) =>
      new TunnelClient({
        address: gateway.address,
        credentials: channelCredentials(gateway.tls ? (options.tunnelTls ?? {}) : undefined),
        token: options.token,
        version: options.version,
        limiter,
        runtime,
        runtimeHealth: () => health,
        logger,
        ...(options.reconnectBackoff ? { backoff: options.reconnectBackoff } : {}),
        onOutcome: (outcome) => metrics.requests.inc({ outcome }),
      }),
  );
  metrics.observe({
    tunnels: () => tunnels,
    inFlight: () => limiter.inFlight,
    capacity: limiter.capacity,
    runtimeHealthy: () => runtimeLabel(health) === "healthy",
  });
  for (const tunnel of tunnels) tunnel.start();

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    clearInterval(healthTimer);
    for (const tunnel of tunnels) tunnel.close();
    await runtime.close();
  };

  return {
    tunnels,
    runtimeHealth: () => health,
    readiness: () => ({
      ready: tunnels.some((tunnel) => tunnel.state === "connected"),
      details: {
        tunnels: tunnels.map((tunnel) => ({ gateway: tunnel.address, state: tunnel.state })),
        runtime: runtimeLabel(health),
        inFlight: limiter.inFlight,
        capacity: limiter.capacity,
      },
    }),
    metrics: metrics.registry,
    connected: () =>
      Promise.all(
        tunnels.map((tunnel) =>
          tunnel.state === "connected"
            ? undefined
            : new Promise<void>((resolve) => {
                const onState = (state: string) => {
                  if (state !== "connected") return;
                  tunnel.off("state", onState);
                  resolve();
                };
                tunnel.on("state", onState);
              }),
        ),
      ).then(() => undefined),
    async drain(timeoutMs) {
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
