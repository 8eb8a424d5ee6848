import {
  API_FIELDS,
  DEFAULT_FIELDS,
  type MaskingProfile,
  mergeProfiles,
  normalizeForMatching,
  resolveFields,
} from "@modelgate/masking";
import { type CompiledPolicy, type CompiledRule, compilePolicy, morePermissiveFirst } from "./compile.js";
import type {
  ApprovalRequirement,
  Denial,
  Evaluation,
  EvaluationRequest,
  ParameterEdit,
  QuotaGrant,
  StoredPolicy,
  Subject,
} from "./evaluation.js";
import type { ModelMatcher } from "./glob.js";
import { nonCanonicalKey } from "./keys.js";
import { explainLimitFailures, type LimitFailure, limitFailures } from "./limits.js";
import { readGenerationParameters } from "./parameters.js";
import { codePointLength, type ExtractedPrompt, extractPrompt } from "./prompt.js";
import type { Operation } from "./request-kind.js";
import type { MaskingDefinition } from "./schema.js";
import { listing, quote } from "./text.js";

/** Operations whose requests carry a prompt, so prompt rules concern them. */
const CARRIES_PROMPT: ReadonlySet<Operation> = new Set(["inference", "embeddings", "raw"]);

const EMPTY_PROMPT: ExtractedPrompt = { text: "", pieces: [], fieldOf: () => "", nonText: false };

/** Longest field path a denial carries (free-form keys are the caller's to choose). */
const MAX_FIELD_PATH = 256;

/** A policy's grant of one connection, with the matcher for that resource's model patterns. */
interface Grant {
  policy: CompiledPolicy;
  matches: ModelMatcher;
}

/** Subject key → connection → grants: evaluation touches only the subject's grants of one connection. */
type SubjectIndex = Map<string, Map<string, Grant[]>>;

function add(index: SubjectIndex, key: string, policy: CompiledPolicy): void {
  let byConnection = index.get(key);
  if (byConnection === undefined) {
    byConnection = new Map();
    index.set(key, byConnection);
  }
  for (const [connection, matches] of policy.resources) {
    const grants = byConnection.get(connection);
    if (grants === undefined) byConnection.set(connection, [{ policy, matches }]);
    else if (grants.at(-1)?.policy !== policy) grants.push({ policy, matches });
  }
}

/**
 * Subject key → operation → the most permissive policy granting it on any
 * connection: lets a request without a grant be refused before its body is
 * read, in time independent of how many policies there are.
 */
type OperationIndex = Map<string, Map<Operation, CompiledPolicy>>;

function addOperations(index: OperationIndex, key: string, policy: CompiledPolicy): void {
  let byOperation = index.get(key);
  if (byOperation === undefined) {
    byOperation = new Map();
    index.set(key, byOperation);
  }
  // Policies are added most permissive first: the first one stays.
  for (const operation of policy.operations) if (!byOperation.has(operation)) byOperation.set(operation, policy);
}

/** The broadest grant of an operation, as `broadestGrant` reports it. */
export interface BroadestGrant {
  policyId: string;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

function denied(code: Denial["code"], policies: readonly CompiledPolicy[], reasons: string[], param?: string): Denial {
  const denial: Denial = { decision: "denied", code, policyIds: policies.map((policy) => policy.id), reasons };
  if (param !== undefined) denial.param = param;
  return denial;
}

const policyNames = (policies: readonly CompiledPolicy[]) =>
  listing(policies.map((policy) => `policy ${quote(policy.name)}`));

/**
 * The enabled policies in force, indexed for evaluation. Built once per
 * configuration (the gateway rebuilds it when the control plane pushes a
 * change) and then only read, so one instance serves every request.
 *
 * Default deny: a request is allowed only by a grant, a policy that names
 * the subject, the connection (and model) and the operation.
 */
export class PolicySet {
  /** Policies that take part in evaluation (enabled and compiled). */
  readonly size: number;
  /** Policies that could not be compiled; they grant nothing. */
  readonly errors: { policyId: string; message: string }[] = [];

  readonly #byGroup: SubjectIndex = new Map();
  readonly #byUserId: SubjectIndex = new Map();
  readonly #byEmail: SubjectIndex = new Map();
  readonly #byApiKey: SubjectIndex = new Map();
  readonly #operationsByGroup: OperationIndex = new Map();
  readonly #operationsByUserId: OperationIndex = new Map();
  readonly #operationsByEmail: OperationIndex = new Map();
  readonly #operationsByApiKey: OperationIndex = new Map();

  constructor(policies: readonly StoredPolicy[]) {
    const compiled: CompiledPolicy[] = [];
    const seen = new Set<string>();
    for (const stored of policies) {
      if (!stored.enabled) continue;
      if (seen.has(stored.id)) {
        this.errors.push({ policyId: stored.id, message: "duplicate policy id; only the first is used" });
        continue;
      }
      seen.add(stored.id);
      try {
        compiled.push(compilePolicy(stored));
      } catch (error) {
        this.errors.push({ policyId: stored.id, message: error instanceof Error ? error.message : String(error) });
      }
    }
    compiled.sort(morePermissiveFirst);
    for (const [rank, policy] of compiled.entries()) {
      policy.rank = rank;
      const { groups, users, apiKeys } = policy.definition.subjects;
      for (const group of groups) {
        add(this.#byGroup, group, policy);
        addOperations(this.#operationsByGroup, group, policy);
      }
      // A users entry is a user id, matched exactly; one that is an
      // address (has an @) also matches a verified email, ignoring case.
      for (const user of users) {
        add(this.#byUserId, user, policy);
        addOperations(this.#operationsByUserId, user, policy);
        if (user.includes("@")) {
          add(this.#byEmail, user.toLowerCase(), policy);
          addOperations(this.#operationsByEmail, user.toLowerCase(), policy);
        }
      }
      for (const key of apiKeys) {
        add(this.#byApiKey, key.toLowerCase(), policy);
        addOperations(this.#operationsByApiKey, key.toLowerCase(), policy);
      }
    }
    this.size = compiled.length;
  }

  /**
   * The subject's grants of one connection, most permissive first. A
   * subject matched several ways (two groups, group and email) gets each
   * policy once.
   */
  #grants(subject: Subject, connection: string): Grant[] {
    const found: Grant[] = [];
    const collect = (index: SubjectIndex, key: string) => {
      const grants = index.get(key)?.get(connection);
      if (grants === undefined) return;
      for (const grant of grants) if (!found.some((other) => other.policy === grant.policy)) found.push(grant);
    };
    for (const group of subject.groups) collect(this.#byGroup, group);
    if (subject.userId !== "") collect(this.#byUserId, subject.userId);
    if (subject.email) collect(this.#byEmail, subject.email.toLowerCase());
    if (subject.apiKeyId) collect(this.#byApiKey, subject.apiKeyId.toLowerCase());
    if (found.length > 1) found.sort((a, b) => a.policy.rank - b.policy.rank);
    return found;
  }

  /** The decision for one request; never changes the request (the gateway applies `capped`). */
  evaluate(subject: Subject, request: EvaluationRequest): Evaluation {
    const grants: CompiledPolicy[] = [];
    const otherOperations: CompiledPolicy[] = [];
    for (const { policy, matches } of this.#grants(subject, request.connection)) {
      if (request.model !== undefined && !matches(request.model)) continue;
      (policy.operations.has(request.operation) ? grants : otherOperations).push(policy);
    }
    if (grants.length === 0) return noGrant(request, otherOperations);
    return decide(grants, request, subject);
  }

  /**
   * Any enabled grant of any operation for this subject on this connection
   * (and model, when given): for routing a bare model name among
   * connections. The request itself is still evaluated.
   */
  mayUse(subject: Subject, connection: string, model?: string): boolean {
    return this.#grants(subject, connection).some(({ matches }) => model === undefined || matches(model));
  }

  /**
   * The masking profile for the audit record of a request this subject made
   * on this connection and that was refused: the union of the
   * `maskPromptsInAudit` profiles of every grant the subject has there,
   * whatever their models and operations, since a refused prompt (a blocked
   * one above all) deserves the masking an allowed one gets. Undefined when
   * none asks for it.
   */
  auditMasking(subject: Subject, connection: string): MaskingProfile | undefined {
    const profiles = this.#grants(subject, connection)
      .map(({ policy }) => policy.definition.masking)
      .filter((masking): masking is MaskingDefinition => masking?.maskPromptsInAudit === true)
      .map((masking) => resolveFields(masking, []));
    return mergeProfiles(profiles);
  }

  /**
   * The most permissive policy that grants the subject `operation` on any
   * connection and model, with its rate limits; undefined when none does.
   * The gateway refuses a request without one before reading its body, and
   * charges a listing of models to this grant's request budget.
   */
  broadestGrant(subject: Subject, operation: Operation): BroadestGrant | undefined {
    let best: CompiledPolicy | undefined;
    const consider = (index: OperationIndex, key: string) => {
      const policy = index.get(key)?.get(operation);
      if (policy !== undefined && (best === undefined || policy.rank < best.rank)) best = policy;
    };
    for (const group of subject.groups) consider(this.#operationsByGroup, group);
    if (subject.userId !== "") consider(this.#operationsByUserId, subject.userId);
    if (subject.email) consider(this.#operationsByEmail, subject.email.toLowerCase());
    if (subject.apiKeyId) consider(this.#operationsByApiKey, subject.apiKeyId.toLowerCase());
    if (best === undefined) return undefined;
    const grant: BroadestGrant = { policyId: best.id };
    const { requestsPerMinute, tokensPerMinute } = best.limits;
    if (requestsPerMinute !== undefined) grant.requestsPerMinute = requestsPerMinute;
    if (tokensPerMinute !== undefined) grant.tokensPerMinute = tokensPerMinute;
    return grant;
  }

  /** Of the given model names on a connection, those the subject may use with `operation`, in their order. */
  allowedModels(
    subject: Subject,
    connection: string,
    models: readonly string[],
    operation: Operation = "models.list",
  ): string[] {
    const grants = this.#grants(subject, connection).filter(({ policy }) => policy.operations.has(operation));
    if (grants.length === 0) return [];
    return models.filter((model) => grants.some(({ matches }) => matches(model)));
  }
}

/**
 * No grant. Policies the subject is not covered by are never named: a
 * caller must not learn which policies exist for others. Those that cover
 * the subject and resource but not the operation are the caller's own.
 */
function noGrant(request: EvaluationRequest, otherOperations: readonly CompiledPolicy[]): Denial {
  const target =
    request.model === undefined
      ? `connection ${quote(request.connection)}`
      : `model ${quote(request.model)} on connection ${quote(request.connection)}`;
  if (otherOperations.length === 0) {
    return denied("model_not_allowed", [], [`no policy grants access to ${target}`]);
  }
  return denied("operation_not_allowed", otherOperations, [
    `operation ${quote(request.operation)} is not allowed on ${target}`,
    ...otherOperations.map(
      (policy) => `policy ${quote(policy.name)} allows only ${listing([...policy.operations].map(quote))} there`,
    ),
  ]);
}

/**
 * The prompt as rules read it: each piece in the normal form, joined with
 * "\n" (so with the `m` flag, `^` and `$` also match at each field's start
 * and end), and where each piece starts, to tell which field a match is in.
 */
class NormalizedPrompt {
  readonly text: string;
  readonly #starts: number[] = [];
  readonly #prompt: ExtractedPrompt;

  constructor(prompt: ExtractedPrompt) {
    this.#prompt = prompt;
    let offset = 0;
    const pieces = prompt.pieces.map((piece) => {
      const normal = normalizeForMatching(piece);
      this.#starts.push(offset);
      offset += normal.length + 1;
      return normal;
    });
    this.text = pieces.join("\n");
  }

  /** The JSON path of the field the normalised text's index falls in. */
  fieldAt(index: number): string {
    let low = 0;
    let high = this.#starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.#starts[middle] ?? 0) <= index) low = middle;
      else high = middle - 1;
    }
    const field = this.#prompt.fieldOf(low);
    return field.length > MAX_FIELD_PATH ? `${field.slice(0, MAX_FIELD_PATH)}…` : field;
  }
}

function firstMatch(
  grants: readonly CompiledPolicy[],
  rulesOf: (policy: CompiledPolicy) => readonly CompiledRule[],
  prompt: NormalizedPrompt,
) {
  for (const policy of grants) {
    for (const rule of rulesOf(policy)) {
      const found = rule.regex.exec(prompt.text);
      if (found !== null) return { policy, rule, field: prompt.fieldAt(found.index) };
    }
  }
  return undefined;
}

/** A prompt_blocked denial naming the rule, its policy and the field it matched in. */
function blockedBy(match: NonNullable<ReturnType<typeof firstMatch>>, reason: (rule: string) => string): Denial {
  const { policy, rule, field } = match;
  const where = field === "" ? "" : ` (field ${quote(field)})`;
  const denial = denied(
    "prompt_blocked",
    [policy],
    [reason(`${ruleName(rule)} of policy ${quote(policy.name)}${where}`)],
    field,
  );
  denial.promptRule = { policyId: policy.id, rule: rule.index, field };
  return denial;
}

const ruleName = (rule: CompiledRule) =>
  rule.description === undefined ? "a prompt rule" : `rule ${quote(rule.description)}`;

/** What checkPrompt finds: a refusal, or a `require_approval` rule that matched (the request may still be refused later). */
type PromptCheck = { denial: Denial } | { held: NonNullable<ReturnType<typeof firstMatch>> } | undefined;

/** Content checks shared by every grant: deny overrides, then approval rules. */
function checkPrompt(
  grants: readonly CompiledPolicy[],
  request: EvaluationRequest,
  prompt: ExtractedPrompt,
): PromptCheck {
  const checking = grants.filter((policy) => policy.checksPrompt);
  if (checking.length === 0) return undefined;
  const names = policyNames(checking);
  if (request.format === "none") {
    // The engine does not read this body (a raw pass-through, TGI's /embed):
    // a prompt could pass rules it cannot see.
    if (CARRIES_PROMPT.has(request.operation)) {
      return {
        denial: denied("invalid_request", checking, [
          `the prompt of this request cannot be checked, and ${names} ${checking.length > 1 ? "have" : "has"} prompt rules or a prompt size limit`,
        ]),
      };
    }
    return undefined;
  }
  if (request.body === undefined) {
    return {
      denial: denied("invalid_request", checking, [`a request body is needed to check the prompt rules of ${names}`]),
    };
  }
  if (prompt.nonText) {
    // Token ids, images or audio would slip past text rules.
    return {
      denial: denied("invalid_request", checking, [`prompt must be text when prompt rules apply (${names})`], "prompt"),
    };
  }
  if (!grants.some((policy) => policy.blockRules.length > 0 || policy.approvalRules.length > 0)) return undefined;
  const normalized = new NormalizedPrompt(prompt);
  const blocked = firstMatch(grants, (policy) => policy.blockRules, normalized);
  if (blocked) return { denial: blockedBy(blocked, (rule) => `the prompt is blocked by ${rule}`) };
  const held = firstMatch(grants, (policy) => policy.approvalRules, normalized);
  return held ? { held } : undefined;
}

/** The request has at least one grant: content rules of all, then limits of each. */
function decide(grants: readonly CompiledPolicy[], request: EvaluationRequest, subject: Subject): Evaluation {
  const { body, format } = request;
  const ambiguous = body === undefined ? undefined : nonCanonicalKey(format, body);
  if (ambiguous !== undefined) {
    return denied(
      "invalid_request",
      [],
      [
        `field names must be lower-case ASCII letters, digits and "_" (${quote(ambiguous)}): some runtimes match field names loosely, ignoring case`,
      ],
      ambiguous.length > MAX_FIELD_PATH ? `${ambiguous.slice(0, MAX_FIELD_PATH)}…` : ambiguous,
    );
  }
  const prompt = body !== undefined && format !== "none" ? extractPrompt(format, body) : EMPTY_PROMPT;
  const promptChars = codePointLength(prompt.text);
  // A prompt longer than every grant allows is refused before any rule runs
  // over it: patterns are linear, but megabytes times many rules still cost.
  const roomiest = grants.reduce<CompiledPolicy | undefined>(
    (best, policy) =>
      best === undefined || (policy.limits.maxPromptChars ?? Infinity) > (best.limits.maxPromptChars ?? Infinity)
        ? policy
        : best,
    undefined,
  );
  const roomiestLimit = roomiest?.limits.maxPromptChars;
  if (roomiest !== undefined && roomiestLimit !== undefined && promptChars > roomiestLimit) {
    return denied(
      "parameter_limit_exceeded",
      grants,
      [`prompt of ${promptChars} characters exceeds the limit ${roomiestLimit} of policy ${quote(roomiest.name)}`],
      "prompt",
    );
  }
  const promptCheck = checkPrompt(grants, request, prompt);
  if (promptCheck && "denial" in promptCheck) return promptCheck.denial;

  const parameters = readGenerationParameters(format, body);
  // A malformed parameter a grant limits cannot be compared, and the
  // runtime might read it differently: refuse it rather than guess.
  const { invalidTokens, invalidTemperature } = parameters;
  const capping = grants.filter((policy) => policy.limits.maxTokens !== undefined);
  if (invalidTokens !== undefined && capping.length > 0) {
    return denied(
      "invalid_request",
      capping,
      [`${invalidTokens.name} must be ${invalidTokens.expected}`],
      invalidTokens.name,
    );
  }
  const bounding = grants.filter((policy) => policy.limits.temperature !== undefined);
  if (invalidTemperature !== undefined && bounding.length > 0) {
    return denied(
      "invalid_request",
      bounding,
      [`${invalidTemperature.name} must be ${invalidTemperature.expected}`],
      invalidTemperature.name,
    );
  }

  // Grants come most permissive first, so the first one the request
  // satisfies is the winner; one that needs no approval is preferred to
  // one that does (another grant admits the request outright).
  const failures: LimitFailure[] = [];
  let winner: CompiledPolicy | undefined;
  for (const policy of grants) {
    const broken = limitFailures(policy, parameters, promptChars);
    if (broken.length > 0) {
      failures.push(...broken);
      continue;
    }
    if (policy.definition.approval?.required !== true) {
      winner = policy;
      break;
    }
    winner ??= policy;
  }
  if (winner === undefined) {
    const { param, reasons } = explainLimitFailures(failures);
    return denied("parameter_limit_exceeded", grants, reasons, param);
  }

  const reasons = [`allowed by policy ${quote(winner.name)}`];
  const capped: ParameterEdit[] = [];
  const cap = winner.limits.maxTokens;
  let generated = 0;
  for (const token of parameters.tokens) {
    if (Number.isFinite(token.compared) && token.value > generated) generated = token.value;
  }
  if (cap !== undefined && parameters.cap !== undefined && parameters.tokens.length === 0) {
    // n completions share the cap (the limits above made sure n <= cap).
    const each = Math.floor(cap / parameters.choices);
    capped.push({ parameter: parameters.cap.name, path: [...parameters.cap.path], value: each });
    reasons.push(
      parameters.choices > 1
        ? `${parameters.cap.name} set to ${each} (the limit ${cap} of policy ${quote(winner.name)} shared by ${parameters.choices} completions), as the request set none`
        : `${parameters.cap.name} set to ${cap}, the limit of policy ${quote(winner.name)}, as the request set none`,
    );
    generated = each;
  }
  const { requestsPerMinute, tokensPerMinute } = winner.limits;
  let rateLimit: Extract<Evaluation, { decision: "allowed" }>["rateLimit"];
  if (requestsPerMinute !== undefined || tokensPerMinute !== undefined) {
    rateLimit = { policyId: winner.id };
    if (requestsPerMinute !== undefined) rateLimit.requestsPerMinute = requestsPerMinute;
    if (tokensPerMinute !== undefined) rateLimit.tokensPerMinute = tokensPerMinute;
  }
  // Masking is a union over every grant, not just the winner's: a broader
  // grant must never switch off the masking a narrower one asks for.
  const masking = grants.filter((policy) => policy.definition.masking !== undefined);
  const policyIds = [winner.id, ...masking.map((policy) => policy.id).filter((id) => id !== winner.id)];
  // Each profile's fields are made explicit first, so one policy's explicit
  // fields add to another's defaults instead of replacing them.
  const defaults = defaultMaskedFields(request);
  const profile = mergeProfiles(
    masking.map((policy) => resolveFields(policy.definition.masking as MaskingDefinition, defaults)),
  );
  const unmaskable = profile && body ? tokenLevelOutput(body) : undefined;
  if (unmaskable !== undefined) {
    return denied(
      "invalid_request",
      masking,
      [
        `${unmaskable} returns the answer token by token, which masking cannot rewrite; ${policyNames(masking)} ${masking.length > 1 ? "mask" : "masks"} responses`,
      ],
      unmaskable,
    );
  }
  if (profile)
    reasons.push(`the response is masked as ${policyNames(masking)} ${masking.length > 1 ? "require" : "requires"}`);
  const quota = quotaOf(winner, subject);
  const evaluation: Evaluation = {
    decision: "allowed",
    policyIds,
    reasons,
    effectiveLimits: winner.limits,
    capped,
    rateLimit,
    quota,
    estimatedTokens: Math.ceil(promptChars / 4) + generated * parameters.choices,
    masking: profile,
  };
  // A request refused anyway is never held for a human: approval comes last.
  // A rule's approval and the winning grant's are separate gates (their
  // approvers and grants differ), so both are needed; within one policy the
  // rule's, more specific, stands for both.
  const approvals: ApprovalRequirement[] = [];
  if (promptCheck) approvals.push(ruleApproval(promptCheck.held));
  if (winner.definition.approval?.required && !approvals.some((approval) => approval.policyId === winner.id)) {
    approvals.push(grantApproval(winner));
  }
  if (approvals.length > 0) {
    evaluation.approvals = approvals;
    reasons.push(...approvals.map((approval) => approval.reason));
  }
  return evaluation;
}

/**
 * The winner's quota and whose budgets it charges. A group-scoped quota is
 * shared by the members of each group the policy names, so a caller in two
 * of them spends from both (and is refused when either is used up): no
 * group can be drained by members who also belong to a roomier one.
 */
function quotaOf(policy: CompiledPolicy, subject: Subject): QuotaGrant | undefined {
  const quota = policy.limits.quota;
  if (quota === undefined) return undefined;
  const named = new Set(policy.definition.subjects.groups);
  const groups = quota.scope === "group" ? [...new Set(subject.groups.filter((group) => named.has(group)))].sort() : [];
  return { ...quota, policyId: policy.id, groups };
}

/**
 * The fields a profile without fields masks: the protocol's, and those of
 * the API the request speaks when several protocols serve it (Anthropic's
 * Messages API). `http` has none: every string is masked there.
 */
function defaultMaskedFields(request: EvaluationRequest): readonly string[] {
  const defaults = request.protocol ? DEFAULT_FIELDS[request.protocol] : [];
  const api = Object.hasOwn(API_FIELDS, request.format)
    ? API_FIELDS[request.format as keyof typeof API_FIELDS]
    : undefined;
  return defaults.length === 0 || api === undefined ? defaults : [...defaults, ...api];
}

/** What the policy says about approving; defaults where it says nothing (no `approval` block). */
function approvalSettings(policy: CompiledPolicy) {
  const settings = policy.definition.approval;
  return {
    approverGroups: settings?.approverGroups ?? [],
    minApprovals: settings?.minApprovals ?? 1,
    grant: settings?.grant ?? "request",
    windowMinutes: settings?.windowMinutes,
    expiresMinutes: settings?.expiresMinutes ?? 60,
  };
}

function ruleApproval(match: NonNullable<ReturnType<typeof firstMatch>>): ApprovalRequirement {
  const { policy, rule, field } = match;
  const where = field === "" ? "" : ` (field ${quote(field)})`;
  return {
    policyId: policy.id,
    policyName: policy.name,
    rule: rule.index,
    field,
    reason: `the prompt needs approval under ${ruleName(rule)} of policy ${quote(policy.name)}${where}`,
    ...approvalSettings(policy),
  };
}

function grantApproval(policy: CompiledPolicy): ApprovalRequirement {
  return {
    policyId: policy.id,
    policyName: policy.name,
    rule: undefined,
    field: "",
    reason: `policy ${quote(policy.name)} grants this only with approval`,
    ...approvalSettings(policy),
  };
}

/**
 * Request parameters that make a runtime return the answer a second time,
 * token by token (log-probabilities, token ids, TGI's details): the masker
 * rewrites the text fields, not these, so under masking they are refused.
 */
const TOKEN_LEVEL_OUTPUT: readonly (readonly string[])[] = [
  ["logprobs"],
  ["top_logprobs"],
  ["prompt_logprobs"],
  ["return_token_ids"],
  ["return_tokens_as_token_ids"],
  ["parameters", "details"],
  ["parameters", "decoder_input_details"],
  ["parameters", "top_n_tokens"],
  ["options", "logprobs"],
];

function tokenLevelOutput(body: Record<string, unknown>): string | undefined {
  // The Responses API asks for log-probabilities by name.
  if (Array.isArray(body.include) && body.include.some((name) => String(name).includes("logprobs"))) {
    return "include";
  }
  for (const path of TOKEN_LEVEL_OUTPUT) {
    let value: unknown = body;
    for (const key of path)
      value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
    // false, 0 and null ask for nothing.
    if (value !== undefined && value !== null && value !== false && value !== 0) return path.join(".");
  }
  return undefined;
}
