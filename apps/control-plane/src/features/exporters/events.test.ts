import { AUDIT_RECORD_VERSION, type AuditRecord } from "@modelgate/audit";
import { sessionEvent } from "./events.js";

const base: AuditRecord = {
  version: AUDIT_RECORD_VERSION,
  sessionId: "0193f6e2-0000-7000-8000-000000000001",
  gatewayId: "gw-1",
  receivedAt: "2026-12-06T10:00:00.000Z",
  finishedAt: "2026-12-06T10:00:01.000Z",
  subject: { id: "rita", email: "rita@example.com", groups: ["research"], authMethod: "oidc" },
  endpoint: "/v1/chat/completions",
  method: "POST",
  decision: "approved",
  policyIds: [],
  capped: [],
  latencyMs: 1000,
  events: [],
};

describe("sessionEvent", () => {
  it("links a held request's approval and names who decided, never their comments", () => {
    const event = sessionEvent({
      ...base,
      approvals: [
        {
          id: "4b1e0c36-3c5d-4f6b-9a51-6f0a8e3b2c11",
          status: "approved",
          grant: "request",
          deciders: [{ id: "sam", decision: "approve", comment: "SECRET-COMMENT", at: "2026-12-06T09:59:00.000Z" }],
        },
      ],
    });
    expect(event.type === "session" && event.session.approvals).toEqual([
      { id: "4b1e0c36-3c5d-4f6b-9a51-6f0a8e3b2c11", status: "approved", grant: "request", deciders: ["sam"] },
    ]);
    expect(JSON.stringify(event)).not.toContain("SECRET-COMMENT");
    const plain = sessionEvent({ ...base, decision: "allowed" });
    expect(plain.type === "session" && plain.session.approvals).toEqual([]);
  });
});
