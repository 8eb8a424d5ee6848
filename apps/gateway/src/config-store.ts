// What the gateway enforces, held in memory and replaced as a whole by each
// snapshot the control plane pushes: the request path never queries Postgres.
import { EventEmitter } from "node:events";
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

/**
 * Emits "change" after each accepted snapshot, with the ids of agents that are
 * no longer valid (revoked or deleted) so their tunnels can be closed.
 */
export class ConfigStore extends EventEmitter {
  #revision = -1;
  #receivedAt: number | undefined;
  #connectionsByName = new Map<string, ConnectionConfig>();
  #connectionsById = new Map<string, ConnectionConfig>();
  #connectionsByModel = new Map<string, ConnectionConfig[]>();
  #agentsByTokenHash = new Map<string, AgentCredential>();
  #agentsById = new Map<string, AgentCredential>();
  #apiKeysByHash = new Map<string, ApiKeyIdentity>();

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
    const removedAgents = [...this.#agentsById.keys()].filter((id) => !agentsById.has(id));

    this.#revision = snapshot.revision;
    this.#receivedAt = now;
    this.#connectionsByName = connectionsByName;
    this.#connectionsById = connectionsById;
    this.#connectionsByModel = connectionsByModel;
    this.#agentsByTokenHash = agentsByTokenHash;
    this.#agentsById = agentsById;
    this.#apiKeysByHash = apiKeysByHash;
    this.emit("change", { removedAgents });
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
   * lists it (never a guess between two runtimes).
   */
  route(model: string): RouteResult {
    const slash = model.indexOf("/");
    if (slash > 0) {
      const connection = this.#connectionsByName.get(model.slice(0, slash));
      const name = model.slice(slash + 1);
      if (connection && name && (connection.models.length === 0 || connection.models.includes(name))) {
        return { ok: true, target: { connection, model: name } };
      }
    }
    const serving = this.#connectionsByModel.get(model) ?? [];
    if (serving.length === 1 && serving[0]) return { ok: true, target: { connection: serving[0], model } };
    if (serving.length > 1) {
      return { ok: false, reason: "ambiguous", candidates: serving.map((connection) => `${connection.name}/${model}`) };
    }
    return { ok: false, reason: "unknown" };
  }
}
