import { defineRoute } from "../../http/route.js";
import { page, pageQuery, resourceName } from "../../http/schemas.js";
import { connectionParams, connectionView, createConnectionBody, updateConnectionBody } from "./schemas.js";
import type { ConnectionService } from "./service.js";

export function connectionRoutes(service: ConnectionService) {
  return [
    defineRoute({
      method: "post",
      path: "/connections",
      operationId: "createConnection",
      summary: "Register a model runtime",
      tag: "connections",
      role: "admin",
      body: createConnectionBody,
      response: { status: 201, description: "The new connection", schema: connectionView },
      errors: ["conflict"],
      handler: (context) => service.create(context.body, context),
    }),
    defineRoute({
      method: "get",
      path: "/connections",
      operationId: "listConnections",
      summary: "List connections by name",
      tag: "connections",
      role: "admin",
      query: pageQuery(resourceName),
      response: { status: 200, description: "A page of connections", schema: page(connectionView) },
      handler: ({ query }) => service.list(query),
    }),
    defineRoute({
      method: "get",
      path: "/connections/{name}",
      operationId: "getConnection",
      summary: "Get one connection",
      tag: "connections",
      role: "admin",
      params: connectionParams,
      response: { status: 200, description: "The connection", schema: connectionView },
      errors: ["not_found"],
      handler: ({ params }) => service.get(params.name),
    }),
    defineRoute({
      method: "patch",
      path: "/connections/{name}",
      operationId: "updateConnection",
      summary: "Change a connection's protocol, models or description",
      tag: "connections",
      role: "admin",
      params: connectionParams,
      body: updateConnectionBody,
      response: { status: 200, description: "The updated connection", schema: connectionView },
      errors: ["not_found"],
      handler: (context) => service.update(context.params.name, context.body, context),
    }),
    defineRoute({
      method: "delete",
      path: "/connections/{name}",
      operationId: "deleteConnection",
      summary: "Delete a connection and its agents",
      tag: "connections",
      role: "admin",
      params: connectionParams,
      response: { status: 204, description: "Deleted" },
      errors: ["not_found"],
      handler: async (context) => {
        await service.remove(context.params.name, context);
        return undefined;
      },
    }),
  ];
}
