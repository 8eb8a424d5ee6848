import { PolicySet } from "@modelgate/policy";
import { evaluate } from "./decide.js";
import type { Identity } from "./identity.js";

const alice: Identity = {
  subjectId: "alice",
  displayName: "alice@example.com",
  email: "alice@example.com",
  groups: ["data-science"],
  authMethod: "oidc",
  tokenId: "jti-1",
  issuer: "https://idp.example",
};

describe("evaluate", () => {
  it("sends the agent only what it needs: no subject, groups, reasons or policy ids leave the gateway", () => {
    const policies = new PolicySet([
      {
        id: "p1",
        name: "masked",
        revision: 1,
        enabled: true,
        definition: {
          subjects: { groups: ["data-science"], users: [], apiKeys: [] },
          resources: [{ connection: "llama", models: ["*"] }],
          operations: ["inference"],
          limits: { maxTokens: 100 },
          promptRules: [],
          masking: {
            entities: ["EMAIL"],
            custom: [],
            denyList: [],
            style: "label",
            fields: [],
            onError: "block",
            maskPromptsInAudit: false,
          },
        },
      },
    ]);
    const verdict = evaluate(
      policies,
      alice,
      {
        connection: "llama",
        model: "m",
        operation: "inference",
        format: "openai.chat",
        body: { model: "llama/m", messages: [{ role: "user", content: "hi" }] },
        protocol: "openai",
      },
      "session-1",
      "the model llama/m",
    );
    expect(Object.keys(verdict.decision).sort()).toEqual(["maskingJson", "operation", "sessionId"]);
    expect(JSON.stringify(verdict.decision)).not.toMatch(/alice|data-science|p1|masked/);
    expect(JSON.parse(verdict.decision.maskingJson ?? "")).toMatchObject({ entities: ["EMAIL"] });
    // The gateway keeps them for its audit record.
    expect(verdict.evaluation.policyIds).toEqual(["p1"]);
    expect(verdict.evaluation.capped).toEqual([{ parameter: "max_tokens", path: ["max_tokens"], value: 100 }]);
  });
});
