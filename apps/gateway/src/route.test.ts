import { PolicySet, policyDefinitionSchema, type Subject } from "@modelgate/policy";
import type { ConnectionConfig } from "./config-store.js";
import { GatewayError } from "./errors.js";
import { routeRequest } from "./route.js";

const connections: ConnectionConfig[] = [
  { id: "c1", name: "llama", protocol: "PROTOCOL_OPENAI", models: ["m"] },
  { id: "c2", name: "ollama", protocol: "PROTOCOL_OLLAMA", models: [] },
  { id: "c3", name: "secret", protocol: "PROTOCOL_OPENAI", models: [] },
];

function storeWith(...definitions: object[]) {
  const policies = new PolicySet(
    definitions.map((definition, index) => ({
      id: `p${index}`,
      name: `p${index}`,
      revision: 1,
      enabled: true,
      definition: policyDefinitionSchema.parse(definition),
    })),
  );
  return { policies, connectionByName: (name: string) => connections.find((c) => c.name === name) };
}

const researcher: Subject = { userId: "u1", groups: ["research"] };
const nobody: Subject = { userId: "u2", groups: ["nothing"] };
const ops: Subject = { userId: "u3", groups: ["ops"] };
const store = storeWith(
  {
    subjects: { groups: ["research"] },
    resources: [{ connection: "llama" }, { connection: "ollama" }],
    operations: ["inference", "models.list"],
  },
  { subjects: { groups: ["ops"] }, resources: [{ connection: "llama" }], operations: ["read"] },
);

function refusal(run: () => unknown): GatewayError {
  try {
    run();
  } catch (error) {
    if (error instanceof GatewayError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("route stage (no body read)", () => {
  it("routes OpenAI, native and models-list requests a grant could admit", () => {
    expect(routeRequest(store, "POST", "/v1/chat/completions", researcher)).toMatchObject({
      type: "openai",
      kind: { operation: "inference" },
    });
    expect(routeRequest(store, "POST", "/c/ollama/api/chat?x=1", researcher)).toMatchObject({
      type: "native",
      path: "/api/chat?x=1",
      kind: { operation: "inference", format: "ollama.chat" },
    });
    expect(routeRequest(store, "GET", "/v1/models", researcher)).toEqual({ type: "models" });
  });

  it("refuses a subject with no grant of the operation on any model before the body (model_not_allowed)", () => {
    const error = refusal(() => routeRequest(store, "POST", "/v1/chat/completions", nobody));
    expect(error.code).toBe("model_not_allowed");
  });

  it("tells a subject with other operations that its own policies do not allow this one", () => {
    expect(refusal(() => routeRequest(store, "POST", "/v1/chat/completions", ops)).code).toBe("operation_not_allowed");
    expect(refusal(() => routeRequest(store, "POST", "/v1/embeddings", researcher)).code).toBe("operation_not_allowed");
  });

  it("answers a connection that does not exist exactly like one the caller may not use", () => {
    const missing = refusal(() => routeRequest(store, "POST", "/c/nope/v1/chat/completions", researcher));
    const hidden = refusal(() => routeRequest(store, "POST", "/c/secret/v1/chat/completions", researcher));
    expect(hidden.code).toBe(missing.code);
    expect(hidden.message.replace("secret", "X")).toBe(missing.message.replace("nope", "X"));
  });

  it("refuses unsafe runtime paths, wrong methods and unknown routes", () => {
    expect(refusal(() => routeRequest(store, "GET", "/c/llama/../admin", researcher)).code).toBe("invalid_request");
    expect(refusal(() => routeRequest(store, "GET", "/v1/chat/completions", researcher)).code).toBe(
      "method_not_allowed",
    );
    expect(refusal(() => routeRequest(store, "POST", "/v1/models", researcher)).code).toBe("method_not_allowed");
    expect(refusal(() => routeRequest(store, "GET", "/admin", researcher)).code).toBe("not_found");
  });
});
