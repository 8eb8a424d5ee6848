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

describe("masking fields and token-level output", () => {
  const request = (body: Record<string, unknown>) =>
    ({
      connection: "llama",
      model: "m",
      operation: "inference",
      format: "openai.chat",
      body,
      protocol: "openai",
    }) as const;

  it("adds a second policy's explicit fields to the first one's defaults, never replacing them", () => {
    const set = new PolicySet([
      policy("defaults", { masking: { entities: ["EMAIL"] } }),
      policy("explicit", { masking: { entities: ["SECRET"], fields: ["choices[*].message.content"] } }),
    ]);
    const evaluation = set.evaluate(alice, request(chat("hi")));
    if (evaluation.decision !== "allowed") throw new Error(JSON.stringify(evaluation));
    expect(evaluation.masking?.fields).toEqual(
      expect.arrayContaining(["choices[*].delta.content", "choices[*].message.tool_calls[*].function.arguments"]),
    );
  });

  it.each([
    [{ logprobs: true }, "logprobs"],
    [{ top_logprobs: 5 }, "top_logprobs"],
    [{ return_token_ids: true }, "return_token_ids"],
  ])("refuses %j under masking: the tokens would repeat the answer unmasked", (extra, param) => {
    const set = new PolicySet([policy("masked", { masking: { entities: ["EMAIL"] } })]);
    expect(set.evaluate(alice, request(chat("hi", extra)))).toMatchObject({
      decision: "denied",
      code: "invalid_request",
      param,
    });
    expect(set.evaluate(alice, request(chat("hi", { logprobs: false }))).decision).toBe("allowed");
  });

  it("lets log-probabilities through where no grant masks", () => {
    const set = new PolicySet([policy("plain", {})]);
    expect(set.evaluate(alice, request(chat("hi", { logprobs: true }))).decision).toBe("allowed");
  });
});
