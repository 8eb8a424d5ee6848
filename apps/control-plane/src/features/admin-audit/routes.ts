import { z } from "zod";
import { defineRoute } from "../../http/route.js";
import { page, pageQuery } from "../../http/schemas.js";
import type { AdminAuditService } from "./service.js";

/** Entry ids are Postgres bigints. */
const MAX_BIGINT = 2n ** 63n - 1n;

const entry = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  actorType: z.string(),
  action: z.string(),
  targetType: z.string(),
  targetId: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  requestId: z.string().nullable(),
});

export function adminAuditRoutes(service: Pick<AdminAuditService, "list">) {
  return [
    defineRoute({
      method: "get",
      path: "/admin-audit-log",
      operationId: "listAdminAuditLog",
      summary: "Every change made through the admin API, newest first",
      tag: "audit",
      role: ["admin", "auditor"],
      query: pageQuery(
        z
          .string()
          .regex(/^[0-9]{1,19}$/, "must be an entry id")
          // zod runs refinements even after the regex failed: guard before BigInt() can throw.
          .refine((value) => /^[0-9]{1,19}$/.test(value) && BigInt(value) <= MAX_BIGINT, "must be an entry id"),
      ),
      response: { status: 200, description: "A page of entries", schema: page(entry) },
      handler: ({ query }) => service.list(query),
    }),
  ];
}
