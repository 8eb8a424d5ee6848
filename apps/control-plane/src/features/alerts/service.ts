import { uuidv7 } from "@modelgate/core";
import type { Database, Prisma } from "@modelgate/db";
import { conflict, invalidRequest, notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { isUniqueViolation } from "../../prisma-errors.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import { toAlertBody } from "./evaluator.js";
import { type AlertListQuery, type AlertRuleBody, type AlertRuleView, encodeAlertCursor, paramsOf } from "./schemas.js";

type RuleRow = Prisma.AlertRuleGetPayload<object>;

function toAlertRuleView(row: RuleRow): AlertRuleView {
  return {
    ...(row.params as Record<string, unknown>),
    id: row.id,
    name: row.name,
    // Rules are made through this API, with its kinds only: quota_threshold
    // alerts (the enum's fourth value) have no rule.
    kind: row.kind as AlertRuleView["kind"],
    description: row.description,
    enabled: row.enabled,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function createAlertService({ db }: { db: Database }) {
  return {
    async createRule(input: AlertRuleBody, actor: Actor): Promise<AlertRuleView> {
      try {
        return await db.$transaction(async (tx) => {
          const row = await tx.alertRule.create({
            data: {
              id: uuidv7(),
              name: input.name,
              kind: input.kind,
              description: input.description ?? null,
              enabled: input.enabled,
              params: paramsOf(input) as Prisma.InputJsonObject,
            },
          });
          const view = toAlertRuleView(row);
          await recordAdminChange(tx, actor, {
            action: "alert_rule.create",
            targetType: "alert_rule",
            targetId: row.id,
            after: view,
          });
          return view;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`an alert rule named ${input.name} already exists`);
        throw error;
      }
    },

    async listRules({ limit, cursor }: { limit: number; cursor?: string | undefined }): Promise<Page<AlertRuleView>> {
      const rows = await db.alertRule.findMany({
        where: cursor ? { id: { gt: cursor } } : {},
        orderBy: { id: "asc" },
        take: limit + 1,
      });
      return toPage(rows, limit, (row) => row.id, toAlertRuleView);
    },

    async getRule(id: string): Promise<AlertRuleView> {
      const row = await db.alertRule.findUnique({ where: { id } });
      if (!row) throw notFound(`no alert rule with id ${id}`);
      return toAlertRuleView(row);
    },

    /** Replaces the rule; its kind stays (alerts already raised name it). */
    async replaceRule(id: string, input: AlertRuleBody, actor: Actor): Promise<AlertRuleView> {
      try {
        return await db.$transaction(async (tx) => {
          const [locked] = await tx.$queryRaw<
            { id: string }[]
          >`SELECT id FROM alert_rules WHERE id = ${id}::uuid FOR UPDATE`;
          if (!locked) throw notFound(`no alert rule with id ${id}`);
          const before = await tx.alertRule.findUniqueOrThrow({ where: { id } });
          if (before.kind !== input.kind) {
            throw invalidRequest("an alert rule's kind cannot change; create a new rule instead", [
              { path: "body.kind", message: `must be ${before.kind}` },
            ]);
          }
          const row = await tx.alertRule.update({
            where: { id },
            data: {
              name: input.name,
              description: input.description ?? null,
              enabled: input.enabled,
              params: paramsOf(input) as Prisma.InputJsonObject,
              updatedAt: new Date(),
            },
          });
          const view = toAlertRuleView(row);
          await recordAdminChange(tx, actor, {
            action: "alert_rule.update",
            targetType: "alert_rule",
            targetId: id,
            before: toAlertRuleView(before),
            after: view,
          });
          return view;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`an alert rule named ${input.name} already exists`);
        throw error;
      }
    },

    /** The rule's alerts stay, with its name (their rule id becomes null). */
    async removeRule(id: string, actor: Actor): Promise<void> {
      await db.$transaction(async (tx) => {
        const row = await tx.alertRule.findUnique({ where: { id } });
        if (!row) throw notFound(`no alert rule with id ${id}`);
        await tx.alertRule.delete({ where: { id } });
        await recordAdminChange(tx, actor, {
          action: "alert_rule.delete",
          targetType: "alert_rule",
          targetId: id,
          before: toAlertRuleView(row),
        });
      });
    },

    /** Newest first, keyset on (createdAt, id). */
    async listAlerts(query: AlertListQuery) {
      const and: Prisma.AlertWhereInput[] = [];
      if (query.rule) and.push({ ruleId: query.rule });
      if (query.subject) and.push({ subject: query.subject });
      if (query.from) and.push({ createdAt: { gte: new Date(query.from) } });
      if (query.to) and.push({ createdAt: { lt: new Date(query.to) } });
      if (query.cursor) {
        const { createdAt, id } = query.cursor;
        and.push({ OR: [{ createdAt: { lt: createdAt } }, { createdAt, id: { lt: id } }] });
      }
      const rows = await db.alert.findMany({
        where: { AND: and },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: query.limit + 1,
      });
      const items = rows.slice(0, query.limit);
      const last = items.at(-1);
      return {
        items: items.map(toAlertBody),
        nextCursor: rows.length > query.limit && last ? encodeAlertCursor(last) : null,
      };
    },

    async getAlert(id: string) {
      const row = await db.alert.findUnique({ where: { id } });
      if (!row) throw notFound(`no alert with id ${id}`);
      return toAlertBody(row);
    },
  };
}

export type AlertService = ReturnType<typeof createAlertService>;
