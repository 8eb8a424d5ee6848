import { PolicySet } from "../src/index.js";
import { alice, bob, policy } from "./helpers.js";

describe("broadestGrant", () => {
  it("is the most permissive policy granting the operation on any connection, with its limits", () => {
    const tight = policy("tight", { limits: { requestsPerMinute: 5 } });
    const roomy = policy("roomy", { resources: [{ connection: "other" }], limits: { requestsPerMinute: 500 } });
    const listing = policy("listing", { operations: ["models.list"], limits: { requestsPerMinute: 7 } });
    const set = new PolicySet([tight, roomy, listing]);
    expect(set.broadestGrant(alice, "inference")).toEqual({ policyId: roomy.id, requestsPerMinute: 500 });
    expect(set.broadestGrant(alice, "models.list")).toEqual({ policyId: listing.id, requestsPerMinute: 7 });
  });

  it("is undefined for an operation no grant of the subject has, and for a subject without grants", () => {
    const set = new PolicySet([policy("inference only", {})]);
    expect(set.broadestGrant(alice, "embeddings")).toBeUndefined();
    expect(set.broadestGrant(bob, "inference")).toBeUndefined();
  });

  it("finds grants by user id, email (any case) and API key as well as by group", () => {
    const set = new PolicySet([
      policy("by user", { subjects: { users: ["u-bob"] }, operations: ["read"] }),
      policy("by email", { subjects: { users: ["bob@example.com"] }, operations: ["raw"] }),
      policy("by key", { subjects: { apiKeys: ["0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"] }, operations: ["embeddings"] }),
    ]);
    expect(set.broadestGrant(bob, "read")).toBeDefined();
    expect(set.broadestGrant({ ...bob, email: "BOB@example.com" }, "raw")).toBeDefined();
    expect(
      set.broadestGrant({ userId: "k", groups: [], apiKeyId: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" }, "embeddings"),
    ).toBeDefined();
    expect(set.broadestGrant(bob, "embeddings")).toBeUndefined();
  });

  it("ignores disabled policies", () => {
    const set = new PolicySet([policy("off", {}, { enabled: false })]);
    expect(set.broadestGrant(alice, "inference")).toBeUndefined();
  });
});
