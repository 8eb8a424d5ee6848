import { generateSecret, hashSecret, SECRET_PREFIX, secretDisplayPrefix, uuidv7 } from "@modelgate/core";
import type { Agent, Database } from "@modelgate/db";
import { type ConfigPublishing, recordConfigChange } from "../../gateway-link/changes.js";
import type { AgentStatus, PresenceRegistry } from "../../gateway-link/presence.js";
import { conflict, notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import type { AgentView, CreatedAgentView } from "./schemas.js";

const NO_TUNNEL: AgentStatus = {
  state: "disconnected",
  inFlight: 0,
  capacity: 0,
  runtimeHealthy: null,
  lastHeartbeatAt: null,
  gateways: [],
};

function toAgentView(row: Agent & { connection: { name: string } }, tunnel: AgentStatus = NO_TUNNEL): AgentView {
  return {
    id: row.id,
    name: row.name,
    connection: row.connection.name,
    tokenPrefix: row.tokenPrefix,
    status: row.revokedAt ? "revoked" : "active",
    version: row.version,
    lastSeenAt: row.lastSeenAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
    tunnel,
  };
}

/** What the admin audit log records: the agent's configuration, not its live tunnel. */
function toAuditView(row: Agent & { connection: { name: string } }): Omit<AgentView, "tunnel"> {
  const { tunnel: _liveState, ...view } = toAgentView(row);
  return view;
}

export function createAgentService({
  db,
  config,
  presence,
}: {
  db: Database;
  config: ConfigPublishing;
  presence?: PresenceRegistry;
}) {
  return {
    /** Issues an agent token for a connection. Only its hash is stored. */
    async create(connectionName: string, name: string, actor: Actor): Promise<CreatedAgentView> {
      const created = await db.$transaction(async (tx) => {
        // Locking the connection serialises agent creation per connection, so
        // the duplicate-name check below cannot race with itself.
        const [connection] = await tx.$queryRaw<{ id: string }[]>`
          SELECT id FROM connections WHERE name = ${connectionName} FOR UPDATE`;
        if (!connection) throw notFound(`no connection named ${connectionName}`);
        const duplicate = await tx.agent.findFirst({
          where: { connectionId: connection.id, name, revokedAt: null },
          select: { id: true },
        });
        if (duplicate) throw conflict(`connection ${connectionName} already has an active agent named ${name}`);

        const token = generateSecret(SECRET_PREFIX.agentToken);
        const row = await tx.agent.create({
          data: {
            id: uuidv7(),
            connectionId: connection.id,
            name,
            tokenHash: hashSecret(token),
            tokenPrefix: secretDisplayPrefix(token, SECRET_PREFIX.agentToken),
          },
          include: { connection: { select: { name: true } } },
        });
        await recordAdminChange(tx, actor, {
          action: "agent.create",
          targetType: "agent",
          targetId: row.id,
          after: toAuditView(row),
        });
        await recordConfigChange(tx, [{ kind: "agent", id: row.id }]);
        return { id: row.id, name: row.name, connection: connectionName, token };
      });
      await config.publish();
      return created;
    },

    async list(query: {
      connection?: string | undefined;
      limit: number;
      cursor?: string | undefined;
    }): Promise<Page<AgentView>> {
      const rows = await db.agent.findMany({
        where: {
          ...(query.connection ? { connection: { name: query.connection } } : {}),
          ...(query.cursor ? { id: { gt: query.cursor } } : {}),
        },
        include: { connection: { select: { name: true } } },
        orderBy: { id: "asc" },
        take: query.limit + 1,
      });
      return toPage(
        rows,
        query.limit,
        (row) => row.id,
        (row) => toAgentView(row, presence && !row.revokedAt ? presence.statusOf(row.id) : NO_TUNNEL),
      );
    },

    /** Revokes an agent's token at once. Revoking a revoked agent changes nothing. */
    async revoke(id: string, actor: Actor): Promise<void> {
      const revoked = await db.$transaction(async (tx) => {
        const before = await tx.agent.findUnique({
          where: { id },
          include: { connection: { select: { name: true } } },
        });
        if (!before) throw notFound(`no agent with id ${id}`);
        // Conditional update: of concurrent revocations exactly one changes
        // the row and writes the audit entry; the others change nothing.
        const { count } = await tx.agent.updateMany({
          where: { id, revokedAt: null },
          data: { revokedAt: new Date() },
        });
        if (count === 0) return false;
        const after = await tx.agent.findUniqueOrThrow({
          where: { id },
          include: { connection: { select: { name: true } } },
        });
        await recordAdminChange(tx, actor, {
          action: "agent.revoke",
          targetType: "agent",
          targetId: id,
          before: toAuditView(before),
          after: toAuditView(after),
        });
        await recordConfigChange(tx, [{ kind: "agent", id }]);
        return true;
      });
      if (revoked) await config.publish();
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
