// What the gateway enforces, held in memory and replaced as a whole by each
// snapshot the control plane pushes: the request path never queries Postgres.
import { EventEmitter } from "node:events";
import { type PolicyDefinition, PolicySet, type StoredPolicy } from "@modelgate/policy";
import type { ConfigSnapshot, Protocol } from "@modelgate/protocol";

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

export interface RouteTarget {
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
  /** Agents no longer valid (revoked or deleted): their tunnels must close. */
  removedAgents: string[];
  policyProblems: PolicyProblem[];
}

/** Emits "change" (a ConfigChange) after each accepted snapshot. */
export class ConfigStore extends EventEmitter {
  #revision = -1;
  #receivedAt: number | undefined;
  #connectionsByName = new Map<string, ConnectionConfig>();
  #connectionsById = new Map<string, ConnectionConfig>();
  #connectionsByModel = new Map<string, ConnectionConfig[]>();
  #agentsByTokenHash = new Map<string, AgentCredential>();
  #agentsById = new Map<string, AgentCredential>();
  #apiKeysByHash = new Map<string, ApiKeyIdentity>();
  #policies = new PolicySet([]);

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
   * Replaces the configuration. Snapshots are applied in arrival order: one
   * stream delivers them in order, and after a reconnect (possibly to another
   * control-plane replica with another clock) the newest is the first one.
   */
  apply(snapshot: ConfigSnapshot, now = Date.now()): void {
    const connectionsByName = new Map<string, ConnectionConfig>();
    const connectionsById = new Map<string, ConnectionConfig>();
    const connectionsByModel = new Map<string, ConnectionConfig[]>();
    for (const connection of snapshot.connections) {
      const config: ConnectionConfig = {
        id: connection.id,
        name: connection.name,
        protocol: connection.protocol,
        models: [...connection.models],
      };
      connectionsByName.set(config.name, config);
      connectionsById.set(config.id, config);
      for (const model of config.models) {
        const serving = connectionsByModel.get(model) ?? [];
        serving.push(config);
        connectionsByModel.set(model, serving);
      }
    }
    const agentsByTokenHash = new Map<string, AgentCredential>();
    const agentsById = new Map<string, AgentCredential>();
    for (const agent of snapshot.agents) {
      const credential = {
        id: agent.id,
        name: agent.name,
        connectionId: agent.connectionId,
        tokenHash: agent.tokenHash,
      };
      agentsByTokenHash.set(agent.tokenHash, credential);
      agentsById.set(agent.id, credential);
    }
    const apiKeysByHash = new Map<string, ApiKeyIdentity>();
    for (const key of snapshot.apiKeys) {
      apiKeysByHash.set(key.keyHash, {
        id: key.id,
        name: key.name,
        groups: [...key.groups],
        expiresAt: key.expiresAt > 0 ? key.expiresAt : undefined,
      });
    }
    const { policies, problems } = compilePolicies(snapshot);
    const removedAgents = [...this.#agentsById.keys()].filter((id) => !agentsById.has(id));

    this.#revision = snapshot.revision;
    this.#receivedAt = now;
    this.#connectionsByName = connectionsByName;
    this.#connectionsById = connectionsById;
    this.#connectionsByModel = connectionsByModel;
    this.#agentsByTokenHash = agentsByTokenHash;
    this.#agentsById = agentsById;
    this.#apiKeysByHash = apiKeysByHash;
    this.#policies = policies;
    const change: ConfigChange = { removedAgents, policyProblems: problems };
    this.emit("change", change);
  }

  /** The enabled policies, compiled; replaced as a whole with each snapshot. */
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

  /** The key with this hash, if it exists and has not expired at `now`. */
  apiKeyByHash(keyHash: string, now = Date.now()): ApiKeyIdentity | undefined {
    const key = this.#apiKeysByHash.get(keyHash);
    if (!key || (key.expiresAt !== undefined && key.expiresAt <= now)) return undefined;
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

/**
 * Reads each policy's definition. PolicySet validates it with the schema the
 * control plane wrote it with; a policy this gateway cannot read (say, from a
 * newer control plane) is left out and reported, so it grants nothing: never
 * a wider grant than intended.
 */
function compilePolicies(snapshot: ConfigSnapshot): { policies: PolicySet; problems: PolicyProblem[] } {
  const problems: PolicyProblem[] = [];
  const stored: StoredPolicy[] = [];
  for (const policy of snapshot.policies) {
    let definition: PolicyDefinition;
    try {
      definition = JSON.parse(policy.definitionJson) as PolicyDefinition;
    } catch {
      problems.push({ policyId: policy.id, message: "definition is not valid JSON" });
      continue;
    }
    stored.push({ id: policy.id, name: policy.name, revision: policy.revision, enabled: true, definition });
  }
  const policies = new PolicySet(stored);
  problems.push(...policies.errors);
  return { policies, problems };
}
