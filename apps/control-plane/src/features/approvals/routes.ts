import { defineRoute } from "../../http/route.js";
import { page } from "../../http/schemas.js";
import { approvalListQuery, approvalParams, approvalSummaryView, approvalView, decisionBody } from "./schemas.js";
import type { ApprovalService } from "./service.js";

/**
 * Admins, auditors and approvers see every approval. Any other person signed
 * in with OIDC reaches these routes too (anyPerson): they see, and may
 * decide, the approvals whose approver groups they are in; the service
 * checks that. The admin token reads but never decides.
 */
const ROLES = ["admin", "auditor", "approver"] as const;

export function approvalRoutes(service: ApprovalService) {
  const decide = (decision: "approve" | "deny", operationId: string, summary: string) =>
    defineRoute({
      method: "post",
      path: `/approvals/{id}/${decision}`,
      operationId,
      summary,
      tag: "approvals",
      role: ROLES,
      anyPerson: true,
      params: approvalParams,
      body: decisionBody,
      response: { status: 200, description: "The approval after this decision", schema: approvalView },
      errors: ["not_found", "self_approval", "already_decided", "already_voted", "approval_expired"],
      handler: (context) => service.decide(context.params.id, decision, context.body, context),
    });
  return [
    defineRoute({
      method: "get",
      path: "/approvals",
      operationId: "listApprovals",
      summary:
        "List approvals newest first: all for admins, auditors and approvers, else those of one's approver groups",
      tag: "approvals",
      role: ROLES,
      anyPerson: true,
      query: approvalListQuery,
      response: {
        status: 200,
        description: "A page of approvals (without their prompts)",
        schema: page(approvalSummaryView),
      },
      handler: ({ query, principal }) => service.list(query, principal),
    }),
    defineRoute({
      method: "get",
      path: "/approvals/{id}",
      operationId: "getApproval",
      summary: "One approval, with the (masked) prompt it is about",
      tag: "approvals",
      role: ROLES,
      anyPerson: true,
      params: approvalParams,
      response: { status: 200, description: "The approval", schema: approvalView },
      errors: ["not_found"],
      handler: ({ params, principal }) => service.get(params.id, principal),
    }),
    decide(
      "approve",
      "approveApproval",
      "Approve: a person of the approver groups (or the approver role), never the requester",
    ),
    decide("deny", "denyApproval", "Deny: one denial decides, and its comment reaches the caller"),
  ];
}
