// Reads what gateways enforce from Postgres, in the shape the configuration
// stream carries: all of it (a snapshot) or the entities a range of
// revisions changed (a delta). Both use the same views and the same notion
// of "valid", so a delta can never accept what a snapshot would leave out.
import type { Agent, ApiKey, Connection, Database, Policy, Prisma } from "@modelgate/db";
import type { ConfigDeltaInput, ConfigSnapshotInput, Protocol } from "@modelgate/protocol";
import { type ApprovalRow, inForceWhere, toApprovalMessage, VOTES_IN_ORDER } from "../features/approvals/views.js";
import type { ConfigChange, ConfigEntityKind } from "./changes.js";

const PROTOCOLS: Record<string, Protocol> = {
  openai: "PROTOCOL_OPENAI",
  ollama: "PROTOCOL_OLLAMA",
  tgi: "PROTOCOL_TGI",
  http: "PROTOCOL_HTTP",
};

/** Where a history of configuration stands. */
export interface ConfigPosition {
  epoch: string;
  revision: number;
}

export interface ConfigHead extends ConfigPosition {
  /** Changes up to here were pruned: deltas can start at this revision or later. */
  prunedThrough: number;
}

// A gateway cannot accept what it never received: revoked agents, revoked
// or expired keys and disabled policies are left out of snapshots, and
// deltas list them as removed.
const validAgent = { revokedAt: null } satisfies Prisma.AgentWhereInput;
const validApiKey = (now: Date) =>
  ({ revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] }) satisfies Prisma.ApiKeyWhereInput;
const validPolicy = { enabled: true } satisfies Prisma.PolicyWhereInput;

const connectionView = (connection: Connection) => ({
  id: connection.id,
  name: connection.name,
  protocol: PROTOCOLS[connection.protocol] ?? "PROTOCOL_UNSPECIFIED",
  models: connection.models,
});
const agentView = (agent: Agent) => ({
  id: agent.id,
  connectionId: agent.connectionId,
  name: agent.name,
  tokenHash: agent.tokenHash,
});
// A rotated key's previous secret travels with its end time while its
// overlap lasts; gateways stop it at that time by their own clock, so the
// delta that drops it later only tidies up.
const apiKeyView = (key: ApiKey, now: Date) => {
  const { previousKeyHash, previousKeyExpiresAt } = key;
  const overlap = previousKeyHash && previousKeyExpiresAt && previousKeyExpiresAt > now;
  return {
    id: key.id,
    name: key.name,
    keyHash: key.keyHash,
    groups: key.groups,
    expiresAt: key.expiresAt?.getTime() ?? 0,
    previousKeyHash: overlap ? previousKeyHash : "",
    previousKeyExpiresAt: overlap ? previousKeyExpiresAt.getTime() : 0,
  };
};
// The definition as the API validated and stored it; gateways parse it with
// the same schema.
const policyView = (policy: Policy) => ({
  id: policy.id,
  name: policy.name,
  revision: policy.revision,
  definitionJson: JSON.stringify(policy.definition),
});

function toHead(row: { epoch: string | null; revision: bigint; prunedThrough: bigint }): ConfigHead {
  // The publisher draws the epoch before anything is read (claimEpoch).
  if (!row.epoch) throw new Error("the configuration history has no epoch yet");
  return { epoch: row.epoch, revision: Number(row.revision), prunedThrough: Number(row.prunedThrough) };
}

export async function readHead(tx: Prisma.TransactionClient): Promise<ConfigHead> {
  return toHead(await tx.configHead.findUniqueOrThrow({ where: { id: 1 } }));
}

/**
 * Names this database's configuration history once: the first control plane
 * to start on it draws the epoch, later ones read it.
 */
export async function claimEpoch(db: Database): Promise<string> {
  await db.$executeRaw`UPDATE config_head SET epoch = gen_random_uuid() WHERE id = 1 AND epoch IS NULL`;
  return (await readHead(db)).epoch;
}

/**
 * Everything a gateway enforces, read in one repeatable-read transaction
 * together with the revision it is consistent with.
 */
export async function buildSnapshot(db: Database, now = new Date()): Promise<ConfigSnapshotInput> {
  const [head, connections, agents, apiKeys, policies, approvals] = await db.$transaction(
    [
      db.configHead.findUniqueOrThrow({ where: { id: 1 } }),
      db.connection.findMany({ orderBy: { name: "asc" } }),
      db.agent.findMany({ where: validAgent, orderBy: { id: "asc" } }),
      db.apiKey.findMany({ where: validApiKey(now), orderBy: { id: "asc" } }),
      db.policy.findMany({ where: validPolicy, orderBy: { id: "asc" } }),
      // Grants in force only: a gateway that starts needs nothing about the others.
      db.approval.findMany({ where: inForceWhere(now), orderBy: { id: "asc" }, include: VOTES_IN_ORDER }),
    ],
    { isolationLevel: "RepeatableRead" },
  );
  const { epoch, revision } = toHead(head);
  return {
    epoch,
    revision,
    connections: connections.map(connectionView),
    agents: agents.map(agentView),
    apiKeys: apiKeys.map((key) => apiKeyView(key, now)),
    policies: policies.map(policyView),
    approvals: approvals.map((approval) => toApprovalMessage(approval, now)),
  };
}

/**
 * The entities that revisions (from, to] changed, each once; undefined when
 * there are more than `limit` (a snapshot is then the cheaper message).
 */
export async function changedBetween(
  tx: Prisma.TransactionClient,
  from: number,
  to: number,
  limit: number,
): Promise<ConfigChange[] | undefined> {
  const rows = await tx.$queryRaw<{ kind: ConfigEntityKind; entity_id: string }[]>`
    SELECT DISTINCT kind::text AS kind, entity_id::text AS entity_id FROM config_changes
    WHERE revision > ${from} AND revision <= ${to}
    LIMIT ${limit + 1}`;
  if (rows.length > limit) return undefined;
  return rows.map((row) => ({ kind: row.kind, id: row.entity_id }));
}

export type DeltaContents = Omit<ConfigDeltaInput, "epoch" | "baseRevision" | "revision">;

/** The current gateway view of the named entities: present and valid, or removed. */
export async function readEntities(
  tx: Prisma.TransactionClient,
  changes: readonly ConfigChange[],
  now = new Date(),
): Promise<DeltaContents> {
  const ids = (kind: ConfigEntityKind) => changes.filter((change) => change.kind === kind).map((change) => change.id);
  const [connectionIds, agentIds, apiKeyIds, policyIds, approvalIds] = [
    ids("connection"),
    ids("agent"),
    ids("api_key"),
    ids("policy"),
    ids("approval"),
  ];
  const none = Promise.resolve([]);
  const [connections, agents, apiKeys, policies, approvals] = await Promise.all([
    connectionIds.length ? tx.connection.findMany({ where: { id: { in: connectionIds } } }) : none,
    agentIds.length ? tx.agent.findMany({ where: { id: { in: agentIds }, ...validAgent } }) : none,
    apiKeyIds.length ? tx.apiKey.findMany({ where: { id: { in: apiKeyIds }, ...validApiKey(now) } }) : none,
    policyIds.length ? tx.policy.findMany({ where: { id: { in: policyIds }, ...validPolicy } }) : none,
    // Each changed approval in its state now, decided ones only: gateways
    // keep the grants in force, drop the others and release requests
    // waiting on any of them. A pending approval concerns no gateway.
    approvalIds.length
      ? tx.approval.findMany({
          where: { id: { in: approvalIds }, status: { not: "pending" } },
          orderBy: { id: "asc" },
          include: VOTES_IN_ORDER,
        })
      : none,
  ]);
  const missing = (wanted: string[], found: { id: string }[]) => {
    const present = new Set(found.map((row) => row.id));
    return wanted.filter((id) => !present.has(id));
  };
  return {
    connections: (connections as Connection[]).map(connectionView),
    agents: (agents as Agent[]).map(agentView),
    apiKeys: (apiKeys as ApiKey[]).map((key) => apiKeyView(key, now)),
    policies: (policies as Policy[]).map(policyView),
    approvals: (approvals as ApprovalRow[]).map((approval) => toApprovalMessage(approval, now)),
    removedConnectionIds: missing(connectionIds, connections),
    removedAgentIds: missing(agentIds, agents),
    removedApiKeyIds: missing(apiKeyIds, apiKeys),
    removedPolicyIds: missing(policyIds, policies),
  };
}
