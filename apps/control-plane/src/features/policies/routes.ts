import { defineRoute } from "../../http/route.js";
import { page, pageQuery, uuid } from "../../http/schemas.js";
import { evaluateBody, evaluationView, policyBody, policyParams, policyView } from "./schemas.js";
import type { PolicyService } from "./service.js";

export function policyRoutes(service: PolicyService) {
  return [
    defineRoute({
      method: "post",
      path: "/policies",
      operationId: "createPolicy",
      summary: "Create a policy (a default-deny grant); gateways enforce it within a second",
      tag: "policies",
      role: "admin",
      body: policyBody,
      response: { status: 201, description: "The new policy", schema: policyView },
      errors: ["conflict"],
      handler: (context) => service.create(context.body, context),
    }),
    defineRoute({
      method: "get",
      path: "/policies",
      operationId: "listPolicies",
      summary: "List policies, oldest first",
      tag: "policies",
      role: "admin",
      query: pageQuery(uuid),
      response: { status: 200, description: "A page of policies", schema: page(policyView) },
      handler: ({ query }) => service.list(query),
    }),
    // Declared before /policies/{id} so "evaluate" is never taken for an id.
    defineRoute({
      method: "post",
      path: "/policies/evaluate",
      operationId: "evaluatePolicies",
      summary: "Dry run: the decision the gateway would make for a subject and request",
      tag: "policies",
      role: "admin",
      body: evaluateBody,
      response: { status: 200, description: "The decision", schema: evaluationView },
      handler: ({ body }) => service.evaluate(body),
    }),
    defineRoute({
      method: "get",
      path: "/policies/{id}",
      operationId: "getPolicy",
      summary: "Get one policy",
      tag: "policies",
      role: "admin",
      params: policyParams,
      response: { status: 200, description: "The policy", schema: policyView },
      errors: ["not_found"],
      handler: ({ params }) => service.get(params.id),
    }),
    defineRoute({
      method: "put",
      path: "/policies/{id}",
      operationId: "replacePolicy",
      summary: "Replace a policy; its revision increases",
      tag: "policies",
      role: "admin",
      params: policyParams,
      body: policyBody,
      response: { status: 200, description: "The policy as stored", schema: policyView },
      errors: ["not_found", "conflict"],
      handler: (context) => service.replace(context.params.id, context.body, context),
    }),
    defineRoute({
      method: "delete",
      path: "/policies/{id}",
      operationId: "deletePolicy",
      summary: "Delete a policy; what it granted is refused from the next request on",
      tag: "policies",
      role: "admin",
      params: policyParams,
      response: { status: 204, description: "Deleted" },
      errors: ["not_found"],
      handler: async (context) => {
        await service.remove(context.params.id, context);
        return undefined;
      },
    }),
  ];
}
