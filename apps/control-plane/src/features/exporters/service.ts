import { generateSecret, type Logger, uuidv7 } from "@modelgate/core";
import type { Database, Prisma } from "@modelgate/db";
import { conflict, invalidRequest, notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { isUniqueViolation } from "../../prisma-errors.js";
import type { SecretBox } from "../../secret-box.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import { deliverTo, secretContext } from "./delivery.js";
import { DeliveryError, DestinationRefused } from "./delivery-error.js";
import type { ExportEgress } from "./egress.js";
import { testEvent } from "./events.js";
import type { CreatedExporterView, ExporterBody, ExporterView } from "./schemas.js";

type ExporterRow = Prisma.ExporterGetPayload<object>;

/** Generated webhook secrets carry a prefix so a leaked one is easy to recognise. */
const WEBHOOK_SECRET_PREFIX = "mgwhsec_";

function toExporterView(row: ExporterRow): ExporterView {
  const config = row.config as Record<string, unknown>;
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    description: row.description,
    enabled: row.enabled,
    types: row.eventTypes,
    decisions: row.decisions,
    ...(row.kind === "webhook"
      ? { url: String(config.url), secretSealed: row.secret?.startsWith("plain.") === false }
      : {
          host: String(config.host),
          port: Number(config.port),
          tls: Boolean(config.tls),
          facility: Number(config.facility),
        }),
    timeoutMs: Number(config.timeoutMs),
    delivery: {
      delivered: Number(row.deliveredCount),
      failed: Number(row.failedCount),
      lastSuccessAt: row.lastSuccessAt?.toISOString() ?? null,
      lastFailureAt: row.lastFailureAt?.toISOString() ?? null,
      lastError: row.lastError,
    },
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The admin audit image: the view without delivery counters (they are not a change anyone made). */
function auditImage(row: ExporterRow) {
  const { delivery: _delivery, ...rest } = toExporterView(row);
  return rest;
}

function configOf(input: ExporterBody): Prisma.InputJsonObject {
  return input.kind === "webhook"
    ? { url: input.url, timeoutMs: input.timeoutMs }
    : { host: input.host, port: input.port, tls: input.tls, facility: input.facility, timeoutMs: input.timeoutMs };
}

/**
 * What the test endpoint says whenever the event did not arrive, whatever the
 * reason. Distinct answers for "refused address", "connection refused", "no
 * answer" and "HTTP 404" would make the endpoint a port scanner of whatever
 * the control plane can reach; the reason goes to the control plane's log.
 */
export const TEST_NOT_DELIVERED = "the test event was not delivered; the control plane's log says why";

export function createExporterService({
  db,
  secrets,
  egress,
  logger,
}: {
  db: Database;
  secrets: SecretBox;
  /** Where exporters may point; checked on create and replace, and by every connection. */
  egress: ExportEgress;
  logger: Logger;
}) {
  /**
   * Refuses a destination the egress policy refuses now, naming the rule:
   * only admins call this, and they need to know which setting to change.
   * Deliveries check again at connect time; this is the early, clear answer.
   */
  async function checkDestination(input: ExporterBody): Promise<void> {
    const [host, path] =
      input.kind === "webhook" ? [new URL(input.url).hostname, "body.url"] : [input.host, "body.host"];
    try {
      await egress.check(host);
    } catch (error) {
      if (!(error instanceof DeliveryError)) throw error;
      const detail =
        error instanceof DestinationRefused
          ? `the exporter's destination is not allowed: ${error.message}`
          : `the exporter's destination could not be checked: ${error.message}`;
      throw invalidRequest(detail, [{ path, message: error.message }]);
    }
  }

  return {
    async create(input: ExporterBody, actor: Actor): Promise<CreatedExporterView> {
      await checkDestination(input);
      const id = uuidv7();
      const generated = input.kind === "webhook" && !input.secret ? generateSecret(WEBHOOK_SECRET_PREFIX) : undefined;
      const secret = input.kind === "webhook" ? (input.secret ?? generated) : undefined;
      try {
        const view = await db.$transaction(async (tx) => {
          const row = await tx.exporter.create({
            data: {
              id,
              name: input.name,
              kind: input.kind,
              description: input.description ?? null,
              enabled: input.enabled,
              eventTypes: input.types,
              decisions: input.decisions,
              config: configOf(input),
              secret: secret === undefined ? null : secrets.seal(secret, secretContext(id)),
              deliveredCount: 0,
              failedCount: 0,
            },
          });
          await recordAdminChange(tx, actor, {
            action: "exporter.create",
            targetType: "exporter",
            targetId: id,
            after: auditImage(row),
          });
          return toExporterView(row);
        });
        return generated ? { ...view, secret: generated } : view;
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`an exporter named ${input.name} already exists`);
        throw error;
      }
    },

    /** Oldest first (ids are time-ordered). */
    async list({ limit, cursor }: { limit: number; cursor?: string | undefined }): Promise<Page<ExporterView>> {
      const rows = await db.exporter.findMany({
        where: cursor ? { id: { gt: cursor } } : {},
        orderBy: { id: "asc" },
        take: limit + 1,
      });
      return toPage(rows, limit, (row) => row.id, toExporterView);
    },

    async get(id: string): Promise<ExporterView> {
      const row = await db.exporter.findUnique({ where: { id } });
      if (!row) throw notFound(`no exporter with id ${id}`);
      return toExporterView(row);
    },

    /** Replaces the settings; the kind stays. A webhook keeps its secret unless a new one is given. */
    async replace(id: string, input: ExporterBody, actor: Actor): Promise<ExporterView> {
      await checkDestination(input);
      try {
        return await db.$transaction(async (tx) => {
          const [locked] = await tx.$queryRaw<
            { id: string }[]
          >`SELECT id FROM exporters WHERE id = ${id}::uuid FOR UPDATE`;
          if (!locked) throw notFound(`no exporter with id ${id}`);
          const before = await tx.exporter.findUniqueOrThrow({ where: { id } });
          if (before.kind !== input.kind) {
            throw invalidRequest("an exporter's kind cannot change; create a new exporter instead", [
              { path: "body.kind", message: `must be ${before.kind}` },
            ]);
          }
          const row = await tx.exporter.update({
            where: { id },
            data: {
              name: input.name,
              description: input.description ?? null,
              enabled: input.enabled,
              eventTypes: input.types,
              decisions: input.decisions,
              config: configOf(input),
              ...(input.kind === "webhook" && input.secret
                ? { secret: secrets.seal(input.secret, secretContext(id)) }
                : {}),
              updatedAt: new Date(),
            },
          });
          await recordAdminChange(tx, actor, {
            action: "exporter.update",
            targetType: "exporter",
            targetId: id,
            before: auditImage(before),
            after: {
              ...auditImage(row),
              ...(input.kind === "webhook" && input.secret ? { secretReplaced: true } : {}),
            },
          });
          return toExporterView(row);
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`an exporter named ${input.name} already exists`);
        throw error;
      }
    },

    /** Deliveries still queued for it are dropped when their turn comes. */
    async remove(id: string, actor: Actor): Promise<void> {
      await db.$transaction(async (tx) => {
        const row = await tx.exporter.findUnique({ where: { id } });
        if (!row) throw notFound(`no exporter with id ${id}`);
        await tx.exporter.delete({ where: { id } });
        await recordAdminChange(tx, actor, {
          action: "exporter.delete",
          targetType: "exporter",
          targetId: id,
          before: auditImage(row),
        });
      });
    },

    /**
     * Sends one test event now, outside the queue and its retries, and says
     * whether it arrived: an admin checking a new destination wants the
     * answer, not a retry schedule. It does not count as a delivery. Every
     * failure gets the same answer (TEST_NOT_DELIVERED), the reason is logged.
     */
    async test(id: string): Promise<{ delivered: boolean; eventId: string; error: string | null }> {
      const row = await db.exporter.findUnique({ where: { id } });
      if (!row) throw notFound(`no exporter with id ${id}`);
      const event = testEvent(uuidv7(), row.name, new Date());
      try {
        await deliverTo(row, event, { secrets, egress });
        return { delivered: true, eventId: event.id, error: null };
      } catch (error) {
        // Only the safe message: an unknown error's text could carry the URL and a token in it.
        const reason = error instanceof DeliveryError ? error.message : "delivery failed";
        logger.warn({ exporterId: id, eventId: event.id, reason }, "test event not delivered");
        return { delivered: false, eventId: event.id, error: TEST_NOT_DELIVERED };
      }
    },
  };
}

export type ExporterService = ReturnType<typeof createExporterService>;
