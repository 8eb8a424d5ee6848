import type { Policy } from "@modelgate/db";
import { policyDefinitionSchema } from "@modelgate/policy";

/** What a policy says about approving a request it holds; the gateway's word on these is never taken. */
export interface ApprovalSettings {
  approverGroups: string[];
  minApprovals: number;
  grant: "request" | "window";
  windowMinutes: number | undefined;
  expiresMinutes: number;
}

/**
 * The approval settings of `policy` if its current definition still holds
 * requests for `rule` (a `require_approval` prompt rule's position, or -1:
 * the policy requires approval for all it grants); undefined when the
 * policy is disabled, unreadable, or no longer asks for this approval. The
 * defaults are the policy engine's (packages/policy, approvalSettings).
 */
export function currentApprovalSettings(policy: Policy | null, rule: number): ApprovalSettings | undefined {
  if (!policy?.enabled) return undefined;
  const parsed = policyDefinitionSchema.safeParse(policy.definition);
  if (!parsed.success) return undefined;
  const definition = parsed.data;
  if (rule >= 0) {
    if (definition.promptRules[rule]?.action !== "require_approval") return undefined;
  } else if (definition.approval?.required !== true) {
    return undefined;
  }
  const settings = definition.approval;
  return {
    approverGroups: [...(settings?.approverGroups ?? [])],
    minApprovals: settings?.minApprovals ?? 1,
    grant: settings?.grant ?? "request",
    windowMinutes: settings?.grant === "window" ? settings.windowMinutes : undefined,
    expiresMinutes: settings?.expiresMinutes ?? 60,
  };
}
