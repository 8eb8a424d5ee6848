import { isDeepStrictEqual } from "node:util";
import { uuidv7 } from "@modelgate/core";
import type { Database, Policy } from "@modelgate/db";
import {
  type BodyFormat,
  checkPromptPatterns,
  type PolicyDefinition,
  PolicySet,
  policyDefinitionSchema,
  type StoredPolicy,
} from "@modelgate/policy";
import { type ConfigPublishing, recordConfigChange } from "../../gateway-link/changes.js";
import { conflict, invalidRequest, notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { isUniqueViolation } from "../../prisma-errors.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import { type ApprovalWithdrawalNotice, approvalChanges, withdrawApprovals } from "../approvals/transitions.js";
import type { EvaluateBody, EvaluationView, PolicyBody, PolicyView } from "./schemas.js";

/** The stored definition: validated when written, so a failure here is a bug, not bad input. */
function definitionOf(row: Policy): PolicyDefinition {
  return policyDefinitionSchema.parse(row.definition);
}

function toPolicyView(row: Policy): PolicyView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    enabled: row.enabled,
    revision: row.revision,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    ...definitionOf(row),
  };
}

/**
 * For evaluation, the definition as stored: PolicySet validates it and
 * leaves out one it cannot read, exactly as a gateway does, so the dry run
 * cannot disagree with enforcement even about a broken row.
 */
function toStoredPolicy(row: Policy): StoredPolicy {
  return {
    id: row.id,
    name: row.name,
    revision: row.revision,
    enabled: row.enabled,
    definition: row.definition as PolicyDefinition,
  };
}

/** The row for the audit log, readable or not (a row written by a newer version must still be deletable). */
function auditImage(row: Policy): unknown {
  try {
    return toPolicyView(row);
  } catch {
    return { ...row, createdAt: row.createdAt.toISOString(), updatedAt: row.updatedAt.toISOString() };
  }
}

/**
 * Postgres' jsonb cannot hold U+0000 or a lone surrogate; refuse them as
 * input errors rather than fail the insert.
 */
function assertStorable(value: unknown, path: string): void {
  if (typeof value === "string") {
    if (value.includes("\u0000") || !value.isWellFormed()) {
      throw invalidRequest("the policy contains text that cannot be stored", [
        { path, message: "must not contain NUL characters or unpaired surrogates" },
      ]);
    }
  } else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) assertStorable(item, `${path}.${index}`);
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) assertStorable(item, `${path}.${key}`);
  }
}

function split(input: PolicyBody) {
  const { name, description, enabled, ...definition } = input;
  return { name, description: description ?? null, enabled, definition: definition as PolicyDefinition };
}

/**
 * Prompt-rule patterns run on every request at every gateway: each one is
 * checked for catastrophic backtracking here, before it can be stored.
 */
async function assertSafePatterns(definition: PolicyDefinition): Promise<void> {
  const issues = await checkPromptPatterns(definition);
  if (issues.length > 0) {
    throw invalidRequest(
      "a prompt rule pattern is not allowed",
      issues.map((issue) => ({ path: `body.${issue.path}`, message: issue.message })),
    );
  }
}

/** The body format a dry run reads when the caller does not name one. */
function defaultFormat(operation: EvaluateBody["request"]["operation"], body: Record<string, unknown> | undefined) {
  if (operation === "embeddings") return "openai.embeddings";
  if (operation !== "inference") return "none";
  return body && "prompt" in body && !("messages" in body) ? "openai.completions" : "openai.chat";
}

/** The definition as JSON holds it: key order and absent-versus-undefined do not make a change. */
function sameDefinition(stored: unknown, given: PolicyDefinition): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(stored)), JSON.parse(JSON.stringify(given)));
}

export function createPolicyService({
  db,
  config,
  approvals,
}: {
  db: Database;
  config: ConfigPublishing;
  approvals?: ApprovalWithdrawalNotice | undefined;
}) {
  return {
    async create(input: PolicyBody, actor: Actor): Promise<PolicyView> {
      assertStorable(input, "body");
      const { name, description, enabled, definition } = split(input);
      await assertSafePatterns(definition);
      let created: PolicyView;
      try {
        created = await db.$transaction(async (tx) => {
          const row = await tx.policy.create({
            data: { id: uuidv7(), name, description, enabled, definition: definition as object },
          });
          const view = toPolicyView(row);
          await recordAdminChange(tx, actor, {
            action: "policy.create",
            targetType: "policy",
            targetId: row.id,
            after: view,
          });
          await recordConfigChange(tx, [{ kind: "policy", id: row.id }]);
          return view;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`a policy named ${name} already exists`);
        throw error;
      }
      await config.publish();
      return created;
    },

    async list({ limit, cursor }: { limit: number; cursor?: string | undefined }): Promise<Page<PolicyView>> {
      const rows = await db.policy.findMany({
        where: cursor ? { id: { gt: cursor } } : {},
        orderBy: { id: "asc" },
        take: limit + 1,
      });
      return toPage(rows, limit, (row) => row.id, toPolicyView);
    },

    async get(id: string): Promise<PolicyView> {
      const row = await db.policy.findUnique({ where: { id } });
      if (!row) throw notFound(`no policy with id ${id}`);
      return toPolicyView(row);
    },

    /** Replaces the whole policy (PUT semantics) and bumps its revision. */
    async replace(id: string, input: PolicyBody, actor: Actor): Promise<PolicyView> {
      assertStorable(input, "body");
      const { name, description, enabled, definition } = split(input);
      await assertSafePatterns(definition);
      let replaced: PolicyView;
      let expired: string[] = [];
      try {
        replaced = await db.$transaction(async (tx) => {
          // FOR UPDATE: two concurrent edits must not both record the same "before".
          const [locked] = await tx.$queryRaw<
            { id: string }[]
          >`SELECT id FROM policies WHERE id = ${id}::uuid FOR UPDATE`;
          if (!locked) throw notFound(`no policy with id ${id}`);
          const before = await tx.policy.findUniqueOrThrow({ where: { id } });
          const row = await tx.policy.update({
            where: { id },
            data: {
              name,
              description,
              enabled,
              definition: definition as object,
              revision: { increment: 1 },
              updatedAt: new Date(),
            },
          });
          const view = toPolicyView(row);
          await recordAdminChange(tx, actor, {
            action: "policy.update",
            targetType: "policy",
            targetId: id,
            before: auditImage(before),
            after: view,
          });
          // What its approvals granted was granted under the old rules: a
          // changed definition, or disabling it, withdraws them (a new name
          // or description does not).
          const changed = before.enabled !== enabled || !sameDefinition(before.definition, definition);
          const withdrawn = changed
            ? await withdrawApprovals(tx, { policyId: id }, "the policy changed", new Date())
            : { voided: [], expired: [] };
          expired = withdrawn.expired;
          await recordConfigChange(tx, [
            { kind: "policy", id },
            ...approvalChanges([...withdrawn.voided, ...withdrawn.expired]),
          ]);
          return view;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`a policy named ${name} already exists`);
        throw error;
      }
      await config.publish();
      if (expired.length > 0) await approvals?.announceExpired(expired);
      return replaced;
    },

    async remove(id: string, actor: Actor): Promise<void> {
      const expired = await db.$transaction(async (tx) => {
        const row = await tx.policy.findUnique({ where: { id } });
        if (!row) throw notFound(`no policy with id ${id}`);
        // deleteMany: of concurrent deletions exactly one removes the row and is recorded.
        const { count } = await tx.policy.deleteMany({ where: { id } });
        if (count === 0) throw notFound(`no policy with id ${id}`);
        await recordAdminChange(tx, actor, {
          action: "policy.delete",
          targetType: "policy",
          targetId: id,
          before: auditImage(row),
        });
        const withdrawn = await withdrawApprovals(tx, { policyId: id }, "the policy was deleted", new Date());
        await recordConfigChange(tx, [
          { kind: "policy", id },
          ...approvalChanges([...withdrawn.voided, ...withdrawn.expired]),
        ]);
        return withdrawn.expired;
      });
      await config.publish();
      if (expired.length > 0) await approvals?.announceExpired(expired);
    },

    /**
     * Dry run: what the gateway would decide for this subject and request,
     * with the policies as they are stored now. Nothing is charged against
     * rate limits.
     */
    async evaluate({ subject, request }: EvaluateBody): Promise<EvaluationView> {
      const rows = await db.policy.findMany({ where: { enabled: true } });
      const policies = new PolicySet(rows.map(toStoredPolicy));
      const format: BodyFormat = request.format ?? defaultFormat(request.operation, request.body);
      // The connection's protocol decides the default fields of masking profiles.
      const connection = await db.connection.findUnique({ where: { name: request.connection } });
      const evaluation = policies.evaluate(
        {
          userId: subject.user ?? subject.apiKeyId ?? "",
          email: subject.email,
          groups: subject.groups,
          apiKeyId: subject.apiKeyId,
        },
        {
          connection: request.connection,
          model: request.model,
          operation: request.operation,
          format,
          body: request.body,
          protocol: connection?.protocol,
        },
      );
      if (evaluation.decision === "allowed") {
        return {
          decision: "allowed",
          policyIds: evaluation.policyIds,
          reasons: evaluation.reasons,
          effectiveLimits: evaluation.effectiveLimits as Record<string, unknown>,
          capped: evaluation.capped.map(({ parameter, value }) => ({ parameter, value })),
          rateLimit: evaluation.rateLimit ?? null,
          estimatedTokens: evaluation.estimatedTokens,
          masking: (evaluation.masking as Record<string, unknown> | undefined) ?? null,
          approvals: (evaluation.approvals ?? []).map((approval) => ({
            ...approval,
            approverGroups: [...approval.approverGroups],
            rule: approval.rule ?? null,
            windowMinutes: approval.windowMinutes ?? null,
          })),
        };
      }
      return {
        decision: "denied",
        code: evaluation.code,
        ...(evaluation.param === undefined ? {} : { param: evaluation.param }),
        policyIds: evaluation.policyIds,
        reasons: evaluation.reasons,
        effectiveLimits: null,
        capped: [],
        rateLimit: null,
        estimatedTokens: null,
        masking: null,
        approvals: [],
      };
    },
  };
}

export type PolicyService = ReturnType<typeof createPolicyService>;
