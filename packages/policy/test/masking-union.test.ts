import { PolicySet } from "../src/index.js";
import { alice, chat, policy } from "./helpers.js";

describe("masking across grants", () => {
  it("applies the union of every grant's masking, never weakened by a broader grant", () => {
    const narrow = policy("narrow", {
      limits: { maxTokens: 100 },
      masking: { entities: ["EMAIL"], style: "partial", custom: [{ name: "EMPLOYEE_ID", pattern: "EMP-[0-9]{6}" }] },
    });
    const broad = policy("broad", {
      limits: { maxTokens: 500 },
      masking: { entities: ["CREDIT_CARD"], style: "label", onError: "pass" },
    });
    const unmasked = policy("unmasked", {});
    const set = new PolicySet([narrow, broad, unmasked]);
    const evaluation = set.evaluate(alice, {
      connection: "llama",
      model: "llama-3.1-8b-instruct",
      operation: "inference",
      format: "openai.chat",
      body: chat("hi"),
    });
    if (evaluation.decision !== "allowed") throw new Error(JSON.stringify(evaluation));
    // The unlimited grant wins the limits; the masking of the others still applies.
    expect(evaluation.policyIds[0]).toBe(unmasked.id);
    expect(evaluation.policyIds).toEqual(expect.arrayContaining([narrow.id, broad.id]));
    expect(evaluation.masking).toMatchObject({
      entities: expect.arrayContaining(["EMAIL", "CREDIT_CARD"]),
      custom: [expect.objectContaining({ name: "EMPLOYEE_ID" })],
      style: "label",
      onError: "block",
    });
  });

  it("asks for no masking when no grant masks", () => {
    const set = new PolicySet([policy("plain", {})]);
    const evaluation = set.evaluate(alice, {
      connection: "llama",
      model: "m",
      operation: "inference",
      format: "openai.chat",
      body: chat("hi"),
    });
    expect(evaluation).toMatchObject({ decision: "allowed", masking: undefined });
  });
});
