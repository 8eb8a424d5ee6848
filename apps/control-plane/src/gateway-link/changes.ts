// The write side of configuration distribution: a service that changes
// something gateways enforce records it here, in its own transaction, and
// then calls the publisher (ConfigPublishing) once the transaction commits.
import type { Prisma } from "@modelgate/db";

/** Postgres channel that wakes every control-plane replica's publisher. */
export const CONFIG_CHANNEL = "modelgate_config";

export type ConfigEntityKind = "connection" | "agent" | "api_key" | "policy" | "approval";

/**
 * An entity whose gateway view may have changed. It names the entity, not
 * what happened to it: the publisher reads the entity when it sends the
 * delta and sends it, or its removal when it is gone, revoked, expired or
 * disabled. So a delta can never bring back what a later change removed.
 */
export interface ConfigChange {
  kind: ConfigEntityKind;
  id: string;
}

/** What a service needs from the publisher: the explicit step after its commit. */
export interface ConfigPublishing {
  /**
   * Sends gateways what was committed so far. Resolves once this replica has
   * handed the deltas to the gateway streams it serves (other replicas are
   * woken by the transaction's notification); never rejects, since the
   * change is already durable and a later round sends it.
   */
  publish(): Promise<void>;
}

/**
 * Gives the changes the next configuration revision. Call it as the last
 * statement of the transaction that makes them: it locks the head row until
 * the transaction ends, which serialises configuration changes so revisions
 * are gapless and in commit order (a publisher that sees revision N has seen
 * every revision before it). Postgres delivers the notification only if,
 * and when, the transaction commits.
 */
export async function recordConfigChange(
  tx: Prisma.TransactionClient,
  changes: readonly ConfigChange[],
): Promise<number> {
  const head = await tx.configHead.update({ where: { id: 1 }, data: { revision: { increment: 1 } } });
  const unique = [...new Map(changes.map((change) => [`${change.kind}:${change.id}`, change])).values()];
  // Two array parameters however many entities: an import of 100,000 keys
  // is one statement.
  await tx.$executeRaw`
    INSERT INTO config_changes (revision, kind, entity_id)
    SELECT ${head.revision}, kind::"ConfigEntity", entity_id
    FROM unnest(${unique.map((change) => change.kind)}::text[], ${unique.map((change) => change.id)}::uuid[])
      AS change(kind, entity_id)`;
  await tx.$executeRaw`SELECT pg_notify(${CONFIG_CHANNEL}, ${head.revision.toString()})`;
  return Number(head.revision);
}
