import { defineRoute } from "../../http/route.js";
import { page, pageQuery, uuid } from "../../http/schemas.js";
import {
  apiKeyParams,
  apiKeyView,
  createApiKeyBody,
  createdApiKeyView,
  rotateApiKeyBody,
  rotatedApiKeyView,
  updateApiKeyBody,
} from "./schemas.js";
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
      method: "get",
      path: "/api-keys/{id}",
      operationId: "getApiKey",
      summary: "One API key (never the key itself)",
      tag: "api-keys",
      role: "admin",
      params: apiKeyParams,
      response: { status: 200, description: "The API key", schema: apiKeyView },
      errors: ["not_found"],
      handler: ({ params }) => service.get(params.id),
    }),
    defineRoute({
      method: "patch",
      path: "/api-keys/{id}",
      operationId: "updateApiKey",
      summary: "Change an API key's name, groups or expiry; gateways enforce it within a second",
      tag: "api-keys",
      role: "admin",
      params: apiKeyParams,
      body: updateApiKeyBody,
      response: { status: 200, description: "The updated API key", schema: apiKeyView },
      errors: ["not_found", "conflict"],
      handler: (context) => service.update(context.params.id, context.body, context),
    }),
    defineRoute({
      method: "post",
      path: "/api-keys/{id}/rotate",
      operationId: "rotateApiKey",
      summary: "Give an API key a new secret (shown once); the old one works for an overlap, then stops",
      tag: "api-keys",
      role: "admin",
      params: apiKeyParams,
      body: rotateApiKeyBody,
      response: { status: 200, description: "The new secret", schema: rotatedApiKeyView },
      errors: ["not_found", "conflict"],
      handler: (context) => service.rotate(context.params.id, context.body, context),
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
