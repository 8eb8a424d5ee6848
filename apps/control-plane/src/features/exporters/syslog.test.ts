import { type ApprovalEventBody, approvalEvent } from "./events.js";
import { formatSyslog, severityOf } from "./syslog.js";

const approval = (event: ApprovalEventBody["event"]): ApprovalEventBody => ({
  event,
  id: "4b1e0c36-3c5d-4f6b-9a51-6f0a8e3b2c11",
  subject: { id: "rita", email: "rita@example.com" },
  connection: "llama",
  model: "demo-chat",
  operation: "inference",
  policyId: "0193f6e0-0000-7000-8000-000000000001",
  policyName: "research",
  rule: 0,
  reason: 'the prompt needs approval under rule "bulk customer export"',
  url: "https://cp.example/api/v1/approvals/4b1e0c36-3c5d-4f6b-9a51-6f0a8e3b2c11",
  requestedAt: "2026-12-06T10:00:00.000Z",
  expiresAt: "2026-12-06T11:00:00.000Z",
  decidedAt: event === "requested" ? null : "2026-12-06T10:05:00.000Z",
  deciders: [],
});

describe("approval events over syslog", () => {
  it("are a notice when someone has to act, information once decided, with the event type as MSGID", () => {
    expect(severityOf(approvalEvent(approval("requested")))).toBe(5);
    for (const outcome of ["approved", "denied", "expired"] as const) {
      expect(severityOf(approvalEvent(approval(outcome)))).toBe(6);
    }
    // Facility 13 (log audit): PRI = 13 × 8 + 5.
    const message = formatSyslog(approvalEvent(approval("requested")), 13, 42);
    expect(message).toMatch(/^<109>1 2026-12-06T10:00:00.000Z \S+ modelgate 42 approval - \{/);
    expect(JSON.parse(message.slice(message.indexOf("{")))).toMatchObject({
      type: "approval",
      approval: { event: "requested", url: approval("requested").url },
    });
  });
});
