import type { EffectiveLimits, StoredPolicy } from "./evaluation.js";
import { compileModelPatterns, type ModelMatcher } from "./glob.js";
import type { Operation } from "./request-kind.js";
import { compileRulePattern, type PolicyDefinition, policyDefinitionSchema } from "./schema.js";

export interface CompiledRule {
  regex: RegExp;
  description: string | undefined;
  /** Its position in the policy's promptRules, as the audit record names it. */
  index: number;
}

/** A policy ready for evaluation: everything that can be prepared once is. */
export interface CompiledPolicy {
  id: string;
  name: string;
  definition: PolicyDefinition;
  /** Connection → matcher for its model patterns. */
  resources: ReadonlyMap<string, ModelMatcher>;
  operations: ReadonlySet<Operation>;
  limits: Readonly<EffectiveLimits>;
  blockRules: readonly CompiledRule[];
  approvalRules: readonly CompiledRule[];
  /** Prompt rules or maxPromptChars: the prompt must be readable text. */
  checksPrompt: boolean;
  /** Position in the most-permissive-first order of the set (0 = most permissive). */
  rank: number;
}

class PolicyCompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PolicyCompileError";
  }
}

/** Frozen, so a caller holding `effectiveLimits` cannot change the policy for the next request. */
function freezeLimits(limits: PolicyDefinition["limits"], quota: PolicyDefinition["quota"]): Readonly<EffectiveLimits> {
  const copy: EffectiveLimits = { ...limits };
  if (limits.temperature) copy.temperature = Object.freeze({ ...limits.temperature });
  // Reported with the limits (the dry run shows it); charged by the gateway.
  if (quota) copy.quota = Object.freeze({ ...quota });
  return Object.freeze(copy);
}

/**
 * Validates the definition again (the gateway gets it over the wire, and a
 * newer control plane may write fields this version does not know) and
 * prepares it. Throws PolicyCompileError; PolicySet turns that into an entry
 * of its `errors`.
 */
export function compilePolicy(stored: StoredPolicy): CompiledPolicy {
  const parsed = policyDefinitionSchema.safeParse(stored.definition);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    throw new PolicyCompileError(`invalid definition: ${where}${issue?.message ?? "unknown problem"}`);
  }
  const definition = parsed.data;
  const blockRules: CompiledRule[] = [];
  const approvalRules: CompiledRule[] = [];
  for (const [index, rule] of definition.promptRules.entries()) {
    let regex: RegExp;
    try {
      regex = compileRulePattern(rule.pattern, rule.flags);
    } catch (error) {
      throw new PolicyCompileError(`promptRules.${index}.pattern does not compile: ${(error as Error).message}`);
    }
    (rule.action === "block" ? blockRules : approvalRules).push({ regex, description: rule.description, index });
  }
  return {
    id: stored.id,
    name: stored.name,
    definition,
    resources: new Map(
      definition.resources.map((resource) => [resource.connection, compileModelPatterns(resource.models)]),
    ),
    operations: new Set(definition.operations),
    limits: freezeLimits(definition.limits, definition.quota),
    blockRules,
    approvalRules,
    checksPrompt: definition.promptRules.length > 0 || definition.limits.maxPromptChars !== undefined,
    rank: 0,
  };
}

/** Unset means unlimited, which is the most permissive. */
const orUnlimited = (value: number | undefined) => value ?? Number.POSITIVE_INFINITY;

function descending(a: number, b: number): number {
  return a === b ? 0 : a > b ? -1 : 1;
}

/**
 * The order among grants that all allow a request: the highest token cap,
 * then the highest request rate, then the highest token rate, then one
 * without a quota (quotas of different periods do not compare), then the
 * id, so the same request always gets the same winner.
 */
export function morePermissiveFirst(a: CompiledPolicy, b: CompiledPolicy): number {
  return (
    descending(orUnlimited(a.limits.maxTokens), orUnlimited(b.limits.maxTokens)) ||
    descending(orUnlimited(a.limits.requestsPerMinute), orUnlimited(b.limits.requestsPerMinute)) ||
    descending(orUnlimited(a.limits.tokensPerMinute), orUnlimited(b.limits.tokensPerMinute)) ||
    Number(a.limits.quota !== undefined) - Number(b.limits.quota !== undefined) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}
