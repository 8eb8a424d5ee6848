import { defineRoute } from "../../http/route.js";
import { page, pageQuery, uuid } from "../../http/schemas.js";
import { apiKeyParams, apiKeyView, createApiKeyBody, createdApiKeyView } from "./schemas.js";
import type { ApiKeyService } from "./service.js";

export function apiKeyRoutes(service: ApiKeyService) {
  return [
    defineRoute({
      method: "post",
      path: "/api-keys",
      operationId: "createApiKey",
      summary: "Create a service-account API key (shown once)",
      tag: "api-keys",
      role: "admin",
      body: createApiKeyBody,
      response: { status: 201, description: "The key", schema: createdApiKeyView },
      handler: (context) => service.create(context.body, context),
    }),
    defineRoute({
      method: "get",
      path: "/api-keys",
      operationId: "listApiKeys",
      summary: "List API keys, oldest first (never the keys themselves)",
      tag: "api-keys",
      role: "admin",
      query: pageQuery(uuid),
      response: { status: 200, description: "A page of API keys", schema: page(apiKeyView) },
      handler: ({ query }) => service.list(query),
    }),
    defineRoute({
      method: "delete",
      path: "/api-keys/{id}",
      operationId: "revokeApiKey",
      summary: "Revoke an API key immediately",
      tag: "api-keys",
      role: "admin",
      params: apiKeyParams,
      response: { status: 204, description: "Revoked" },
      errors: ["not_found"],
      handler: async (context) => {
        await service.revoke(context.params.id, context);
        return undefined;
      },
    }),
  ];
}
