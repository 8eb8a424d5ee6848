// The agent's ops listener: /livez, /readyz (a tunnel is up) and /metrics.
// The agent has no other inbound port; this one stays on the operator's
// network (docs/operations.md).
import { type Logger, type OpsServer, startOpsServer } from "@modelgate/core";
import type { RunningAgent } from "./agent.js";

export function startAgentOps(
  agent: Pick<RunningAgent, "readiness" | "metrics">,
  options: { host: string; port: number; logger: Logger },
): Promise<OpsServer> {
  return startOpsServer({
    host: options.host,
    port: options.port,
    readiness: () => agent.readiness(),
    metrics: agent.metrics,
    logger: options.logger.child({ component: "ops" }),
  });
}
