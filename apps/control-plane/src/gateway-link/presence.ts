// What gateways report about the agents they hold, kept in memory: it is
// live state, rebuilt within seconds from the gateways' reports after a
// control-plane restart, and useless once old.
import type { AgentPresence } from "@modelgate/protocol";

type AgentConnectionState = "connected" | "draining" | "disconnected";

export interface AgentStatus {
  state: AgentConnectionState;
  inFlight: number;
  capacity: number;
  runtimeHealthy: boolean | null;
  lastHeartbeatAt: string | null;
  gateways: { gatewayId: string; state: AgentConnectionState; inFlight: number; lastHeartbeatAt: string }[];
}

export class PresenceRegistry {
  readonly #byGateway = new Map<string, AgentPresence[]>();

  report(gatewayId: string, agents: AgentPresence[]): void {
    this.#byGateway.set(gatewayId, agents);
  }

  forget(gatewayId: string): void {
    this.#byGateway.delete(gatewayId);
  }

  /** The agent's status across all gateways that report to this control plane. */
  statusOf(agentId: string): AgentStatus {
    const gateways: AgentStatus["gateways"] = [];
    let inFlight = 0;
    let capacity = 0;
    let runtimeHealthy: boolean | null = null;
    let lastHeartbeat = 0;
    for (const [gatewayId, agents] of this.#byGateway) {
      for (const agent of agents) {
        if (agent.agentId !== agentId) continue;
        const state = agent.state === "AGENT_STATE_DRAINING" ? "draining" : "connected";
        gateways.push({
          gatewayId,
          state,
          inFlight: agent.inFlight ?? 0,
          lastHeartbeatAt: new Date(agent.lastHeartbeatAt ?? 0).toISOString(),
        });
        inFlight += agent.inFlight ?? 0;
        capacity = Math.max(capacity, agent.capacity ?? 0);
        runtimeHealthy = (runtimeHealthy ?? false) || Boolean(agent.runtimeHealthy);
        lastHeartbeat = Math.max(lastHeartbeat, Number(agent.lastHeartbeatAt ?? 0));
      }
    }
    const state: AgentConnectionState = gateways.some((gateway) => gateway.state === "connected")
      ? "connected"
      : gateways.length > 0
        ? "draining"
        : "disconnected";
    return {
      state,
      inFlight,
      capacity,
      runtimeHealthy,
      lastHeartbeatAt: lastHeartbeat ? new Date(lastHeartbeat).toISOString() : null,
      gateways,
    };
  }
}
