import { OPERATIONS, policyDefinitionSchema, policyInputSchema } from "@modelgate/policy";
import { z } from "zod";
import { groupName, label, resourceName, timestamp, uuid } from "../../http/schemas.js";

/** A policy as written: the document @modelgate/policy defines (and the gateway enforces). */
export const policyBody = policyInputSchema;

export const policyParams = z.strictObject({ id: uuid });

export const policyView = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    enabled: z.boolean(),
    revision: z.number().int().describe("increases with every change"),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .extend(policyDefinitionSchema.shape);

const BODY_FORMATS = [
  "openai.chat",
  "openai.completions",
  "openai.embeddings",
  "ollama.generate",
  "ollama.chat",
  "ollama.embed",
  "tgi.generate",
  "none",
] as const;

export const evaluateBody = z.strictObject({
  subject: z.strictObject({
    groups: z.array(groupName).max(256).default([]),
    user: label(256).optional().describe("the user claim (OIDC_USER_CLAIM) of a person"),
    email: z.email().max(320).optional(),
    apiKeyId: uuid.optional().describe("for a service account: its API key id"),
  }),
  request: z.strictObject({
    connection: resourceName,
    model: label(256).optional().describe("the model as the runtime knows it, without the connection prefix"),
    operation: z.enum(OPERATIONS),
    format: z
      .enum(BODY_FORMATS)
      .optional()
      .describe(
        "how to read the body; default: openai.chat for inference (openai.completions when the body has a prompt and no messages), openai.embeddings for embeddings",
      ),
    body: z.record(z.string(), z.unknown()).optional().describe("the request body the caller would send"),
  }),
});

export const evaluationView = z.object({
  decision: z.enum(["allowed", "denied"]),
  code: z.string().optional().describe("for a denial: the error code the gateway would answer with"),
  param: z.string().optional(),
  approvals: z
    .array(
      z.object({
        policyId: z.string(),
        policyName: z.string(),
        rule: z.number().int().nullable().describe("the require_approval rule's position; null: the grant itself"),
        field: z.string(),
        reason: z.string(),
        approverGroups: z.array(z.string()),
        minApprovals: z.number().int(),
        grant: z.enum(["request", "window"]),
        windowMinutes: z.number().int().nullable(),
        expiresMinutes: z.number().int(),
      }),
    )
    .describe("for an allowed request: the human approvals it needs first, each with a grant (docs/approvals.md)"),
  policyIds: z.array(z.string()),
  reasons: z.array(z.string()),
  effectiveLimits: z.record(z.string(), z.unknown()).nullable(),
  capped: z.array(z.object({ parameter: z.string(), value: z.number() })),
  rateLimit: z
    .object({
      policyId: z.string(),
      requestsPerMinute: z.number().optional(),
      tokensPerMinute: z.number().optional(),
    })
    .nullable(),
  estimatedTokens: z.number().nullable(),
  masking: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe("the masking the agent would apply to the response: the union of every grant's masking"),
});

export type PolicyBody = z.output<typeof policyBody>;
export type PolicyView = z.output<typeof policyView>;
export type EvaluateBody = z.output<typeof evaluateBody>;
export type EvaluationView = z.output<typeof evaluationView>;
