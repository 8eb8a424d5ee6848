import type { AuditDecision, AuditRecord } from "@modelgate/audit";

/**
 * The events exporters deliver: one stable, versioned JSON document per
 * event (docs/siem.md#event-payload). Fields are never removed or renamed
 * within a version; new optional fields may appear, so receivers must
 * ignore fields they do not know. Session events carry metadata only,
 * never prompt or response bodies.
 */
const SIEM_EVENT_VERSION = 1;

export const EVENT_TYPES = ["session", "alert", "approval"] as const;

interface SessionEventBody {
  id: string;
  receivedAt: string;
  firstByteAt: string | null;
  finishedAt: string;
  gatewayId: string;
  subject: {
    id: string;
    email: string | null;
    groups: string[];
    authMethod: "api_key" | "oidc";
    tokenId: string | null;
    issuer: string | null;
  } | null;
  clientIp: string | null;
  userAgent: string | null;
  connection: string | null;
  model: string | null;
  agentId: string | null;
  endpoint: string;
  method: string;
  operation: string | null;
  decision: AuditDecision;
  policyIds: string[];
  reason: string | null;
  capped: { parameter: string; value: number }[];
  responseStatus: number | null;
  latencyMs: number;
  ttfbMs: number | null;
  usage: Record<string, number> | null;
  maskedCounts: Record<string, number> | null;
  /** The prompt rule that blocked or held the request, and the field it matched in (never the text). */
  promptRule: { policyId: string; rule: number; field: string } | null;
  /** The human approvals the request opened, joined or was admitted by (docs/approvals.md); deciders' ids, never comments. */
  approvals: { id: string; status: string; grant: string | null; deciders: string[] }[];
  error: { code: string; message: string } | null;
  /** Sizes only: the bodies themselves never leave the control plane through an exporter. */
  request: { bytes: number; truncated: boolean } | null;
  response: { bytes: number; truncated: boolean } | null;
}

export interface AlertEventBody {
  id: string;
  ruleId: string | null;
  ruleName: string;
  kind: string;
  subject: string | null;
  sessionIds: string[];
  details: Record<string, unknown>;
  triggeredAt: string;
  createdAt: string;
}

const APPROVAL_EVENT_KINDS = ["requested", "approved", "denied", "expired"] as const;
export type ApprovalEventKind = (typeof APPROVAL_EVENT_KINDS)[number];

/** A new approval, or its decision or expiry (docs/approvals.md). Never the prompt. */
export interface ApprovalEventBody {
  event: ApprovalEventKind;
  id: string;
  subject: { id: string; email: string | null };
  connection: string;
  model: string;
  operation: string;
  policyId: string;
  policyName: string;
  /** The require_approval rule's position; null when the grant itself needs approval. */
  rule: number | null;
  reason: string;
  /** Where an approver decides. */
  url: string;
  requestedAt: string;
  expiresAt: string;
  /** When it was approved, denied or expired; null while pending. */
  decidedAt: string | null;
  deciders: {
    id: string;
    email: string | null;
    decision: "approve" | "deny";
    comment: string | null;
    at: string;
  }[];
}

interface EventEnvelope {
  version: typeof SIEM_EVENT_VERSION;
  /** Unique per event and the same on every delivery of it: receivers deduplicate on it. */
  id: string;
  /** When what the event reports happened (a session's end, an alert's creation, an approval's request or decision). */
  time: string;
  source: "modelgate";
}

export type SiemEvent =
  | (EventEnvelope & { type: "session"; session: SessionEventBody })
  | (EventEnvelope & { type: "alert"; alert: AlertEventBody })
  | (EventEnvelope & { type: "approval"; approval: ApprovalEventBody })
  | (EventEnvelope & { type: "test"; test: { message: string; exporter: string } });

export function sessionEvent(record: AuditRecord): SiemEvent {
  const { subject } = record;
  return {
    version: SIEM_EVENT_VERSION,
    id: `session.${record.sessionId}`,
    type: "session",
    time: record.finishedAt,
    source: "modelgate",
    session: {
      id: record.sessionId,
      receivedAt: record.receivedAt,
      firstByteAt: record.firstByteAt ?? null,
      finishedAt: record.finishedAt,
      gatewayId: record.gatewayId,
      subject: subject
        ? {
            id: subject.id,
            email: subject.email ?? null,
            groups: subject.groups,
            authMethod: subject.authMethod,
            tokenId: subject.tokenId ?? null,
            issuer: subject.issuer ?? null,
          }
        : null,
      clientIp: record.clientIp ?? null,
      userAgent: record.userAgent ?? null,
      connection: record.connection ?? null,
      model: record.model ?? null,
      agentId: record.agentId ?? null,
      endpoint: record.endpoint,
      method: record.method,
      operation: record.operation ?? null,
      decision: record.decision,
      policyIds: record.policyIds,
      reason: record.reason ?? null,
      capped: record.capped,
      responseStatus: record.responseStatus ?? null,
      latencyMs: record.latencyMs,
      ttfbMs: record.ttfbMs ?? null,
      usage: record.usage ?? null,
      maskedCounts: record.maskedCounts ?? null,
      promptRule: record.promptRule ?? null,
      approvals: (record.approvals ?? []).map((approval) => ({
        id: approval.id,
        status: approval.status,
        grant: approval.grant ?? null,
        deciders: (approval.deciders ?? []).map((decider) => decider.id),
      })),
      error: record.error ?? null,
      request: record.request ? { bytes: record.request.bytes, truncated: record.request.truncated } : null,
      response: record.response ? { bytes: record.response.bytes, truncated: record.response.truncated } : null,
    },
  };
}

export function alertEvent(alert: AlertEventBody): SiemEvent {
  return {
    version: SIEM_EVENT_VERSION,
    id: `alert.${alert.id}`,
    type: "alert",
    time: alert.createdAt,
    source: "modelgate",
    alert,
  };
}

export function approvalEvent(approval: ApprovalEventBody): SiemEvent {
  return {
    version: SIEM_EVENT_VERSION,
    // One event per step of an approval: it is requested once and ends once.
    id: `approval.${approval.id}.${approval.event}`,
    type: "approval",
    time: approval.event === "requested" ? approval.requestedAt : (approval.decidedAt ?? approval.requestedAt),
    source: "modelgate",
    approval,
  };
}

export function testEvent(id: string, exporterName: string, at: Date): SiemEvent {
  return {
    version: SIEM_EVENT_VERSION,
    id: `test.${id}`,
    type: "test",
    time: at.toISOString(),
    source: "modelgate",
    test: { message: "a test event sent from the control plane", exporter: exporterName },
  };
}

/** Whether an exporter with these subscriptions receives the event (test events go to the one exporter asked). */
export function wantsEvent(exporter: { eventTypes: string[]; decisions: string[] }, event: SiemEvent): boolean {
  if (event.type === "test") return false;
  if (!exporter.eventTypes.includes(event.type)) return false;
  if (event.type === "session" && exporter.decisions.length > 0) {
    return exporter.decisions.includes(event.session.decision);
  }
  return true;
}
