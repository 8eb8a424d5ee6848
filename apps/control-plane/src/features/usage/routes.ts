import { defineRoute } from "../../http/route.js";
import { usageQuery, usageView } from "./schemas.js";
import type { UsageService } from "./service.js";

/** Usage names who used what and when, like session metadata: auditors and admins. */
const USAGE_ROLES = ["admin", "auditor"] as const;

export function usageRoutes(service: UsageService) {
  return [
    defineRoute({
      method: "get",
      path: "/usage",
      operationId: "getUsage",
      summary:
        "Requests and tokens per hour or day, grouped by subject, group, connection or model, from the usage rollup",
      tag: "audit",
      role: USAGE_ROLES,
      query: usageQuery,
      response: { status: 200, description: "The range's usage, per group and bucket", schema: usageView },
      handler: ({ query }) => service.query(query),
    }),
  ];
}
