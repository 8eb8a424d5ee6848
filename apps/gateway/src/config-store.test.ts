import type {
  AgentCredentialMessage,
  ApiKeyCredentialMessage,
  ConfigDelta,
  ConfigSnapshot,
  ConnectionMessage,
  Policy,
} from "@modelgate/protocol";
import fc from "fast-check";
import { ConfigStore } from "./config-store.js";

const EPOCH = "0b6c3f9e-2a59-4c4e-9d7e-5a0c1f7e8d21";

function snapshot(overrides: Partial<ConfigSnapshot> = {}): ConfigSnapshot {
  return {
    epoch: EPOCH,
    revision: 1,
    connections: [
      { id: "c1", name: "llama", protocol: "PROTOCOL_OPENAI", models: ["llama-3.1-8b", "shared"] },
      { id: "c2", name: "mistral", protocol: "PROTOCOL_OPENAI", models: ["mistral-7b", "shared", "org/model-x"] },
      { id: "c3", name: "any", protocol: "PROTOCOL_OLLAMA", models: [] },
    ],
    agents: [{ id: "a1", connectionId: "c1", name: "gpu-1", tokenHash: "h1" }],
    apiKeys: [
      apiKey({ id: "k1", name: "ci", keyHash: "kh1", groups: ["ops"] }),
      apiKey({ id: "k2", name: "temp", keyHash: "kh2", expiresAt: 2_000 }),
    ],
    policies: [],
    approvals: [],
    ...overrides,
  };
}

function apiKey(fields: Partial<ApiKeyCredentialMessage> & { id: string; keyHash: string }): ApiKeyCredentialMessage {
  return { name: fields.id, groups: [], expiresAt: 0, previousKeyHash: "", previousKeyExpiresAt: 0, ...fields };
}

function delta(overrides: Partial<ConfigDelta> = {}): ConfigDelta {
  return {
    epoch: EPOCH,
    baseRevision: 1,
    revision: 2,
    connections: [],
    agents: [],
    apiKeys: [],
    policies: [],
    removedConnectionIds: [],
    removedAgentIds: [],
    removedApiKeyIds: [],
    removedPolicyIds: [],
    approvals: [],
    ...overrides,
  };
}

function policy(id: string, groups: string[], connections: string[], revision = 1): Policy {
  const definition = {
    subjects: { groups },
    resources: connections.map((connection) => ({ connection, models: ["*"] })),
    operations: ["inference", "models.list"],
  };
  return { id, name: `policy-${id}`, revision, definitionJson: JSON.stringify(definition) };
}

describe("ConfigStore", () => {
  const store = new ConfigStore();
  beforeAll(() => store.applySnapshot(snapshot(), 1_000));

  it("routes <connection>/<model> and bare names served by exactly one connection", () => {
    expect(store.route("llama/llama-3.1-8b")).toMatchObject({ ok: true, target: { model: "llama-3.1-8b" } });
    expect(store.route("mistral-7b")).toMatchObject({ ok: true, target: { connection: { name: "mistral" } } });
    // Model names may contain slashes themselves.
    expect(store.route("org/model-x")).toMatchObject({ ok: true, target: { model: "org/model-x" } });
    expect(store.route("mistral/org/model-x")).toMatchObject({ ok: true, target: { model: "org/model-x" } });
  });

  it("never guesses between connections, and refuses models a connection does not list", () => {
    expect(store.route("shared")).toEqual({
      ok: false,
      reason: "ambiguous",
      candidates: ["llama/shared", "mistral/shared"],
    });
    expect(store.route("llama/mistral-7b")).toEqual({ ok: false, reason: "unknown" });
    expect(store.route("nope")).toEqual({ ok: false, reason: "unknown" });
    expect(store.route("llama/")).toEqual({ ok: false, reason: "unknown" });
  });

  it("lets a connection without a model list serve any model by prefix", () => {
    expect(store.route("any/whatever:latest")).toMatchObject({ ok: true, target: { model: "whatever:latest" } });
  });

  it("finds keys by hash and treats expired ones as absent", () => {
    expect(store.apiKeyByHash("kh1")?.groups).toEqual(["ops"]);
    expect(store.apiKeyByHash("kh2", 1_999)?.name).toBe("temp");
    expect(store.apiKeyByHash("kh2", 2_000)).toBeUndefined();
    expect(store.apiKeyByHash("missing")).toBeUndefined();
  });

  it("reports agents that a new snapshot no longer contains", () => {
    const changes: unknown[] = [];
    const local = new ConfigStore();
    local.on("change", (change) => changes.push(change));
    local.applySnapshot(snapshot());
    local.applySnapshot(snapshot({ revision: 2, agents: [] }));
    expect(changes).toEqual([
      { kind: "snapshot", revision: 1, removedAgents: [], policyProblems: [] },
      { kind: "snapshot", revision: 2, removedAgents: ["a1"], policyProblems: [] },
    ]);
    expect(local.agentByTokenHash("h1")).toBeUndefined();
  });
});

describe("ConfigStore deltas", () => {
  it("revokes a key without touching the compiled policies", () => {
    const local = new ConfigStore();
    local.applySnapshot(snapshot({ policies: [policy("p1", ["ops"], ["llama"])] }));
    const policies = local.policies;
    expect(local.applyDelta(delta({ removedApiKeyIds: ["k1"] }))).toBe("applied");
    expect(local.apiKeyByHash("kh1")).toBeUndefined();
    expect(local.apiKeyByHash("kh2", 0)).toBeDefined();
    expect(local.revision).toBe(2);
    // The same object: a key change never recompiles the policies.
    expect(local.policies).toBe(policies);

    expect(local.applyDelta(delta({ baseRevision: 2, revision: 3, policies: [policy("p2", ["dev"], ["any"])] }))).toBe(
      "applied",
    );
    expect(local.policies).not.toBe(policies);
    expect(local.policies.size).toBe(2);
  });

  it("accepts a rotated key's previous secret until its overlap ends, by the clock, and drops it with the key", () => {
    const local = new ConfigStore();
    const rotated = apiKey({
      id: "k1",
      keyHash: "new",
      groups: ["ops"],
      previousKeyHash: "old",
      previousKeyExpiresAt: 3_000,
    });
    local.applySnapshot(snapshot({ apiKeys: [rotated] }));
    expect(local.apiKeyByHash("new", 2_999)?.id).toBe("k1");
    expect(local.apiKeyByHash("old", 2_999)).toEqual(local.apiKeyByHash("new", 2_999));
    // No push needed: the end of the overlap is enforced at lookup.
    expect(local.apiKeyByHash("old", 3_000)).toBeUndefined();
    expect(local.apiKeyByHash("new", 3_000)?.id).toBe("k1");
    expect(local.apiKeyByHash("kh1", 0)).toBeUndefined();

    // The key's expiry bounds the previous secret too.
    local.applyDelta(delta({ apiKeys: [{ ...rotated, expiresAt: 2_000 }] }));
    expect(local.apiKeyByHash("old", 1_999)?.id).toBe("k1");
    expect(local.apiKeyByHash("old", 2_000)).toBeUndefined();

    // Rotated again with no overlap: the delta carries no previous secret, and both earlier ones stop.
    local.applyDelta(delta({ baseRevision: 2, revision: 3, apiKeys: [apiKey({ id: "k1", keyHash: "newer" })] }));
    expect(local.apiKeyByHash("old", 0)).toBeUndefined();
    expect(local.apiKeyByHash("new", 0)).toBeUndefined();
    expect(local.apiKeyByHash("newer", 0)?.id).toBe("k1");

    // A previous hash without an end time is ignored rather than kept forever.
    local.applyDelta(
      delta({ baseRevision: 3, revision: 4, apiKeys: [apiKey({ id: "k1", keyHash: "n4", previousKeyHash: "newer" })] }),
    );
    expect(local.apiKeyByHash("newer", 0)).toBeUndefined();

    local.applyDelta(
      delta({
        baseRevision: 4,
        revision: 5,
        apiKeys: [apiKey({ id: "k1", keyHash: "n5", previousKeyHash: "n4", previousKeyExpiresAt: 9_000 })],
      }),
    );
    expect(local.apiKeyByHash("n4", 0)?.id).toBe("k1");
    local.applyDelta(delta({ baseRevision: 5, revision: 6, removedApiKeyIds: ["k1"] }));
    expect(local.apiKeyByHash("n4", 0)).toBeUndefined();
    expect(local.apiKeyByHash("n5", 0)).toBeUndefined();
  });

  it("changes nothing for a delta that does not start at what it holds, and says why", () => {
    const local = new ConfigStore();
    expect(local.applyDelta(delta())).toBe("epoch_mismatch");
    local.applySnapshot(snapshot({ revision: 5 }));
    const changes: unknown[] = [];
    local.on("change", (change) => changes.push(change));
    const revoke = { removedApiKeyIds: ["k1"] };
    expect(local.applyDelta(delta({ ...revoke, baseRevision: 6, revision: 7 }))).toBe("gap");
    expect(local.applyDelta(delta({ ...revoke, baseRevision: 3, revision: 5 }))).toBe("stale");
    expect(local.applyDelta(delta({ ...revoke, epoch: "another", baseRevision: 5, revision: 6 }))).toBe(
      "epoch_mismatch",
    );
    expect(local.revision).toBe(5);
    expect(local.apiKeyByHash("kh1")).toBeDefined();
    // An empty delta on what it holds says it is current.
    expect(local.applyDelta(delta({ baseRevision: 5, revision: 5 }))).toBe("applied");
    expect(changes).toEqual([]);
  });

  it("keeps what it holds when a snapshot of the same history is older (a replica that has not published a revoke yet)", () => {
    const local = new ConfigStore();
    local.applySnapshot(snapshot({ revision: 5 }));
    expect(local.applyDelta(delta({ removedApiKeyIds: ["k1"], baseRevision: 5, revision: 6 }))).toBe("applied");
    expect(local.apiKeyByHash("kh1")).toBeUndefined();
    // Revision 5 still has the key: applying it would bring the revoked key back.
    expect(local.applySnapshot(snapshot({ revision: 5 }))).toBe("stale");
    expect(local.apiKeyByHash("kh1")).toBeUndefined();
    expect(local.revision).toBe(6);
    // The same revision, a newer one, or another history (a restore) is applied.
    expect(local.applySnapshot(snapshot({ revision: 6 }))).toBe("applied");
    expect(local.applySnapshot(snapshot({ epoch: "restored", revision: 2 }))).toBe("applied");
    expect(local.revision).toBe(2);
  });

  it("drops a removed connection's agents and reports them", () => {
    const local = new ConfigStore();
    local.applySnapshot(snapshot());
    const changes: unknown[] = [];
    local.on("change", (change) => changes.push(change));
    expect(local.applyDelta(delta({ removedConnectionIds: ["c1"], removedAgentIds: ["a1"] }))).toBe("applied");
    expect(local.connectionByName("llama")).toBeUndefined();
    expect(local.route("shared")).toMatchObject({ ok: true, target: { connection: { name: "mistral" } } });
    expect(local.agentById("a1")).toBeUndefined();
    expect(changes).toEqual([{ kind: "delta", revision: 2, removedAgents: ["a1"], policyProblems: [] }]);
  });

  it("keeps reporting a policy it cannot read after deltas that do not touch it", () => {
    const local = new ConfigStore();
    const broken = { id: "p9", name: "broken", revision: 1, definitionJson: "{" };
    local.applySnapshot(snapshot({ policies: [broken] }));
    const changes: { policyProblems: unknown[] }[] = [];
    local.on("change", (change) => changes.push(change));
    local.applyDelta(delta({ removedApiKeyIds: ["k2"] }));
    expect(changes[0]?.policyProblems).toEqual([{ policyId: "p9", message: "definition is not valid JSON" }]);
  });
});

// The whole class of histories: any snapshot followed by any sequence of
// deltas leaves the store answering exactly as a store that received only
// the final snapshot. The model mirrors the control plane: a delta carries
// each entity it names in its state at publication, or its removal, and
// deleting a connection deletes its agents.
describe("ConfigStore deltas, property", () => {
  const CONNECTIONS = ["c0", "c1", "c2"];
  const AGENTS = ["a0", "a1", "a2", "a3"];
  const KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"];
  const POLICIES = ["p0", "p1", "p2"];
  const MODELS = ["m0", "m1", "shared"];
  const GROUPS = ["g0", "g1"];

  interface State {
    connections: Map<string, ConnectionMessage>;
    agents: Map<string, AgentCredentialMessage>;
    keys: Map<string, ApiKeyCredentialMessage>;
    policies: Map<string, Policy>;
  }

  type Operation =
    | { kind: "connection"; id: string; remove: boolean; name: number; models: string[] }
    | { kind: "agent"; id: string; remove: boolean; connection: string; token: number }
    | {
        kind: "key";
        id: string;
        remove: boolean;
        hash: number;
        groups: string[];
        expiresAt: number;
        /** A rotation's previous secret and the end of its overlap. */
        previous: { hash: number; until: number } | null;
      }
    | { kind: "policy"; id: string; remove: boolean; groups: string[]; connections: number[]; broken: boolean };

  const operation: fc.Arbitrary<Operation> = fc.oneof(
    fc.record({
      kind: fc.constant("connection" as const),
      id: fc.constantFrom(...CONNECTIONS),
      remove: fc.boolean(),
      name: fc.nat(4),
      models: fc.subarray(MODELS),
    }),
    fc.record({
      kind: fc.constant("agent" as const),
      id: fc.constantFrom(...AGENTS),
      remove: fc.boolean(),
      connection: fc.constantFrom(...CONNECTIONS),
      token: fc.nat(3),
    }),
    fc.record({
      kind: fc.constant("key" as const),
      id: fc.constantFrom(...KEYS),
      remove: fc.boolean(),
      hash: fc.nat(2),
      groups: fc.subarray(GROUPS),
      expiresAt: fc.constantFrom(0, 500, 5_000),
      previous: fc.option(fc.record({ hash: fc.nat(2), until: fc.constantFrom(500, 5_000) })),
    }),
    fc.record({
      kind: fc.constant("policy" as const),
      id: fc.constantFrom(...POLICIES),
      remove: fc.boolean(),
      groups: fc.subarray(GROUPS, { minLength: 1 }),
      connections: fc.subarray([0, 1, 2, 3, 4], { minLength: 1 }),
      broken: fc.boolean(),
    }),
  );

  /** Applies one operation to the model; returns the entities it changed (with cascades). */
  function perform(state: State, op: Operation): string[] {
    const touched = [`${op.kind}:${op.id}`];
    if (op.kind === "connection") {
      if (op.remove) {
        state.connections.delete(op.id);
        for (const agent of [...state.agents.values()]) {
          if (agent.connectionId !== op.id) continue;
          state.agents.delete(agent.id);
          touched.push(`agent:${agent.id}`);
        }
      } else {
        // Names are unique: a taken name stays with its connection.
        const name = `conn-${op.name}`;
        const taken = [...state.connections.values()].some((other) => other.name === name && other.id !== op.id);
        const previous = state.connections.get(op.id);
        state.connections.set(op.id, {
          id: op.id,
          name: taken ? (previous?.name ?? `conn-${op.id}`) : name,
          protocol: "PROTOCOL_OPENAI",
          models: op.models,
        });
      }
    } else if (op.kind === "agent") {
      if (op.remove || !state.connections.has(op.connection)) state.agents.delete(op.id);
      else {
        state.agents.set(op.id, {
          id: op.id,
          connectionId: op.connection,
          name: op.id,
          tokenHash: `token-${op.id}-${op.token}`,
        });
      }
    } else if (op.kind === "key") {
      if (op.remove) state.keys.delete(op.id);
      else {
        state.keys.set(op.id, {
          id: op.id,
          name: op.id,
          keyHash: `hash-${op.id}-${op.hash}`,
          groups: op.groups,
          expiresAt: op.expiresAt,
          previousKeyHash: op.previous ? `previous-${op.id}-${op.previous.hash}` : "",
          previousKeyExpiresAt: op.previous?.until ?? 0,
        });
      }
    } else if (op.remove) state.policies.delete(op.id);
    else {
      const granted = policy(
        op.id,
        op.groups,
        op.connections.map((index) => `conn-${index}`),
      );
      state.policies.set(op.id, op.broken ? { ...granted, definitionJson: "[" } : granted);
    }
    return touched;
  }

  function snapshotOf(state: State, revision: number): ConfigSnapshot {
    return {
      epoch: EPOCH,
      revision,
      connections: [...state.connections.values()],
      agents: [...state.agents.values()],
      apiKeys: [...state.keys.values()],
      policies: [...state.policies.values()],
      approvals: [],
    };
  }

  function deltaOf(state: State, touched: Set<string>, baseRevision: number, revision: number): ConfigDelta {
    const result = delta({ baseRevision, revision });
    for (const entry of touched) {
      const [kind, id = ""] = entry.split(":");
      if (kind === "connection") {
        const connection = state.connections.get(id);
        if (connection) result.connections.push(connection);
        else result.removedConnectionIds.push(id);
      } else if (kind === "agent") {
        const agent = state.agents.get(id);
        if (agent) result.agents.push(agent);
        else result.removedAgentIds.push(id);
      } else if (kind === "key") {
        const key = state.keys.get(id);
        if (key) result.apiKeys.push(key);
        else result.removedApiKeyIds.push(id);
      } else {
        const found = state.policies.get(id);
        if (found) result.policies.push(found);
        else result.removedPolicyIds.push(id);
      }
    }
    return result;
  }

  /** Everything a request can observe. */
  function observe(store: ConfigStore) {
    const subjects = GROUPS.map((group) => ({ userId: "u", groups: [group] }));
    const connectionNames = [0, 1, 2, 3, 4].map((index) => `conn-${index}`);
    return {
      revision: store.revision,
      connections: [...store.connections()],
      byId: CONNECTIONS.map((id) => store.connectionById(id)),
      routes: MODELS.map((model) => store.route(model)),
      agents: AGENTS.map((id) => store.agentById(id)),
      tokens: AGENTS.flatMap((id) => [0, 1, 2, 3].map((token) => store.agentByTokenHash(`token-${id}-${token}`))),
      keys: KEYS.flatMap((id) =>
        ["hash", "previous"].flatMap((kind) =>
          [0, 1, 2].map((hash) => store.apiKeyByHash(`${kind}-${id}-${hash}`, 1_000)),
        ),
      ),
      policies: store.policies.size,
      grants: subjects.map((subject) => connectionNames.map((name) => store.policies.mayUse(subject, name))),
    };
  }

  it("ends where the final snapshot would, after any sequence of deltas", () => {
    fc.assert(
      fc.property(
        fc.array(operation, { maxLength: 12 }),
        fc.array(fc.array(operation, { minLength: 1, maxLength: 4 }), { maxLength: 10 }),
        (initial, rounds) => {
          const state: State = { connections: new Map(), agents: new Map(), keys: new Map(), policies: new Map() };
          for (const op of initial) perform(state, op);
          const incremental = new ConfigStore();
          incremental.applySnapshot(snapshotOf(state, 1));
          const removedAgents = new Set<string>();
          incremental.on("change", (change: { removedAgents: string[] }) => {
            for (const id of change.removedAgents) removedAgents.add(id);
          });
          const agentsBefore = new Set(state.agents.keys());
          let revision = 1;
          for (const round of rounds) {
            const touched = new Set(round.flatMap((op) => perform(state, op)));
            expect(incremental.applyDelta(deltaOf(state, touched, revision, revision + 1))).toBe("applied");
            revision += 1;
          }
          const whole = new ConfigStore();
          whole.applySnapshot(snapshotOf(state, revision));
          expect(observe(incremental)).toEqual(observe(whole));
          // Every agent that was there and is gone was reported, so its tunnel closes.
          for (const id of agentsBefore) {
            if (!state.agents.has(id)) expect(removedAgents.has(id)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
