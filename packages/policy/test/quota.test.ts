// Quotas in the policy document and in the decision: the schema refuses
// what it cannot enforce, and the winning grant's quota says whose budgets
// the gateway charges.
import { type Evaluation, PolicySet, policyInputSchema, type Subject } from "../src/index.js";
import { alice, chat, policy } from "./helpers.js";

const request = {
  connection: "llama",
  model: "llama-3.1-8b-instruct",
  operation: "inference",
  format: "openai.chat",
  body: chat("hello"),
} as const;

function allowance(evaluation: Evaluation) {
  if (evaluation.decision !== "allowed") throw new Error(`expected an allowance, got ${JSON.stringify(evaluation)}`);
  return evaluation;
}

const documentWith = (quota: unknown) => ({
  name: "quota",
  subjects: { groups: ["data-science"] },
  resources: [{ connection: "llama" }],
  operations: ["inference"],
  quota,
});

/** The paths of the issues a document's quota gets, as "quota.tokens" strings. */
function issues(quota: unknown): string[] {
  const result = policyInputSchema.safeParse(documentWith(quota));
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("the quota of a policy document", () => {
  it("accepts tokens, requests or both per hour, day or month, per subject or group", () => {
    expect(policyInputSchema.parse(documentWith({ tokens: 2_000_000, per: "day", scope: "group" })).quota).toEqual({
      tokens: 2_000_000,
      per: "day",
      scope: "group",
    });
    expect(issues({ requests: 100, per: "hour", scope: "subject" })).toEqual([]);
    expect(issues({ tokens: 1, requests: 1, per: "month", scope: "subject" })).toEqual([]);
  });

  it("refuses a quota without a budget, with an unknown key, period or scope, or a budget that is not a positive integer", () => {
    expect(issues({ per: "day", scope: "subject" })).toEqual(
      [": give tokens, requests or both"].map((m) => `quota${m}`),
    );
    expect(issues({ tokens: 10, per: "day", scope: "subject", limit: 5 }).join()).toContain("limit");
    expect(issues({ tokens: 10, per: "week", scope: "subject" })[0]).toMatch(/^quota\.per: /);
    expect(issues({ tokens: 10, per: "day", scope: "team" })[0]).toMatch(/^quota\.scope: /);
    expect(issues({ tokens: 10, per: "day" })[0]).toMatch(/^quota\.scope: /);
    expect(issues({ tokens: 0, per: "day", scope: "subject" })[0]).toMatch(/^quota\.tokens: /);
    expect(issues({ requests: 1.5, per: "day", scope: "subject" })[0]).toMatch(/^quota\.requests: /);
  });
});

describe("the quota in a decision", () => {
  it("is the winning grant's, shown in the effective limits; a subject-scoped one names no groups", () => {
    const limited = policy("daily", { quota: { tokens: 1000, per: "day", scope: "subject" } });
    const evaluation = allowance(new PolicySet([limited]).evaluate(alice, request));
    expect(evaluation.quota).toEqual({
      policyId: limited.id,
      tokens: 1000,
      per: "day",
      scope: "subject",
      groups: [],
    });
    expect(evaluation.effectiveLimits.quota).toEqual({ tokens: 1000, per: "day", scope: "subject" });
  });

  it("is absent when the winner has none", () => {
    const evaluation = allowance(new PolicySet([policy("free")]).evaluate(alice, request));
    expect(evaluation.quota).toBeUndefined();
    expect(evaluation.effectiveLimits.quota).toBeUndefined();
  });

  it("charges, for scope group, every group of the policy the caller is in, and the caller's own budget when it is named only as a user", () => {
    const shared = policy("shared", {
      subjects: { groups: ["data-science", "ml", "unused"], users: ["u-carol"] },
      quota: { requests: 10, per: "month", scope: "group" },
    });
    const set = new PolicySet([shared]);
    const inTwo: Subject = { userId: "u-dave", groups: ["ml", "data-science", "marketing"] };
    expect(allowance(set.evaluate(inTwo, request)).quota?.groups).toEqual(["data-science", "ml"]);
    const namedAsUser: Subject = { userId: "u-carol", groups: ["marketing"] };
    expect(allowance(set.evaluate(namedAsUser, request)).quota).toMatchObject({ scope: "group", groups: [] });
  });

  it("prefers, among grants otherwise equal, one without a quota: a quota never wins over no quota", () => {
    const limited = policy("limited", { quota: { tokens: 10, per: "day", scope: "subject" } }, { id: "a-first" });
    const free = policy("free", {}, { id: "z-last" });
    const evaluation = allowance(new PolicySet([limited, free]).evaluate(alice, request));
    expect(evaluation.policyIds[0]).toBe(free.id);
    expect(evaluation.quota).toBeUndefined();
  });
});
