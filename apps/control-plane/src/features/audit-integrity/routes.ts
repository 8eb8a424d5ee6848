import type { Database } from "@modelgate/db";
import { defineRoute } from "../../http/route.js";
import { SESSION_ROLES } from "../sessions/routes.js";
import { verifyQuery, verifyReport } from "./schemas.js";
import { verifyChain } from "./verify.js";

/**
 * Verifying reads every session: the same people who may read sessions.
 * `onReport` sees each report (the control plane's metrics count them).
 */
export function auditIntegrityRoutes({
  db,
  onReport,
}: {
  db: Database;
  onReport?: ((report: { status: "ok" | "broken"; checked: number }) => void) | undefined;
}) {
  return [
    defineRoute({
      method: "get",
      path: "/audit/verify",
      operationId: "verifyAuditChain",
      summary: "Recompute the audit hash chain and report ok or the first broken link",
      tag: "audit",
      role: SESSION_ROLES,
      query: verifyQuery,
      response: { status: 200, description: "The verification report", schema: verifyReport },
      handler: async ({ query }) => {
        const report = await verifyChain(db, { from: query.from, prevHash: query.prevHash, limit: query.limit });
        onReport?.(report);
        return report;
      },
    }),
  ];
}
