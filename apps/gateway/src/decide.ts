// The decision stage: the policy set the control plane pushed decides
// whether this identity may make this request, with which parameters, and
// charges the winning grant's rate limits. Nothing here touches Postgres.
import type { ConnectionProtocol, Evaluation, EvaluationRequest, PolicySet, PromptRuleMatch } from "@modelgate/policy";
import type { Decision } from "@modelgate/protocol";
import { GatewayError } from "./errors.js";
import type { JsonEdit } from "./http-body.js";
import { type Identity, subjectKey, subjectOf } from "./identity.js";
import { type RateLimitCharge, type RateLimiter, RateLimiterUnavailableError } from "./rate-limit.js";

type Allowed = Extract<Evaluation, { decision: "allowed" }>;

export interface Verdict {
  evaluation: Allowed;
  /** Body edits the policy requires (a capped max_tokens). */
  edits: JsonEdit[];
  /** What travels with the request to the agent: the session, the operation and the masking. */
  decision: Decision;
}

/** Thrown for a refused request; carries what the access log and audit need. */
export class PolicyDenial extends GatewayError {
  readonly policyIds: readonly string[];
  readonly reasons: readonly string[];
  /** The prompt rule that matched and the field of the body it matched in (for the audit record). */
  readonly promptRule: PromptRuleMatch | undefined;
  constructor(
    error: GatewayError,
    policyIds: readonly string[],
    reasons: readonly string[],
    { promptRule }: { promptRule?: PromptRuleMatch } = {},
  ) {
    super(error.code, error.message, error.param, error.headers, error.fields);
    this.policyIds = policyIds;
    this.reasons = reasons;
    this.promptRule = promptRule;
  }
}

/**
 * Evaluates the request. A refusal is thrown as a PolicyDenial whose message
 * is safe for the caller: a model they may not use reads exactly like one
 * that does not exist, so refusals reveal nothing about what else is there.
 */
export function evaluate(
  policies: PolicySet,
  identity: Identity,
  request: EvaluationRequest & { protocol: ConnectionProtocol },
  sessionId: string,
  displayTarget: string,
): Verdict {
  const evaluation = policies.evaluate(subjectOf(identity), request);
  if (evaluation.decision === "denied") {
    const message =
      evaluation.code === "model_not_allowed"
        ? `${displayTarget} does not exist or is not available to you`
        : evaluation.reasons.join("; ") || "refused by policy";
    throw new PolicyDenial(
      new GatewayError(evaluation.code, message, evaluation.param ?? paramOf(evaluation.code)),
      evaluation.policyIds,
      evaluation.reasons,
      { promptRule: evaluation.promptRule },
    );
  }
  return {
    evaluation,
    edits: evaluation.capped.map(({ path, value }) => ({ path, value })),
    // What the agent needs, and nothing else: who asked, why and under which
    // policies stays in the gateway's audit record, off the GPU hosts (and
    // out of every message's encoding).
    decision: {
      sessionId,
      operation: request.operation,
      // Fields already made explicit for the protocol by the engine (the
      // agent does not know its connection's protocol).
      maskingJson: evaluation.masking ? JSON.stringify(evaluation.masking) : "",
    },
  };
}

function paramOf(code: string): string | null {
  return code === "model_not_allowed" ? "model" : code === "prompt_blocked" ? "messages" : null;
}

/** A grant's per-minute budgets, as the policy engine reports them. */
export interface RateLimitGrant {
  policyId: string;
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
}

/**
 * Charges the winning grant's budgets for this subject: one request against
 * requestsPerMinute and the estimated tokens against tokensPerMinute, both
 * or neither. Fails closed when the shared limiter cannot be reached.
 */
export function chargeRateLimits(limiter: RateLimiter, identity: Identity, verdict: Verdict): Promise<void> {
  const grant = verdict.evaluation.rateLimit;
  if (!grant) return Promise.resolve();
  return chargeGrant(limiter, subjectKey(identity), grant, verdict.evaluation.estimatedTokens);
}

/**
 * Charges one request (and `estimatedTokens`) to a grant's budgets for the
 * subject `who` (its subjectKey). Also used for requests the gateway answers
 * itself (listing models), so every authenticated route counts.
 */
export async function chargeGrant(
  limiter: RateLimiter,
  who: string,
  grant: RateLimitGrant,
  estimatedTokens: number,
): Promise<void> {
  const charges: RateLimitCharge[] = [];
  if (grant.requestsPerMinute !== undefined) {
    charges.push({ key: `${grant.policyId}:${who}:requests`, limitPerMinute: grant.requestsPerMinute, cost: 1 });
  }
  if (grant.tokensPerMinute !== undefined) {
    charges.push({
      key: `${grant.policyId}:${who}:tokens`,
      limitPerMinute: grant.tokensPerMinute,
      cost: estimatedTokens,
    });
  }
  if (charges.length === 0) return;
  let result: Awaited<ReturnType<RateLimiter["consume"]>>;
  try {
    result = await limiter.consume(charges);
  } catch (error) {
    if (error instanceof RateLimiterUnavailableError) {
      throw new GatewayError("rate_limiter_unavailable", "rate limits cannot be checked right now; retry later");
    }
    throw error;
  }
  if (result.allowed) return;
  const retryAfterSeconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
  const budget = result.key.endsWith(":tokens")
    ? `${grant.tokensPerMinute} tokens per minute`
    : `${grant.requestsPerMinute} requests per minute`;
  const message = result.exceedsCapacity
    ? `this request's estimated ${estimatedTokens} tokens exceed the budget of ${budget}`
    : `rate limit of ${budget} reached; retry in ${retryAfterSeconds} s`;
  throw new PolicyDenial(
    new GatewayError("rate_limited", message, null, { "retry-after": String(retryAfterSeconds) }),
    [grant.policyId],
    [message],
  );
}
