import { z } from "zod";
import { timestamp } from "../../http/schemas.js";
import { USAGE_DIMENSIONS, USAGE_INTERVALS } from "./rollup.js";

const DAY_MS = 86_400_000;

/**
 * The longest range a query may span, per interval: a year of days, a
 * quarter of hours. Bounded so that no query reads, or answers with, more
 * than that many buckets per group.
 */
const MAX_RANGE_DAYS = { day: 366, hour: 92 } as const;
const MAX_GROUPS = 100;

export const usageQuery = z
  .strictObject({
    groupBy: z
      .enum(USAGE_DIMENSIONS)
      .describe("what each group of buckets is: a subject, a group, a connection or a model"),
    from: timestamp.describe("start of the range (RFC 3339), rounded down to its hour or UTC day"),
    to: timestamp.describe("end of the range, exclusive (RFC 3339), rounded up to its hour or UTC day"),
    interval: z.enum(USAGE_INTERVALS).default("day").describe("bucket size: an hour, or a UTC day"),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(MAX_GROUPS)
      .default(20)
      .describe("most groups answered: those with the most tokens, then the most requests"),
  })
  .superRefine((query, ctx) => {
    const span = Date.parse(query.to) - Date.parse(query.from);
    if (span <= 0) ctx.addIssue({ code: "custom", path: ["to"], message: "must be after from" });
    else if (span > MAX_RANGE_DAYS[query.interval] * DAY_MS) {
      ctx.addIssue({
        code: "custom",
        path: ["to"],
        message: `must be at most ${MAX_RANGE_DAYS[query.interval]} days after from with interval=${query.interval}`,
      });
    }
  });

const counts = {
  requests: z.number().int().describe("sessions: every request the gateways recorded, refused ones included"),
  promptTokens: z.number().int(),
  completionTokens: z.number().int(),
  totalTokens: z.number().int().describe("as runtimes reported it, else prompt + completion"),
};

export const usageView = z.object({
  groupBy: z.enum(USAGE_DIMENSIONS),
  interval: z.enum(USAGE_INTERVALS),
  from: z.string().describe("the range answered: from, rounded down to the interval"),
  to: z.string().describe("the range answered: to, rounded up to the interval (exclusive)"),
  groups: z.array(
    z.object({
      key: z
        .string()
        .nullable()
        .describe(
          "the subject id, group, connection or model; null for sessions without one (refused before it was known)",
        ),
      label: z.string().nullable().describe("for a subject: its display name or email"),
      total: z.object(counts),
      buckets: z
        .array(z.object({ start: z.string(), ...counts }))
        .describe("the buckets with sessions, oldest first; an empty bucket is left out"),
    }),
  ),
  more: z.boolean().describe("more groups had sessions in the range than limit"),
});

export type UsageQuery = z.output<typeof usageQuery>;
export type UsageView = z.output<typeof usageView>;
