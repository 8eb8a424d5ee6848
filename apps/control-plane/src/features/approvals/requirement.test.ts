import type { Policy } from "@modelgate/db";
import { currentApprovalSettings } from "./requirement.js";

const row = (definition: Record<string, unknown>, enabled = true): Policy => ({
  id: "0193f6e0-0000-7000-8000-000000000001",
  name: "p",
  description: null,
  enabled,
  revision: 1,
  definition: {
    subjects: { groups: ["research"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    ...definition,
  },
  createdAt: new Date(),
  updatedAt: new Date(),
});

const rules = {
  promptRules: [
    { pattern: "drop", action: "block" },
    { pattern: "export", action: "require_approval" },
  ],
};

describe("currentApprovalSettings", () => {
  it("takes the policy engine's defaults for a require_approval rule without an approval block", () => {
    expect(currentApprovalSettings(row(rules), 1)).toEqual({
      approverGroups: [],
      minApprovals: 1,
      grant: "request",
      windowMinutes: undefined,
      expiresMinutes: 60,
    });
  });

  it("takes the policy's settings, for a rule and for a grant that requires approval", () => {
    const approval = {
      required: true,
      approverGroups: ["security"],
      minApprovals: 2,
      grant: "window",
      windowMinutes: 15,
      expiresMinutes: 30,
    };
    const expected = {
      approverGroups: ["security"],
      minApprovals: 2,
      grant: "window",
      windowMinutes: 15,
      expiresMinutes: 30,
    };
    expect(currentApprovalSettings(row({ ...rules, approval }), 1)).toEqual(expected);
    expect(currentApprovalSettings(row({ approval }), -1)).toEqual(expected);
  });

  it("says no when the policy no longer asks for this approval", () => {
    expect(currentApprovalSettings(null, 1)).toBeUndefined();
    expect(currentApprovalSettings(row(rules, false), 1)).toBeUndefined();
    // A block rule, a rule that is gone, a grant that does not require approval.
    expect(currentApprovalSettings(row(rules), 0)).toBeUndefined();
    expect(currentApprovalSettings(row(rules), 2)).toBeUndefined();
    expect(currentApprovalSettings(row({ ...rules, approval: { approverGroups: ["security"] } }), -1)).toBeUndefined();
    // A stored definition this version cannot read grants nothing.
    expect(currentApprovalSettings(row({ ...rules, unknownField: true }), 1)).toBeUndefined();
  });
});
