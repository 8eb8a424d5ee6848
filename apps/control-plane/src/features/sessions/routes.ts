import { defineRoute } from "../../http/route.js";
import { page } from "../../http/schemas.js";
import { sessionListQuery, sessionParams, sessionSummaryView, sessionView } from "./schemas.js";
import type { SessionService } from "./service.js";

/** Sessions hold prompts and answers: auditors and admins only. */
export const SESSION_ROLES = ["admin", "auditor"] as const;

export function sessionRoutes(service: Pick<SessionService, "list" | "get">) {
  return [
    defineRoute({
      method: "get",
      path: "/sessions",
      operationId: "listSessions",
      summary: "Audit sessions (one per gateway request), newest first, metadata only",
      tag: "audit",
      role: SESSION_ROLES,
      query: sessionListQuery,
      response: { status: 200, description: "A page of sessions", schema: page(sessionSummaryView) },
      handler: ({ query }) => service.list(query),
    }),
    defineRoute({
      method: "get",
      path: "/sessions/{id}",
      operationId: "getSession",
      summary: "One audit session in full: request and response bodies and the response stream's events",
      tag: "audit",
      role: SESSION_ROLES,
      params: sessionParams,
      response: { status: 200, description: "The session", schema: sessionView },
      errors: ["not_found"],
      handler: ({ params }) => service.get(params.id),
    }),
  ];
}
