import type { ConfigSnapshot } from "@modelgate/protocol";
import { ConfigStore } from "./config-store.js";

function snapshot(overrides: Partial<ConfigSnapshot> = {}): ConfigSnapshot {
  return {
    revision: 1,
    connections: [
      { id: "c1", name: "llama", protocol: "PROTOCOL_OPENAI", models: ["llama-3.1-8b", "shared"] },
      { id: "c2", name: "mistral", protocol: "PROTOCOL_OPENAI", models: ["mistral-7b", "shared", "org/model-x"] },
      { id: "c3", name: "any", protocol: "PROTOCOL_OLLAMA", models: [] },
    ],
    agents: [{ id: "a1", connectionId: "c1", name: "gpu-1", tokenHash: "h1" }],
    apiKeys: [
      { id: "k1", name: "ci", keyHash: "kh1", groups: ["ops"], expiresAt: 0 },
      { id: "k2", name: "temp", keyHash: "kh2", groups: [], expiresAt: 2_000 },
    ],
    policies: [],
    ...overrides,
  };
}

describe("ConfigStore", () => {
  const store = new ConfigStore();
  beforeAll(() => store.apply(snapshot(), 1_000));

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
    local.apply(snapshot());
    local.apply(snapshot({ revision: 2, agents: [] }));
    expect(changes).toEqual([
      { removedAgents: [], policyProblems: [] },
      { removedAgents: ["a1"], policyProblems: [] },
    ]);
    expect(local.agentByTokenHash("h1")).toBeUndefined();
  });
});
