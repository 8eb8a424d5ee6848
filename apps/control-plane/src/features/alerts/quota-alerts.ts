// Alerts for quotas at 80 and 100 % of their budget. The gateways' quota
// store notices a crossing once per budget and window across every gateway
// and reports it over the gateway link (ReportQuotaThreshold); this raises
// it as an alert, with no rule needed (a budget someone set is worth
// knowing about), and sends it to the SIEM exporters like any alert.
import { createHash } from "node:crypto";
import type { Database } from "@modelgate/db";
import { z } from "zod";
import type { AlertEventBody } from "../exporters/events.js";
import { toAlertBody } from "./evaluator.js";

/** What a gateway reports; bounded, since it arrives from the network. */
export const quotaThresholdInput = z.strictObject({
  policyId: z.uuid(),
  scope: z.enum(["subject", "group"]),
  owner: z.string().min(1).max(320),
  kind: z.enum(["tokens", "requests"]),
  per: z.enum(["hour", "day", "month"]),
  window: z.string().regex(/^(h\d{4}-\d{2}-\d{2}T\d{2}|d\d{4}-\d{2}-\d{2}|m\d{4}-\d{2})$/),
  used: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  limit: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  threshold: z.union([z.literal(80), z.literal(100)]),
});

export type QuotaThresholdInput = z.output<typeof quotaThresholdInput>;

export interface QuotaAlerts {
  /** Raises the crossing's alert; false when it was raised before (a gateway's retry, another gateway's report). */
  raise(crossing: QuotaThresholdInput): Promise<boolean>;
}

/**
 * The alert's id, derived from what identifies the crossing: reports of the
 * same crossing (retries, races between control planes) insert one row.
 * Formatted as a UUID (version nibble 8: custom) for the alerts' id column.
 */
export function quotaAlertId(crossing: QuotaThresholdInput): string {
  const digest = createHash("sha256")
    .update(
      [
        "quota",
        crossing.policyId,
        crossing.scope,
        crossing.owner,
        crossing.kind,
        crossing.window,
        crossing.threshold,
      ].join("\n"),
    )
    .digest("hex");
  const variant = ((Number.parseInt(digest.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${digest.slice(0, 8)}-${digest.slice(8, 12)}-8${digest.slice(13, 16)}-${variant}${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
}

export function createQuotaAlerts({
  db,
  send,
}: {
  db: Database;
  /** Hands a new alert to the SIEM exporters (the export pipeline, when Redis is configured). */
  send?: ((alert: AlertEventBody) => Promise<void>) | undefined;
}): QuotaAlerts {
  return {
    async raise(crossing) {
      const policy = await db.policy.findUnique({ where: { id: crossing.policyId }, select: { name: true } });
      const now = new Date();
      const id = quotaAlertId(crossing);
      const { count } = await db.alert.createMany({
        data: [
          {
            id,
            ruleId: null,
            ruleName: `quota of ${policy?.name ?? crossing.policyId}`,
            kind: "quota_threshold",
            // A subject's budget names the subject, as sessions do; a group's names nobody.
            subject: crossing.scope === "subject" ? crossing.owner : null,
            sessionIds: [],
            details: { ...crossing, policyName: policy?.name ?? null },
            triggeredAt: now,
            createdAt: now,
          },
        ],
        skipDuplicates: true,
      });
      // Sent again for a repeated report too: the export queue keeps one
      // delivery per event and exporter, so a report retried because the
      // send failed the first time still reaches the exporters.
      const row = await db.alert.findUnique({ where: { id } });
      if (row && send) await send(toAlertBody(row));
      return count > 0;
    },
  };
}
