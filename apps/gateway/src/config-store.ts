// What the gateway enforces, held in memory: the request path never queries
// Postgres. A snapshot replaces all of it; a delta changes only the entities
// it names, so revoking one key among 100,000 touches one map entry and
// leaves the compiled policies alone.

import { EventEmitter } from "node:events";
import { type PolicyDefinition, PolicySet, type StoredPolicy } from "@modelgate/policy";
import type {
  AgentCredentialMessage as AgentMessage,
  ApiKeyCredentialMessage as ApiKeyMessage,
  ConfigDelta,
  ConfigSnapshot,
  ConnectionMessage,
  Policy as PolicyMessage,
  Protocol,
} from "@modelgate/protocol";
import { ApprovalGrants } from "./approval-grants.js";

export interface ConnectionConfig {
  id: string;
  name: string;
  protocol: Protocol;
  /** Models the connection serves; empty means "whatever the runtime has". */
  models: readonly string[];
}

export interface AgentCredential {
  id: string;
  name: string;
  connectionId: string;
  tokenHash: string;
}

export interface ApiKeyIdentity {
  id: string;
  name: string;
  groups: readonly string[];
  /** Unix milliseconds; undefined = never. */
  expiresAt: number | undefined;
}

/**
 * A secret that authenticates as a key: its current one, or the one a
 * rotation replaced, until the overlap ends (`until`, Unix ms).
 */
interface ApiKeySecret {
  key: ApiKeyIdentity;
  /** Unix milliseconds after which this secret no longer works; undefined = as long as the key. */
  until: number | undefined;
}

interface RouteTarget {
  connection: ConnectionConfig;
  /** The model name as the runtime knows it. */
  model: string;
}

export type RouteResult =
  | { ok: true; target: RouteTarget }
  | { ok: false; reason: "unknown" | "ambiguous"; candidates?: string[] };

/** A policy this gateway could not use; it grants nothing (fail closed). */
export interface PolicyProblem {
  policyId: string;
  message: string;
}

export interface ConfigChange {
  /** How the configuration changed: replaced as a whole, or the entities of a delta. */
  kind: "snapshot" | "delta";
  /** The revision now held. */
  revision: number;
  /** Agents no longer valid (revoked or deleted): their tunnels must close. */
  removedAgents: string[];
  /** Every policy this gateway cannot use now (not only those of this change). */
  policyProblems: PolicyProblem[];
}

/**
 * What applying a delta did. Anything but "applied" and "stale" means the
 * delta does not fit what the store holds (nothing was changed): the caller
 * asks for a snapshot.
 */
export type DeltaOutcome =
  /** Applied (or, when empty, confirmed the store is current). */
  | "applied"
  /** Already contained in what the store holds: ignored. */
  | "stale"
  /** Its base is not the store's revision: a revision is missing. */
  | "gap"
  /** Another history (another database), or nothing held yet. */
  | "epoch_mismatch";

/** A policy as received: read once when it arrives, compiled into the PolicySet with the others. */
type PolicyRecord = { ok: true; stored: StoredPolicy } | { ok: false; problem: PolicyProblem };

/** Emits "change" (a ConfigChange) after each snapshot or non-empty delta. */
export class ConfigStore extends EventEmitter {
  #epoch = "";
  #revision = -1;
  #receivedAt: number | undefined;
  #connectionsById = new Map<string, ConnectionConfig>();
  #connectionsByName = new Map<string, ConnectionConfig>();
  #connectionsByModel = new Map<string, ConnectionConfig[]>();
  #agentsByTokenHash = new Map<string, AgentCredential>();
  #agentsById = new Map<string, AgentCredential>();
  #apiKeysByHash = new Map<string, ApiKeySecret>();
  /** id → the hashes of its secrets (current, then previous): deltas name keys by id. */
  #apiKeyHashes = new Map<string, string[]>();
  #policyRecords = new Map<string, PolicyRecord>();
  #policies = new PolicySet([]);
  #policyProblems: PolicyProblem[] = [];
  /** Approval grants in force, and the requests waiting on approvals (docs/approvals.md). */
  readonly approvals = new ApprovalGrants();

  /** The history the configuration belongs to; empty before the first snapshot. */
  get epoch(): string {
    return this.#epoch;
  }

  get revision(): number {
    return this.#revision;
  }

  /** When the current configuration arrived (Unix ms), undefined before the first. */
  get receivedAt(): number | undefined {
    return this.#receivedAt;
  }

  get loaded(): boolean {
    return this.#receivedAt !== undefined;
  }

  /**
   * Replaces the configuration as a whole, unless the snapshot is older than
   * what the store holds in the same history (epoch): a control-plane
   * replica that has not yet published the latest change could otherwise
   * hand back a key revoked a moment ago. "stale" snapshots change nothing;
   * the deltas that follow bring the store on.
   */
  applySnapshot(snapshot: ConfigSnapshot, now = Date.now()): "applied" | "stale" {
    if (this.loaded && snapshot.epoch === this.#epoch && snapshot.revision < this.#revision) return "stale";
    const connectionsById = new Map(
      snapshot.connections.map((connection) => [connection.id, toConnection(connection)]),
    );
    const agentsById = new Map(snapshot.agents.map((agent) => [agent.id, toAgent(agent)]));
    const agentsByTokenHash = new Map([...agentsById.values()].map((agent) => [agent.tokenHash, agent]));
    const apiKeysByHash = new Map<string, ApiKeySecret>();
    const apiKeyHashes = new Map<string, string[]>();
    for (const key of snapshot.apiKeys) setApiKey(apiKeysByHash, apiKeyHashes, key);
    const policyRecords = new Map(snapshot.policies.map((policy) => [policy.id, readPolicy(policy)]));
    const compiled = compilePolicies(policyRecords);
    const removedAgents = [...this.#agentsById.keys()].filter((id) => !agentsById.has(id));

    this.#epoch = snapshot.epoch;
    this.#revision = snapshot.revision;
    this.#receivedAt = now;
    this.#setConnections(connectionsById);
    this.#agentsByTokenHash = agentsByTokenHash;
    this.#agentsById = agentsById;
    this.#apiKeysByHash = apiKeysByHash;
    this.#apiKeyHashes = apiKeyHashes;
    this.#policyRecords = policyRecords;
    this.#policies = compiled.policies;
    this.#policyProblems = compiled.problems;
    this.approvals.replace(snapshot.approvals ?? []);
    this.#changed("snapshot", removedAgents);
    return "applied";
  }

  /**
   * Applies a delta on top of exactly the revision it was built on, as a
   * whole: everything that can fail (reading and compiling policies) runs
   * before the first map changes, and the rest cannot throw, so a request
   * never sees half a delta. Connections and agents are few and their
   * indexes are rebuilt; keys change one entry each; the PolicySet is
   * rebuilt from the held definitions only when a policy changed.
   */
  applyDelta(delta: ConfigDelta, now = Date.now()): DeltaOutcome {
    if (!this.loaded || delta.epoch !== this.#epoch) return "epoch_mismatch";
    if (delta.baseRevision !== this.#revision) return delta.revision <= this.#revision ? "stale" : "gap";
    if (delta.revision === delta.baseRevision) return "applied";

    let compiled: { policies: PolicySet; problems: PolicyProblem[] } | undefined;
    let policyRecords: Map<string, PolicyRecord> | undefined;
    if (delta.policies.length > 0 || delta.removedPolicyIds.length > 0) {
      policyRecords = new Map(this.#policyRecords);
      for (const id of delta.removedPolicyIds) policyRecords.delete(id);
      for (const policy of delta.policies) policyRecords.set(policy.id, readPolicy(policy));
      compiled = compilePolicies(policyRecords);
    }

    const removedAgents: string[] = [];
    const removeAgent = (id: string) => {
      const agent = this.#agentsById.get(id);
      if (!agent) return;
      this.#agentsById.delete(id);
      this.#agentsByTokenHash.delete(agent.tokenHash);
      removedAgents.push(id);
    };
    if (delta.connections.length > 0 || delta.removedConnectionIds.length > 0) {
      const connectionsById = new Map(this.#connectionsById);
      for (const id of delta.removedConnectionIds) connectionsById.delete(id);
      for (const connection of delta.connections) connectionsById.set(connection.id, toConnection(connection));
      this.#setConnections(connectionsById);
      // A removed connection's agents went with it; the delta lists them too.
      for (const agent of [...this.#agentsById.values()]) {
        if (!connectionsById.has(agent.connectionId)) removeAgent(agent.id);
      }
    }
    for (const id of delta.removedAgentIds) removeAgent(id);
    for (const message of delta.agents) {
      const agent = toAgent(message);
      const previous = this.#agentsById.get(agent.id);
      if (previous) this.#agentsByTokenHash.delete(previous.tokenHash);
      this.#agentsById.set(agent.id, agent);
      this.#agentsByTokenHash.set(agent.tokenHash, agent);
    }
    for (const id of delta.removedApiKeyIds) removeApiKey(this.#apiKeysByHash, this.#apiKeyHashes, id);
    for (const key of delta.apiKeys) {
      // A changed key replaces all its secrets: a rotation's delta drops
      // the secret its overlap ended, or one rotated out at once.
      removeApiKey(this.#apiKeysByHash, this.#apiKeyHashes, key.id);
      setApiKey(this.#apiKeysByHash, this.#apiKeyHashes, key);
    }
    if (policyRecords && compiled) {
      this.#policyRecords = policyRecords;
      this.#policies = compiled.policies;
      this.#policyProblems = compiled.problems;
    }
    this.#revision = delta.revision;
    this.#receivedAt = now;
    // Last: decisions wake waiting requests, which must see this revision's policies.
    this.approvals.update(delta.approvals ?? []);
    this.#changed("delta", removedAgents);
    return "applied";
  }

  #setConnections(connectionsById: Map<string, ConnectionConfig>): void {
    // By name, as snapshots list them: /v1/models answers in the same order
    // whether the configuration arrived whole or in deltas.
    const byName = [...connectionsById.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const connectionsByModel = new Map<string, ConnectionConfig[]>();
    for (const connection of byName) {
      for (const model of connection.models) {
        const serving = connectionsByModel.get(model) ?? [];
        serving.push(connection);
        connectionsByModel.set(model, serving);
      }
    }
    this.#connectionsById = connectionsById;
    this.#connectionsByName = new Map(byName.map((connection) => [connection.name, connection]));
    this.#connectionsByModel = connectionsByModel;
  }

  #changed(kind: ConfigChange["kind"], removedAgents: string[]): void {
    const change: ConfigChange = {
      kind,
      revision: this.#revision,
      removedAgents,
      policyProblems: this.#policyProblems,
    };
    this.emit("change", change);
  }

  /** The enabled policies, compiled; replaced as a whole when any of them changes. */
  get policies(): PolicySet {
    return this.#policies;
  }

  connectionByName(name: string): ConnectionConfig | undefined {
    return this.#connectionsByName.get(name);
  }

  connectionById(id: string): ConnectionConfig | undefined {
    return this.#connectionsById.get(id);
  }

  connections(): Iterable<ConnectionConfig> {
    return this.#connectionsByName.values();
  }

  agentByTokenHash(tokenHash: string): AgentCredential | undefined {
    return this.#agentsByTokenHash.get(tokenHash);
  }

  agentById(id: string): AgentCredential | undefined {
    return this.#agentsById.get(id);
  }

  /**
   * The key one of whose secrets has this hash, if the key has not expired
   * at `now` and, for the secret a rotation replaced, its overlap has not
   * ended: both are checked here on every request, so neither waits for a
   * push to take effect.
   */
  apiKeyByHash(keyHash: string, now = Date.now()): ApiKeyIdentity | undefined {
    const secret = this.#apiKeysByHash.get(keyHash);
    if (!secret || (secret.until !== undefined && secret.until <= now)) return undefined;
    const { key } = secret;
    if (key.expiresAt !== undefined && key.expiresAt <= now) return undefined;
    return key;
  }

  /**
   * Resolves an OpenAI `model` field: `<connection>/<model>` addresses a
   * connection explicitly; a bare name routes only if exactly one connection
   * lists it (never a guess between two runtimes). `visible` narrows the
   * candidates to the connections the caller may use, so a bare name is
   * never ambiguous because of a runtime the caller cannot see, and an error
   * never names one.
   */
  route(model: string, visible: (connection: ConnectionConfig, model: string) => boolean = () => true): RouteResult {
    const slash = model.indexOf("/");
    if (slash > 0) {
      const connection = this.#connectionsByName.get(model.slice(0, slash));
      const name = model.slice(slash + 1);
      if (connection && name && (connection.models.length === 0 || connection.models.includes(name))) {
        return { ok: true, target: { connection, model: name } };
      }
    }
    const serving = (this.#connectionsByModel.get(model) ?? []).filter((connection) => visible(connection, model));
    if (serving.length === 1 && serving[0]) return { ok: true, target: { connection: serving[0], model } };
    if (serving.length > 1) {
      return { ok: false, reason: "ambiguous", candidates: serving.map((connection) => `${connection.name}/${model}`) };
    }
    return { ok: false, reason: "unknown" };
  }
}

const toConnection = (connection: ConnectionMessage): ConnectionConfig => ({
  id: connection.id,
  name: connection.name,
  protocol: connection.protocol,
  models: [...connection.models],
});

const toAgent = (agent: AgentMessage): AgentCredential => ({
  id: agent.id,
  name: agent.name,
  connectionId: agent.connectionId,
  tokenHash: agent.tokenHash,
});

const toApiKey = (key: ApiKeyMessage): ApiKeyIdentity => ({
  id: key.id,
  name: key.name,
  groups: [...key.groups],
  expiresAt: key.expiresAt > 0 ? key.expiresAt : undefined,
});

function setApiKey(byHash: Map<string, ApiKeySecret>, hashesById: Map<string, string[]>, message: ApiKeyMessage): void {
  const key = toApiKey(message);
  const hashes = [message.keyHash];
  byHash.set(message.keyHash, { key, until: undefined });
  // Both or neither: a previous hash without its end time would never stop.
  if (message.previousKeyHash && message.previousKeyExpiresAt > 0) {
    byHash.set(message.previousKeyHash, { key, until: message.previousKeyExpiresAt });
    hashes.push(message.previousKeyHash);
  }
  hashesById.set(message.id, hashes);
}

function removeApiKey(byHash: Map<string, ApiKeySecret>, hashesById: Map<string, string[]>, id: string): void {
  for (const hash of hashesById.get(id) ?? []) {
    // Only this key's entry: a hash never belongs to two keys, but a stale
    // id must not remove another key's secret.
    if (byHash.get(hash)?.key.id === id) byHash.delete(hash);
  }
  hashesById.delete(id);
}

function readPolicy(policy: PolicyMessage): PolicyRecord {
  let definition: PolicyDefinition;
  try {
    definition = JSON.parse(policy.definitionJson) as PolicyDefinition;
  } catch {
    return { ok: false, problem: { policyId: policy.id, message: "definition is not valid JSON" } };
  }
  return {
    ok: true,
    stored: { id: policy.id, name: policy.name, revision: policy.revision, enabled: true, definition },
  };
}

/**
 * Compiles the held policies. PolicySet validates each definition with the
 * schema the control plane wrote it with; a policy this gateway cannot read
 * (say, from a newer control plane) is left out and reported, so it grants
 * nothing: never a wider grant than intended. This is the one step whose
 * cost grows with the number of policies (docs/benchmarks.md).
 */
function compilePolicies(records: ReadonlyMap<string, PolicyRecord>): {
  policies: PolicySet;
  problems: PolicyProblem[];
} {
  const problems: PolicyProblem[] = [];
  const stored: StoredPolicy[] = [];
  for (const record of records.values()) {
    if (record.ok) stored.push(record.stored);
    else problems.push(record.problem);
  }
  // In id order, as snapshots list them: among equally permissive grants the
  // first one named in a decision is the same however the policies arrived.
  stored.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const policies = new PolicySet(stored);
  problems.push(...policies.errors);
  return { policies, problems };
}
