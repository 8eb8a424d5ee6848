import { defineRoute } from "../../http/route.js";
import { page } from "../../http/schemas.js";
import { connectionParams } from "../connections/schemas.js";
import { agentParams, agentView, createAgentBody, createdAgentView, listAgentsQuery } from "./schemas.js";
import type { AgentService } from "./service.js";

export function agentRoutes(service: AgentService) {
  return [
    defineRoute({
      method: "post",
      path: "/connections/{name}/agents",
      operationId: "createAgent",
      summary: "Register an agent for a connection and issue its token (shown once)",
      tag: "agents",
      role: "admin",
      params: connectionParams,
      body: createAgentBody,
      response: { status: 201, description: "The agent and its token", schema: createdAgentView },
      errors: ["not_found", "conflict"],
      handler: (context) => service.create(context.params.name, context.body.name, context),
    }),
    defineRoute({
      method: "get",
      path: "/agents",
      operationId: "listAgents",
      summary: "List agents, oldest first",
      tag: "agents",
      role: "admin",
      query: listAgentsQuery,
      response: { status: 200, description: "A page of agents", schema: page(agentView) },
      handler: ({ query }) => service.list(query),
    }),
    defineRoute({
      method: "delete",
      path: "/agents/{id}",
      operationId: "revokeAgent",
      summary: "Revoke an agent's token immediately",
      tag: "agents",
      role: "admin",
      params: agentParams,
      response: { status: 204, description: "Revoked" },
      errors: ["not_found"],
      handler: async (context) => {
        await service.revoke(context.params.id, context);
        return undefined;
      },
    }),
  ];
}
