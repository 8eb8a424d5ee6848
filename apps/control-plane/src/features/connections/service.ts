import { uuidv7 } from "@modelgate/core";
import type { Connection, Database } from "@modelgate/db";
import { type ConfigPublishing, recordConfigChange } from "../../gateway-link/changes.js";
import { conflict, notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { isUniqueViolation } from "../../prisma-errors.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import type { ConnectionView, CreateConnection, UpdateConnection } from "./schemas.js";

function toConnectionView(row: Connection): ConnectionView {
  return {
    name: row.name,
    protocol: row.protocol,
    models: row.models,
    description: row.description,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function createConnectionService({ db, config }: { db: Database; config: ConfigPublishing }) {
  return {
    async create(input: CreateConnection, actor: Actor): Promise<ConnectionView> {
      let view: ConnectionView;
      try {
        view = await db.$transaction(async (tx) => {
          const row = await tx.connection.create({
            data: {
              id: uuidv7(),
              name: input.name,
              protocol: input.protocol,
              models: input.models,
              description: input.description ?? null,
            },
          });
          const view = toConnectionView(row);
          await recordAdminChange(tx, actor, {
            action: "connection.create",
            targetType: "connection",
            targetId: row.name,
            after: view,
          });
          await recordConfigChange(tx, [{ kind: "connection", id: row.id }]);
          return view;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict(`a connection named ${input.name} already exists`);
        throw error;
      }
      await config.publish();
      return view;
    },

    async list({ limit, cursor }: { limit: number; cursor?: string | undefined }): Promise<Page<ConnectionView>> {
      const rows = await db.connection.findMany({
        where: cursor ? { name: { gt: cursor } } : {},
        orderBy: { name: "asc" },
        take: limit + 1,
      });
      return toPage(rows, limit, (row) => row.name, toConnectionView);
    },

    async get(name: string): Promise<ConnectionView> {
      const row = await db.connection.findUnique({ where: { name } });
      if (!row) throw notFound(`no connection named ${name}`);
      return toConnectionView(row);
    },

    async update(name: string, patch: UpdateConnection, actor: Actor): Promise<ConnectionView> {
      const updated = await db.$transaction(async (tx) => {
        // FOR UPDATE: two concurrent edits must not both record the same "before".
        const [locked] = await tx.$queryRaw<
          { id: string }[]
        >`SELECT id FROM connections WHERE name = ${name} FOR UPDATE`;
        if (!locked) throw notFound(`no connection named ${name}`);
        const before = await tx.connection.findUniqueOrThrow({ where: { id: locked.id } });
        const row = await tx.connection.update({
          where: { id: locked.id },
          data: {
            ...(patch.protocol !== undefined ? { protocol: patch.protocol } : {}),
            ...(patch.models !== undefined ? { models: patch.models } : {}),
            ...(patch.description !== undefined ? { description: patch.description } : {}),
            updatedAt: new Date(),
          },
        });
        const view = toConnectionView(row);
        await recordAdminChange(tx, actor, {
          action: "connection.update",
          targetType: "connection",
          targetId: name,
          before: toConnectionView(before),
          after: view,
        });
        await recordConfigChange(tx, [{ kind: "connection", id: row.id }]);
        return view;
      });
      await config.publish();
      return updated;
    },

    /** Deletes the connection and, with it, its agents (their tokens stop working). */
    async remove(name: string, actor: Actor): Promise<void> {
      await db.$transaction(async (tx) => {
        // FOR UPDATE: agent creation locks the connection too, so the agents
        // read here are all the ones the delete takes with it.
        const [locked] = await tx.$queryRaw<
          { id: string }[]
        >`SELECT id FROM connections WHERE name = ${name} FOR UPDATE`;
        if (!locked) throw notFound(`no connection named ${name}`);
        const row = await tx.connection.findUniqueOrThrow({
          where: { id: locked.id },
          include: { agents: { select: { id: true } } },
        });
        await tx.connection.delete({ where: { id: row.id } });
        await recordAdminChange(tx, actor, {
          action: "connection.delete",
          targetType: "connection",
          targetId: name,
          before: { ...toConnectionView(row), agentIds: row.agents.map((agent) => agent.id) },
        });
        // Its agents went with it (ON DELETE CASCADE): gateways must drop them too.
        await recordConfigChange(tx, [
          { kind: "connection", id: row.id },
          ...row.agents.map((agent) => ({ kind: "agent" as const, id: agent.id })),
        ]);
      });
      await config.publish();
    },
  };
}

export type ConnectionService = ReturnType<typeof createConnectionService>;
