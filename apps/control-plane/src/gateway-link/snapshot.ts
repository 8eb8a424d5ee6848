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
 * the parts are consistent with each other. Revoked agents, revoked or
 * expired keys and disabled policies are left out: a gateway cannot accept what it never received.
 */
export async function buildSnapshot(db: Database, revision: number, now = new Date()): Promise<ConfigSnapshotInput> {
  const [connections, agents, apiKeys, policies] = await db.$transaction(
    [
      db.connection.findMany({ orderBy: { name: "asc" } }),
      db.agent.findMany({ where: { revokedAt: null }, orderBy: { id: "asc" } }),
      db.apiKey.findMany({
        where: { revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
        orderBy: { id: "asc" },
      }),
      db.policy.findMany({ where: { enabled: true }, orderBy: { id: "asc" } }),
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
    // The definition as the API validated and stored it; gateways parse it
    // with the same schema.
    policies: policies.map((policy) => ({
      id: policy.id,
      name: policy.name,
      revision: policy.revision,
      definitionJson: JSON.stringify(policy.definition),
    })),
  };
}
