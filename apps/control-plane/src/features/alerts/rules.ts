import { DECISIONS } from "@modelgate/audit";
import { z } from "zod";

/**
 * The parameters of each alert kind, as stored in `alert_rules.params` and
 * accepted by the API. Limits keep a rule's evaluation cheap: a bounded
 * window, a bounded number of linked sessions, a bounded baseline.
 */
const MAX_WINDOW_SECONDS = 7 * 24 * 3600;
/** blocked_repeated links every matching session of the window to the alert, so N stays small. */
const MAX_BLOCKED_THRESHOLD = 100;

export const blockedRepeatedParams = z.strictObject({
  threshold: z
    .number()
    .int()
    .min(1)
    .max(MAX_BLOCKED_THRESHOLD)
    .describe("N: sessions within the window that raise the alert"),
  windowSeconds: z.number().int().min(1).max(MAX_WINDOW_SECONDS),
  decisions: z
    .array(z.enum(DECISIONS))
    .min(1)
    .max(DECISIONS.length)
    .refine((items) => new Set(items).size === items.length, "must not contain duplicates")
    .default(["blocked", "denied"])
    .describe("the decisions that count (default blocked and denied)"),
});

export const approvalRequestedParams = z.strictObject({});

export const volumeSpikeParams = z
  .strictObject({
    windowSeconds: z
      .number()
      .int()
      .min(10)
      .max(24 * 3600),
    baselineWindows: z
      .number()
      .int()
      .min(1)
      .max(48)
      .default(6)
      .describe("K: the baseline is the mean of the K windows before"),
    factor: z.number().min(1).max(1000).default(3).describe("a spike is at least factor × the baseline"),
    minCount: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(20)
      .describe("and at least this many requests in the window, so a quiet key going from 1 to 3 is no spike"),
  })
  .refine((params) => params.windowSeconds * (params.baselineWindows + 1) <= MAX_WINDOW_SECONDS, {
    path: ["baselineWindows"],
    message: `window × (baselineWindows + 1) must not exceed ${MAX_WINDOW_SECONDS} seconds`,
  });

export type BlockedRepeatedParams = z.output<typeof blockedRepeatedParams>;
export type VolumeSpikeParams = z.output<typeof volumeSpikeParams>;

export const ALERT_KINDS = ["blocked_repeated", "approval_requested", "volume_spike"] as const;

export type RuleParams =
  | { kind: "blocked_repeated"; params: BlockedRepeatedParams }
  | { kind: "approval_requested"; params: Record<string, never> }
  | { kind: "volume_spike"; params: VolumeSpikeParams };

/** Reads a stored rule's parameters; undefined when they do not parse (a row from a newer version is skipped, not fatal). */
export function parseRuleParams(kind: string, params: unknown): RuleParams | undefined {
  if (kind === "blocked_repeated") {
    const parsed = blockedRepeatedParams.safeParse(params);
    return parsed.success ? { kind, params: parsed.data } : undefined;
  }
  if (kind === "approval_requested") return { kind, params: {} };
  if (kind === "volume_spike") {
    const parsed = volumeSpikeParams.safeParse(params);
    return parsed.success ? { kind, params: parsed.data } : undefined;
  }
  return undefined;
}
