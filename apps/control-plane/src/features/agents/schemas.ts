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
