export { classifyNativeRequest, classifyOpenAiRoute } from "./classify.js";
export type {
  ApprovalRequirement,
  DenialCode,
  EffectiveLimits,
  Evaluation,
  EvaluationRequest,
  ParameterEdit,
  PromptRuleMatch,
  QuotaGrant,
  StoredPolicy,
  Subject,
} from "./evaluation.js";
export { checkPromptPatterns, type PatternCheckOptions, type PatternIssue } from "./pattern-safety.js";
export { type BroadestGrant, PolicySet } from "./policy-set.js";
export { type ExtractedPrompt, extractPrompt } from "./prompt.js";
export {
  type BodyFormat,
  type ConnectionProtocol,
  OPERATIONS,
  type Operation,
  type RequestKind,
} from "./request-kind.js";
export {
  APPROVAL_LIMITS,
  type ApprovalDefinition,
  type MaskingDefinition,
  type PolicyDefinition,
  type PolicyInput,
  type PolicyLimits,
  type PromptRule,
  policyDefinitionSchema,
  policyInputSchema,
  QUOTA_PERIODS,
  type QuotaDefinition,
} from "./schema.js";
