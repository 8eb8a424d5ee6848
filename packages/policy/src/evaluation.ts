import type { MaskingProfile } from "@modelgate/masking";
import type { BodyFormat, ConnectionProtocol, Operation } from "./request-kind.js";
import type { PolicyDefinition, QuotaDefinition } from "./schema.js";

/** A policy as the control plane stores it and pushes it to gateways. */
export interface StoredPolicy {
  id: string;
  name: string;
  revision: number;
  enabled: boolean;
  definition: PolicyDefinition;
}

/** Who is asking: a person (user id, email, groups) or a service account (API key). */
export interface Subject {
  userId: string;
  email?: string | undefined;
  groups: readonly string[];
  apiKeyId?: string | undefined;
}

export interface EvaluationRequest {
  connection: string;
  /** The model as the runtime knows it; undefined when the request names none. */
  model?: string | undefined;
  operation: Operation;
  format: BodyFormat;
  /** The parsed JSON body; required for any format but "none" when a grant has prompt rules or limits. */
  body?: Record<string, unknown> | undefined;
  /** The connection's protocol: masking profiles without fields take its default fields. */
  protocol?: ConnectionProtocol | undefined;
}

export interface EffectiveLimits {
  maxTokens?: number;
  temperature?: { min?: number; max?: number };
  maxPromptChars?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** The winning grant's quota, as the policy states it. */
  quota?: QuotaDefinition;
}

/**
 * The quota the gateway charges for an allowed request: the winning grant's,
 * and whose budgets it is charged to.
 */
export interface QuotaGrant extends QuotaDefinition {
  policyId: string;
  /**
   * For scope `group`: the caller's groups the policy names, sorted; each
   * has its own budget and the request is charged to every one of them.
   * Empty when the policy names the caller only as a user or API key: then
   * the caller's own budget is charged, as for scope `subject`.
   */
  groups: string[];
}

/**
 * A value the gateway sets in the body before forwarding it, such as
 * `{ parameter: "max_tokens", path: ["max_tokens"], value: 1024 }`. Missing
 * objects on the path (Ollama's `options`) are to be created.
 */
export interface ParameterEdit {
  parameter: string;
  path: (string | number)[];
  value: number;
}

export type DenialCode =
  | "model_not_allowed"
  | "operation_not_allowed"
  | "parameter_limit_exceeded"
  | "prompt_blocked"
  | "invalid_request";

export type Evaluation =
  | {
      decision: "allowed";
      /** The grant whose limits apply first, then any other grant whose masking applies. */
      policyIds: string[];
      reasons: string[];
      effectiveLimits: EffectiveLimits;
      capped: ParameterEdit[];
      /** The only grant the gateway charges; undefined when it sets no rate. */
      rateLimit: { policyId: string; requestsPerMinute?: number; tokensPerMinute?: number } | undefined;
      /** The winning grant's quota; undefined when it has none. */
      quota: QuotaGrant | undefined;
      /** The upfront charge against tokensPerMinute. */
      estimatedTokens: number;
      /**
       * Masking for the response: the union of every grant's masking (a
       * second policy never weakens it); undefined when no grant masks.
       */
      masking: MaskingProfile | undefined;
      /**
       * Set when humans must approve the request first: the gateway admits
       * it only with a grant for each (docs/approvals.md). At most two: the
       * `require_approval` rule that matched, then the winning grant's own
       * `approval.required` (when it is another policy's); one policy's
       * approvers never stand in for another's.
       */
      approvals?: ApprovalRequirement[];
    }
  | {
      decision: "denied";
      code: DenialCode;
      /** The parameter at fault, for parameter_limit_exceeded and invalid_request. */
      param?: string;
      /** The caller's own policies behind the denial; never set for model_not_allowed. */
      policyIds: string[];
      reasons: string[];
      /** For prompt_blocked: the rule that matched and the field of the body it matched in. */
      promptRule?: PromptRuleMatch;
    };

/** Which prompt rule matched where: for the audit record of a blocked request. */
export interface PromptRuleMatch {
  policyId: string;
  /** The rule's position in the policy's promptRules. */
  rule: number;
  /** The JSON path of the matched field in the request body, such as "messages.2.name". */
  field: string;
}

export type Denial = Extract<Evaluation, { decision: "denied" }>;

/** Why a request needs approval, under which policy, and what that policy says about approving it. */
export interface ApprovalRequirement {
  policyId: string;
  policyName: string;
  /** The `require_approval` rule's position in promptRules; undefined when the grant itself requires approval. */
  rule: number | undefined;
  /** The JSON path of the field the rule matched in ("" for a grant). */
  field: string;
  reason: string;
  approverGroups: readonly string[];
  minApprovals: number;
  grant: "request" | "window";
  /** For window grants. */
  windowMinutes: number | undefined;
  expiresMinutes: number;
}
