// Prometheus metrics of an agent, in a registry of its own so several agents
// in one process (tests, the zero-config launcher) do not collide. Gauges
// read the agent's state when scraped; nothing is updated per request but
// the outcome counter.
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { ExchangeOutcome } from "./exchange.js";
import type { TunnelState } from "./tunnel-client.js";

const TUNNEL_STATES: readonly TunnelState[] = ["connecting", "connected", "leaving", "draining", "closed"];
/** Every outcome (a Record, so a new one cannot be forgotten), each series present from the start at 0. */
const OUTCOMES: Record<ExchangeOutcome, true> = {
  completed: true,
  draining: true,
  at_capacity: true,
  masking_failed: true,
  invalid_request: true,
  runtime_timeout: true,
  runtime_unavailable: true,
  aborted: true,
};

/** What the gauges read at scrape time. */
interface AgentState {
  tunnels(): Iterable<{ readonly address: string; readonly state: TunnelState }>;
  inFlight(): number;
  capacity: number;
  /** false while the probe fails, and before its first answer. */
  runtimeHealthy(): boolean;
}

export interface AgentMetrics {
  registry: Registry;
  requests: Counter<"outcome">;
  /** Where the gauges read their values. */
  observe(state: AgentState): void;
}

export function createAgentMetrics({ processMetrics = true }: { processMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  let state: AgentState | undefined;
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: "modelgate_agent_" });
  new Gauge({
    name: "modelgate_agent_tunnel_state",
    help: "1 for each gateway tunnel's current state (connecting, connected, leaving, draining, closed), 0 for the others",
    labelNames: ["gateway", "state"],
    registers: [registry],
    collect() {
      if (!state) return;
      this.reset();
      for (const tunnel of state.tunnels()) {
        for (const name of TUNNEL_STATES)
          this.set({ gateway: tunnel.address, state: name }, tunnel.state === name ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: "modelgate_agent_requests_in_flight",
    help: "Requests running against the runtime right now, over every tunnel",
    registers: [registry],
    collect() {
      if (state) this.set(state.inFlight());
    },
  });
  new Gauge({
    name: "modelgate_agent_capacity",
    help: "Most requests the agent runs at once (MODELGATE_AGENT_CAPACITY)",
    registers: [registry],
    collect() {
      if (state) this.set(state.capacity);
    },
  });
  new Gauge({
    name: "modelgate_agent_runtime_healthy",
    help: "1 while the runtime's health probe succeeds, 0 while it fails or before its first answer",
    registers: [registry],
    collect() {
      if (state) this.set(state.runtimeHealthy() ? 1 : 0);
    },
  });
  const requests = new Counter({
    name: "modelgate_agent_requests_total",
    help: "Requests the agent took from gateways, by outcome (completed, aborted, runtime_unavailable, …)",
    labelNames: ["outcome"],
    registers: [registry],
  });
  for (const outcome of Object.keys(OUTCOMES)) requests.inc({ outcome }, 0);
  return {
    registry,
    requests,
    observe(next) {
      state = next;
    },
  };
}
