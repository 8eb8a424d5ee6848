// From what one request went through (its trail) to its audit record and
// its decision log line. Every request the gateway answers on a model route
// gets both, refused ones included.

import type { IncomingMessage } from "node:http";
import { AUDIT_RECORD_VERSION, type AuditDecision, type AuditRecord } from "@modelgate/audit";
import { Masker, type MaskingProfile, sessionMaskerOptions } from "@modelgate/masking";
import type { ApprovalTrail } from "./approve.js";
import type { CapturedResponse } from "./audit-capture.js";
import { recordBody } from "./audit-capture.js";
import type { Verdict } from "./decide.js";
import { PolicyDenial } from "./decide.js";
import type { GatewayError } from "./errors.js";
import type { Identity } from "./identity.js";
import { extractUsage, type Usage } from "./usage.js";

/** What the stages learned about one request, filled in as it goes. */
export interface RequestTrail {
  sessionId: string;
  /** performance.now() and Date.now() when the request arrived. */
  receivedAt: number;
  receivedAtWall: number;
  identity?: Identity;
  connection?: string;
  model?: string;
  operation?: string;
  /** The body as received (before any rewrite). */
  requestBody?: Buffer;
  verdict?: Verdict;
  /** Set when the policy held the request for a human: the approval, and whether a grant admitted it. */
  approval?: ApprovalTrail;
  /** For a refused request: the masking its subject's grants on the connection ask for the audit record. */
  refusedAuditMasking?: MaskingProfile | undefined;
  /** The error answered, when the request was refused or failed. */
  error?: GatewayError;
  /** Set when the request was forwarded. */
  outcome?: {
    status: number;
    agentId?: string | undefined;
    maskedCounts?: Record<string, number>;
    /** Usage read from a chunk the caller did not receive (forward.ts, stripUsageChunk). */
    usage?: Usage;
    error?: string;
  };
}

/** Codes that mean the gateway or something behind it failed, not that the caller was refused. */
const FAILURE_CODES = new Set([
  "internal",
  "upstream_error",
  "upstream_timeout",
  "masking_failed",
  "no_agent_available",
  "identity_provider_unavailable",
  "rate_limiter_unavailable",
  "quota_unavailable",
  "audit_unavailable",
]);

export function decisionOf(trail: RequestTrail): AuditDecision {
  const { error, outcome, verdict, approval } = trail;
  if (error instanceof PolicyDenial) {
    if (error.code === "prompt_blocked") return "blocked";
    if (error.code === "rate_limited" || error.code === "quota_exceeded") return "rate_limited";
    return "denied";
  }
  // Held for a human and not admitted: still waiting for approval (the
  // caller may have gone), or denied by an approver.
  if (approval && !approval.admitted) {
    return approval.records.some((record) => record.status === "denied") ? "denied" : "approval_required";
  }
  if (outcome?.error && outcome.error !== "client_gone") return "error";
  if (error) return FAILURE_CODES.has(error.code) ? "error" : "denied";
  if (approval?.admitted) return "approved";
  if (verdict || outcome) {
    const masked = Object.values(outcome?.maskedCounts ?? {}).some((count) => count > 0);
    return masked ? "masked" : "allowed";
  }
  return "error";
}

export interface RecordOptions {
  gatewayId: string;
  /** Cap per body (request, response); longer bodies are cut and flagged. */
  maxBodyBytes: number;
}

export function buildAuditRecord(
  req: IncomingMessage,
  trail: RequestTrail,
  captured: CapturedResponse,
  status: number,
  options: RecordOptions,
): AuditRecord {
  const finishedAt = performance.now();
  const wall = (at: number) => new Date(trail.receivedAtWall + (at - trail.receivedAt)).toISOString();
  const { identity, verdict, error, outcome } = trail;
  const denial = error instanceof PolicyDenial ? error : undefined;
  const decision = decisionOf(trail);
  const reasons = denial?.reasons.length ? denial.reasons.join("; ") : error?.message;
  const errorCode = outcome?.error ?? error?.code;
  const response = captured.response;
  const usage =
    outcome?.usage ??
    (response && response.encoding === undefined ? extractUsage(captured.contentType, response.text) : undefined);
  // Fields left undefined are absent once serialised (JSON, the queue, the
  // log line), so they are not stripped here: that cost showed in profiles.
  return {
    version: AUDIT_RECORD_VERSION,
    sessionId: trail.sessionId,
    gatewayId: options.gatewayId,
    receivedAt: new Date(trail.receivedAtWall).toISOString(),
    firstByteAt: captured.firstByteAt === undefined ? undefined : wall(captured.firstByteAt),
    finishedAt: wall(finishedAt),
    subject: identity
      ? {
          id: cut(identity.subjectId, 256),
          email: identity.email === undefined ? undefined : cut(identity.email, 320),
          name: cut(identity.displayName, 256),
          groups: identity.groups.slice(0, 256).map((group) => cut(group, 256)),
          authMethod: identity.authMethod,
          tokenId: identity.tokenId === undefined ? undefined : cut(identity.tokenId, 256),
          issuer: identity.issuer === undefined ? undefined : cut(identity.issuer, 1024),
        }
      : undefined,
    clientIp: req.socket.remoteAddress?.slice(0, 64),
    userAgent: typeof req.headers["user-agent"] === "string" ? cut(req.headers["user-agent"], 512) : undefined,
    connection: trail.connection,
    model: trail.model === undefined ? undefined : cut(trail.model, 256),
    agentId: outcome?.agentId,
    endpoint: cut((req.url ?? "/").split("?", 1)[0] ?? "/", 512),
    method: cut(req.method ?? "GET", 16),
    operation: trail.operation,
    decision,
    policyIds: [...(denial?.policyIds ?? verdict?.evaluation.policyIds ?? [])].slice(0, 1000),
    reason: reasons === undefined ? undefined : cut(reasons, 1024),
    capped: (verdict?.evaluation.capped ?? []).slice(0, 16).map(({ parameter, value }) => ({ parameter, value })),
    responseStatus: status > 0 && status <= 999 ? status : undefined,
    responseContentType: captured.contentType,
    latencyMs: millis(finishedAt - trail.receivedAt),
    ttfbMs: captured.firstByteAt === undefined ? undefined : millis(captured.firstByteAt - trail.receivedAt),
    request: trail.requestBody ? requestForAudit(trail, trail.requestBody, options.maxBodyBytes) : undefined,
    response,
    events: captured.events,
    usage,
    maskedCounts:
      outcome?.maskedCounts && Object.keys(outcome.maskedCounts).length > 0 ? outcome.maskedCounts : undefined,
    error:
      errorCode === undefined
        ? undefined
        : { code: cut(errorCode, 64), message: cut(error?.message ?? errorCode.replaceAll("_", " "), 1024) },
    promptRule: denial?.promptRule
      ? {
          policyId: cut(denial.promptRule.policyId, 64),
          rule: denial.promptRule.rule,
          field: cut(denial.promptRule.field, 300),
        }
      : approvalRule(trail),
    approvals: trail.approval?.records,
  } as AuditRecord;
}

/** For a request held for approval by a prompt rule: the rule and the field it matched in. */
function approvalRule(trail: RequestTrail): AuditRecord["promptRule"] {
  const requirement = trail.verdict?.evaluation.approvals?.find((approval) => approval.rule !== undefined);
  if (!trail.approval || requirement?.rule === undefined) return undefined;
  return { policyId: cut(requirement.policyId, 64), rule: requirement.rule, field: cut(requirement.field, 300) };
}

/**
 * The request body as the audit keeps it: masked first when a granting
 * policy asks for it (`maskPromptsInAudit`). A body that cannot be masked
 * is withheld, never stored unmasked.
 */
export function requestForAudit(trail: RequestTrail, body: Buffer, maxBodyBytes: number): AuditRecord["request"] {
  const recorded = recordBody(body, maxBodyBytes);
  const profile = (trail.verdict?.evaluation.masking as MaskingProfile | undefined) ?? trail.refusedAuditMasking;
  if (!profile?.maskPromptsInAudit) return recorded;
  try {
    const masker = new Masker(profile, sessionMaskerOptions(profile));
    // A body that is not UTF-8 is masked as the policy engine read it (bad
    // bytes as U+FFFD), never kept as base64 that would slip past masking.
    const text =
      recorded.encoding === "base64" ? recordBody(body, maxBodyBytes, { lenient: true }).text : recorded.text;
    return { text: masker.maskText(text).text, truncated: recorded.truncated, bytes: recorded.bytes };
  } catch {
    return {
      text: "[withheld: the prompt could not be masked for the audit record]",
      truncated: true,
      bytes: body.length,
    };
  }
}

/** The decision log line: one JSON object per decision on stdout, schema in docs/audit.md. */
export function decisionLogFields(record: AuditRecord, includePrompt: boolean): Record<string, unknown> {
  return {
    event: "modelgate.decision",
    schemaVersion: 1,
    sessionId: record.sessionId,
    gatewayId: record.gatewayId,
    receivedAt: record.receivedAt,
    subject: record.subject,
    clientIp: record.clientIp,
    method: record.method,
    endpoint: record.endpoint,
    connection: record.connection,
    model: record.model,
    operation: record.operation,
    decision: record.decision,
    policyIds: record.policyIds,
    reason: record.reason,
    capped: record.capped.length > 0 ? record.capped : undefined,
    status: record.responseStatus,
    error: record.error?.code,
    agentId: record.agentId,
    latencyMs: record.latencyMs,
    ttfbMs: record.ttfbMs,
    usage: record.usage,
    maskedCounts: record.maskedCounts,
    promptRule: record.promptRule,
    requestBytes: record.request?.bytes,
    responseBytes: record.response?.bytes,
    prompt: includePrompt ? record.request?.text : undefined,
  };
}

/** At most `max` UTF-16 units, never ending in half a surrogate pair. */
function cut(value: string, max: number): string {
  if (value.length <= max) return value;
  const end = /[\uD800-\uDBFF]/.test(value[max - 1] ?? "") ? max - 1 : max;
  return value.slice(0, end);
}

function millis(value: number): number {
  return Math.min(2 ** 31 - 1, Math.max(0, Math.round(value)));
}
