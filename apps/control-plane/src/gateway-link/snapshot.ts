import type { Database } from "@modelgate/db";
import type { ConfigSnapshotInput, Protocol } from "@modelgate/protocol";

const PROTOCOLS: Record<string, Protocol> = {
  openai: "PROTOCOL_OPENAI",
  ollama: "PROTOCOL_OLLAMA",
  tgi: "PROTOCOL_TGI",
  http: "PROTOCOL_HTTP",
};

/**
 * Everything a gateway enforces, read in one repeatable-read transaction so
 * the parts are consistent with each other. Revoked agents and revoked or
 * expired keys are left out: a gateway cannot accept what it never received.
 */
export async function buildSnapshot(db: Database, revision: number, now = new Date()): Promise<ConfigSnapshotInput> {
  const [connections, agents, apiKeys] = await db.$transaction(
    [
      db.connection.findMany({ orderBy: { name: "asc" } }),
      db.agent.findMany({ where: { revokedAt: null }, orderBy: { id: "asc" } }),
      db.apiKey.findMany({
        where: { revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
        orderBy: { id: "asc" },
      }),
    ],
    { isolationLevel: "RepeatableRead" },
  );
  return {
    revision,
    connections: connections.map((connection) => ({
      id: connection.id,
      name: connection.name,
      protocol: PROTOCOLS[connection.protocol] ?? "PROTOCOL_UNSPECIFIED",
      models: connection.models,
    })),
    agents: agents.map((agent) => ({
      id: agent.id,
      connectionId: agent.connectionId,
      name: agent.name,
      tokenHash: agent.tokenHash,
    })),
    apiKeys: apiKeys.map((key) => ({
      id: key.id,
      name: key.name,
      keyHash: key.keyHash,
      groups: key.groups,
      expiresAt: key.expiresAt?.getTime() ?? 0,
    })),
  };
}
