import { checkMaskingPattern, ENTITY_TYPES, MASK_NAME, MAX_PATH_LENGTH, parseFieldPath } from "@modelgate/masking";
import { z } from "zod";
import { OPERATIONS } from "./request-kind.js";
import { normalizeRulePattern } from "./rule-pattern.js";

/**
 * The policy document. Every object is strict: an unknown key is an error,
 * so a typo (`limit` for `limits`) is refused instead of silently granting
 * without the limits its author meant. The gateway parses stored policies
 * with the same schema, so a document written by a newer control plane
 * (with a field this version does not know) is skipped there: it grants
 * nothing rather than granting without its new restrictions.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
// Descriptions may span lines (and hold tabs); no other control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
const CONTROL_EXCEPT_NEWLINE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

const plainText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((value) => !CONTROL_CHARACTERS.test(value), "must not contain control characters");

/** A list of at most `max` distinct entries (compared with `key`). */
function uniqueList<T extends z.ZodType>(item: T, max: number, key: (value: z.output<T>) => string = String) {
  return z
    .array(item)
    .max(max)
    .superRefine((values, context) => {
      const seen = new Set<string>();
      for (const [index, value] of values.entries()) {
        const k = key(value);
        if (seen.has(k)) context.addIssue({ code: "custom", message: "duplicate entry", path: [index] });
        seen.add(k);
      }
    });
}

const subjectsSchema = z
  .strictObject({
    groups: uniqueList(plainText(256), 1000).default([]),
    users: uniqueList(plainText(320), 1000).default([]).describe("user ids, or emails (compared case-insensitively)"),
    // Key ids are compared case-insensitively: a UUID's case carries no meaning.
    apiKeys: uniqueList(z.uuid(), 1000, (id) => id.toLowerCase()).default([]),
  })
  .refine(
    (subjects) => subjects.groups.length + subjects.users.length + subjects.apiKeys.length > 0,
    "name at least one group, user or API key",
  );

const modelPattern = plainText(256).describe("a model name; `*` matches any run of characters");

const resourceSchema = z.strictObject({
  connection: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9-]{0,62}$/,
      "must be 1-63 lowercase letters, digits and hyphens, not starting with a hyphen",
    ),
  models: uniqueList(modelPattern, 100).min(1).default(["*"]),
});

const resourcesSchema = z
  .array(resourceSchema)
  .min(1)
  .max(100)
  .superRefine((resources, context) => {
    // One entry per connection: two entries for the same one read as if each
    // restricted the other, which they would not.
    const seen = new Set<string>();
    for (const [index, resource] of resources.entries()) {
      if (seen.has(resource.connection)) {
        context.addIssue({
          code: "custom",
          message: "connection listed twice; merge its model patterns into one entry",
          path: [index, "connection"],
        });
      }
      seen.add(resource.connection);
    }
  });

const count = (max: number) => z.number().int().min(1).max(max);
const temperatureValue = z.number().min(0).max(100);

const temperatureSchema = z
  .strictObject({ min: temperatureValue.optional(), max: temperatureValue.optional() })
  .refine((range) => range.min !== undefined || range.max !== undefined, "give min, max or both")
  .refine((range) => range.min === undefined || range.max === undefined || range.min <= range.max, {
    message: "min must not exceed max",
    path: ["min"],
  });

const limitsSchema = z.strictObject({
  maxTokens: count(10_000_000).optional(),
  temperature: temperatureSchema.optional(),
  maxPromptChars: count(100_000_000).optional(),
  requestsPerMinute: count(10_000_000).optional(),
  tokensPerMinute: count(10_000_000).optional(),
});

/** Calendar periods a quota may span, aligned in UTC (docs/policies.md#quotas). */
export const QUOTA_PERIODS = ["hour", "day", "month"] as const;

/**
 * A long-window budget charged with the tokens actually used (and one per
 * request), kept in Redis across gateway replicas. Scope `group` shares one
 * budget among the members of each of the policy's groups the caller is in.
 */
const quotaSchema = z
  .strictObject({
    tokens: count(1_000_000_000_000).optional().describe("tokens (prompt and completion) per period"),
    requests: count(1_000_000_000).optional().describe("requests per period"),
    per: z.enum(QUOTA_PERIODS).describe("a calendar hour, day or month in UTC"),
    scope: z
      .enum(["subject", "group"])
      .describe("subject: each caller has its own budget; group: the members of each of the policy's groups share one"),
  })
  .refine((quota) => quota.tokens !== undefined || quota.requests !== undefined, "give tokens, requests or both");

const validFlags = (flags: string) => /^[ims]*$/.test(flags) && new Set(flags).size === flags.length;

/** Flags a rule may set; the engine always adds `u` (and nothing else). */
const flagsSchema = z.string().refine(validFlags, "only the flags i, m and s are allowed, each at most once");

/**
 * How the engine compiles a prompt rule, here and at every gateway: its
 * literal characters read as the prompt's normal form does (rule-pattern.ts).
 */
export function compileRulePattern(pattern: string, flags: string): RegExp {
  return new RegExp(normalizeRulePattern(pattern), `${flags}u`);
}

/** The compiler's complaint about a pattern as written (and, for a prompt rule, as matched), or undefined. */
export function patternError(pattern: string, flags: string, { rule = false } = {}): string | undefined {
  try {
    new RegExp(pattern, `${flags}u`);
    if (rule) compileRulePattern(pattern, flags);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const promptRuleSchema = z
  .strictObject({
    pattern: z.string().min(1).max(512),
    flags: flagsSchema.default(""),
    action: z.enum(["block", "require_approval"]),
    description: plainText(256).optional(),
  })
  .superRefine((rule, context) => {
    // Refinements run even when a field failed; bad flags are reported once, above.
    if (typeof rule.flags !== "string" || !validFlags(rule.flags) || typeof rule.pattern !== "string") return;
    const error = patternError(rule.pattern, rule.flags, { rule: true });
    if (error !== undefined) {
      context.addIssue({ code: "custom", message: `does not compile: ${error}`, path: ["pattern"] });
    }
  });

/** Names of custom detectors and deny-lists: they appear in masks (`[EMPLOYEE_ID]`) and metrics labels. */
const maskName = z.string().regex(MASK_NAME, "must be 1-32 upper-case letters, digits and _, starting with a letter");

const customDetectorSchema = z
  .strictObject({
    name: maskName,
    pattern: z.string().min(1).max(512),
    flags: flagsSchema.default(""),
  })
  .superRefine((detector, context) => {
    if (typeof detector.flags !== "string" || !validFlags(detector.flags) || typeof detector.pattern !== "string") {
      return;
    }
    const error = patternError(detector.pattern, detector.flags);
    if (error !== undefined) {
      context.addIssue({ code: "custom", message: `does not compile: ${error}`, path: ["pattern"] });
      return;
    }
    // What the streaming masker cannot run (backreferences, patterns that
    // match empty text, long lookbehinds) is refused here, not at the agent.
    const unusable = checkMaskingPattern(detector.pattern, detector.flags);
    if (unusable !== undefined) context.addIssue({ code: "custom", message: unusable, path: ["pattern"] });
  });

/** `choices[*].delta.content`, `message.content`, `response`: the syntax the agent's masker reads. */
const fieldPath = z
  .string()
  .max(MAX_PATH_LENGTH)
  .superRefine((path, context) => {
    try {
      parseFieldPath(path);
    } catch (error) {
      context.addIssue({ code: "custom", message: error instanceof Error ? error.message : String(error) });
    }
  });

const maskingSchema = z
  .strictObject({
    entities: uniqueList(z.enum(ENTITY_TYPES), ENTITY_TYPES.length).default([]),
    custom: uniqueList(customDetectorSchema, 50, (detector) => detector.name).default([]),
    denyList: uniqueList(
      z.strictObject({ name: maskName, terms: uniqueList(plainText(256), 1000).min(1) }),
      50,
      (list) => list.name,
    ).default([]),
    style: z.enum(["label", "partial", "hash"]).default("label"),
    fields: uniqueList(fieldPath, 64)
      .default([])
      .describe("JSON fields to mask; empty = the defaults of the connection's protocol"),
    onError: z
      .enum(["block", "pass"])
      .default("block")
      .describe("block: a masking failure ends the response; pass: an explicit opt-in to send it unmasked"),
    maskPromptsInAudit: z.boolean().default(false),
  })
  .refine(
    (masking) => masking.entities.length + masking.custom.length + masking.denyList.length > 0,
    "name at least one entity, custom detector or deny-list",
  );

/** Caps on what one approval may grant (docs/approvals.md). */
export const APPROVAL_LIMITS = {
  maxWindowMinutes: 24 * 60,
  maxExpiresMinutes: 7 * 24 * 60,
  maxMinApprovals: 10,
} as const;

/**
 * Who may approve a request this policy holds, and what a yes grants. With
 * `required`, every request the policy grants needs approval; without it,
 * only those its `require_approval` prompt rules match.
 */
const approvalSchema = z
  .strictObject({
    required: z.boolean().default(false),
    approverGroups: uniqueList(plainText(256), 100)
      .default([])
      .describe("identity-provider groups whose members may decide; MODELGATE_APPROVER_GROUPS members always may"),
    minApprovals: count(APPROVAL_LIMITS.maxMinApprovals)
      .default(1)
      .describe("distinct approvers needed; one denial decides"),
    grant: z
      .enum(["request", "window"])
      .default("request")
      .describe("request: the approved body, once; window: the subject on this connection and rule for windowMinutes"),
    windowMinutes: count(APPROVAL_LIMITS.maxWindowMinutes).optional(),
    expiresMinutes: count(APPROVAL_LIMITS.maxExpiresMinutes)
      .default(60)
      .describe("a pending approval not decided by then expires"),
  })
  .superRefine((approval, context) => {
    if (approval.grant === "window" && approval.windowMinutes === undefined) {
      context.addIssue({ code: "custom", message: 'give windowMinutes with grant "window"', path: ["windowMinutes"] });
    }
    if (approval.grant !== "window" && approval.windowMinutes !== undefined) {
      context.addIssue({
        code: "custom",
        message: 'windowMinutes applies only to grant "window"',
        path: ["windowMinutes"],
      });
    }
  });

const operationsSchema = z
  .array(z.enum(OPERATIONS))
  .min(1)
  .superRefine((operations, context) => {
    if (new Set(operations).size !== operations.length) {
      context.addIssue({ code: "custom", message: "an operation is listed twice" });
    }
  });

/**
 * The fields of a definition. New fields (masking) are added here, once, and
 * reach both schemas below.
 */
const definitionShape = {
  subjects: subjectsSchema,
  resources: resourcesSchema,
  operations: operationsSchema,
  limits: limitsSchema.default({}),
  promptRules: z.array(promptRuleSchema).max(100).default([]),
  masking: maskingSchema.optional(),
  approval: approvalSchema.optional(),
  quota: quotaSchema.optional(),
};

/** What is stored in the policy's JSON column and pushed to gateways. */
export const policyDefinitionSchema = z.strictObject(definitionShape);

/** The document an API caller writes: the definition plus name, description and on/off. */
export const policyInputSchema = z.strictObject({
  name: plainText(128).refine((name) => name.trim() === name, "must not start or end with white space"),
  description: z
    .string()
    .max(1024)
    .refine(
      (value) => !CONTROL_EXCEPT_NEWLINE.test(value),
      "must not contain control characters other than line breaks and tabs",
    )
    .optional(),
  enabled: z.boolean().default(true),
  ...definitionShape,
});

/** A parsed policy document (defaults applied). */
export type PolicyInput = z.output<typeof policyInputSchema>;
/** A parsed definition (defaults applied): what PolicySet compiles. */
export type PolicyDefinition = z.output<typeof policyDefinitionSchema>;
export type PromptRule = PolicyDefinition["promptRules"][number];
export type PolicyLimits = PolicyDefinition["limits"];
export type MaskingDefinition = NonNullable<PolicyDefinition["masking"]>;
export type ApprovalDefinition = NonNullable<PolicyDefinition["approval"]>;
export type QuotaDefinition = NonNullable<PolicyDefinition["quota"]>;
