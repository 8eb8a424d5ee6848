import { z } from "zod";
import { pageQuery, resourceName, timestamp, uuid } from "../../http/schemas.js";

export const createAgentBody = z.strictObject({ name: resourceName });
export const agentParams = z.strictObject({ id: uuid });

export const agentView = z.object({
  id: z.string(),
  name: z.string(),
  connection: z.string(),
  tokenPrefix: z.string().describe("the first characters of the token, to tell tokens apart"),
  status: z.enum(["active", "revoked"]),
  version: z.string().nullable(),
  lastSeenAt: timestamp.nullable(),
  createdAt: timestamp,
  revokedAt: timestamp.nullable(),
  tunnel: z
    .object({
      state: z.enum(["connected", "draining", "disconnected"]),
      inFlight: z.number().int().describe("requests running on the agent through all reporting gateways"),
      capacity: z.number().int().describe("the most requests the agent announced it runs at once"),
      runtimeHealthy: z.boolean().nullable().describe("the agent's last probe of its runtime; null when unknown"),
      lastHeartbeatAt: timestamp.nullable(),
      gateways: z.array(
        z.object({
          gatewayId: z.string(),
          state: z.enum(["connected", "draining", "disconnected"]),
          inFlight: z.number().int(),
          lastHeartbeatAt: timestamp,
        }),
      ),
    })
    .describe("live tunnel state, as the gateways connected to this control plane report it"),
});

export const createdAgentView = z.object({
  id: z.string(),
  name: z.string(),
  connection: z.string(),
  token: z.string().describe("shown only in this response; store it in the agent's configuration"),
});

export const listAgentsQuery = pageQuery(uuid).extend({
  connection: resourceName.optional().describe("only agents of this connection"),
});

export type AgentView = z.output<typeof agentView>;
export type CreatedAgentView = z.output<typeof createdAgentView>;
