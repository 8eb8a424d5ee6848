import type { ApprovalMessage } from "@modelgate/protocol";
import { ApprovalGrants, type GrantScope } from "./approval-grants.js";
import { preferredWait } from "./approve.js";

const scope: GrantScope = {
  subjectKey: "k-rita",
  connection: "llama",
  model: "m",
  operation: "inference",
  policyId: "p1",
  rule: 0,
};
const BODY = "a".repeat(64);
const OTHER_BODY = "b".repeat(64);

function approval(overrides: Partial<ApprovalMessage> = {}): ApprovalMessage {
  return {
    id: "a1",
    status: "approved",
    inForce: true,
    subjectKey: scope.subjectKey,
    connection: scope.connection,
    model: scope.model,
    operation: scope.operation,
    policyId: scope.policyId,
    rule: scope.rule,
    grant: "request",
    bodySha256: BODY,
    grantExpiresAt: Date.now() + 60_000,
    decidedAt: Date.now(),
    deciders: [],
    ...overrides,
  };
}

describe("ApprovalGrants", () => {
  it("admits exactly the scope a grant was made for: subject, connection, model, policy and rule", () => {
    const grants = new ApprovalGrants();
    grants.replace([approval()]);
    expect(grants.find(scope, BODY)?.id).toBe("a1");
    for (const [field, value] of [
      ["subjectKey", "k-mallory"],
      ["connection", "other"],
      ["model", "m2"],
      ["operation", "embeddings"],
      ["policyId", "p2"],
      ["rule", 1],
    ] as const) {
      expect(grants.find({ ...scope, [field]: value }, BODY)).toBeUndefined();
    }
  });

  it("matches a request grant on its body only, a window grant on any body, and neither once expired", () => {
    const grants = new ApprovalGrants();
    grants.replace([approval()]);
    expect(grants.find(scope, OTHER_BODY)).toBeUndefined();
    grants.update([approval({ id: "w1", grant: "window", bodySha256: "" })]);
    expect(grants.find(scope, OTHER_BODY)?.id).toBe("w1");
    // The request grant made for exactly this body is used first.
    expect(grants.find(scope, BODY)?.id).toBe("a1");
    const later = Date.now() + 120_000;
    expect(grants.find(scope, BODY, later)).toBeUndefined();
    // Met past their end, they are dropped.
    expect(grants.size).toBe(0);
  });

  it("drops a grant a delta says is no longer in force (used, voided), and keeps none from a snapshot that lacks it", () => {
    const grants = new ApprovalGrants();
    grants.replace([approval(), approval({ id: "a2", bodySha256: OTHER_BODY })]);
    grants.update([approval({ inForce: false })]);
    expect(grants.find(scope, BODY)).toBeUndefined();
    expect(grants.size).toBe(1);
    grants.replace([]);
    expect(grants.size).toBe(0);
  });

  it("releases waiters with the decision, at their timeout, when the client goes, and at shutdown", async () => {
    const grants = new ApprovalGrants();
    const decided = grants.wait("a1", 10_000, new AbortController().signal);
    const timedOut = grants.wait("a2", 20, new AbortController().signal);
    const gone = new AbortController();
    const leaving = grants.wait("a3", 10_000, gone.signal);
    const closing = grants.wait("a4", 10_000, new AbortController().signal);
    expect(grants.waiting).toBe(4);
    grants.update([approval({ status: "denied", inForce: false })]);
    expect(await decided).toMatchObject({ kind: "decided", approval: { id: "a1", status: "denied" } });
    expect(await timedOut).toEqual({ kind: "timeout" });
    gone.abort();
    expect(await leaving).toEqual({ kind: "client_gone" });
    grants.close();
    expect(await closing).toEqual({ kind: "shutdown" });
    expect(grants.waiting).toBe(0);
    expect(await grants.wait("a5", 10_000, new AbortController().signal)).toEqual({ kind: "shutdown" });
  });
});

describe("ApprovalGrants decisions", () => {
  it("tells listeners of every approval a delta settles, and of none still pending", () => {
    const grants = new ApprovalGrants();
    const decided: string[] = [];
    grants.onDecided((id) => decided.push(id));
    grants.update([
      approval({ id: "a1" }),
      approval({ id: "a2", status: "denied", inForce: false }),
      approval({ id: "a3", status: "pending", inForce: false }),
    ]);
    expect(decided).toEqual(["a1", "a2"]);
  });
});

describe("preferredWait (RFC 7240 Prefer: wait)", () => {
  it.each([
    [undefined, 0],
    ["wait=30", 30],
    ["WAIT = 30", 30],
    ['wait="12"', 12],
    ["respond-async, wait=10", 10],
    ["wait=10; foo=bar", 10],
    [["return=minimal", "wait=5"], 5],
    ["wait=100000", 300],
    ["wait=-1", 0],
    ["wait=1.5", 0],
    ["wait=", 0],
    ["waiting=10", 0],
    ["return=minimal", 0],
  ] as const)("reads %j as %i seconds (capped at 300)", (header, seconds) => {
    expect(preferredWait(header as string | string[] | undefined, 300)).toBe(seconds);
  });
});
