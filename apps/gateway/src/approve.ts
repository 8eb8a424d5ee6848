// The approve stage: a request the policy holds for a human (a
// `require_approval` prompt rule, or a grant with approval.required) goes
// on only with a grant for it (docs/approvals.md). Otherwise it opens an
// approval at the control plane, or joins the pending one of an identical
// request, and is refused with 403 approval_required naming the approval
// and where it is decided; a caller that sent `Prefer: wait=<seconds>` is
// held open until the approval is decided instead. Nothing here fails
// open: without the control plane a held request is refused.
import { createHash } from "node:crypto";
import type { AuditRecord } from "@modelgate/audit";
import type { Logger } from "@modelgate/core";
import type { ApprovalRequirement } from "@modelgate/policy";
import type { ApprovalMessage, ApprovalRequestInput, ApprovalTicket } from "@modelgate/protocol";
import { type ApprovalGrants, type GrantScope, grantCovers, scopeKeyOf } from "./approval-grants.js";
import { GatewayError } from "./errors.js";
import { ClientGoneError } from "./http-body.js";
import { type Identity, subjectKey } from "./identity.js";
import type { GatewayMetrics } from "./metrics.js";

/** The control plane's side of approvals (ConfigClient implements it over the configuration channel). */
export interface ApprovalLink {
  requestApproval(request: ApprovalRequestInput, timeoutMs: number): Promise<ApprovalTicket>;
  consumeApproval(
    request: { approvalId: string; sessionId: string; subjectKey: string; bodySha256: string },
    timeoutMs: number,
  ): Promise<boolean>;
}

export interface ApprovalStageOptions {
  grants: ApprovalGrants;
  link: ApprovalLink;
  gatewayId: string;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Longest `Prefer: wait` honoured, in seconds (RFC 7240; the issue caps it at 300). */
  maxWaitSeconds: number;
  /** Requests one subject may have waiting on this gateway at once; more are answered at once. */
  maxWaitingPerSubject: number;
  /** Requests waiting on this gateway at once, all subjects together. */
  maxWaiting: number;
  /** How long a call to the control plane may take before the request is refused (fail closed). */
  controlPlaneTimeoutMs: number;
}

/** A request the policy holds, with what the stage needs from the pipeline. */
export interface HeldRequest {
  identity: Identity;
  /** Every approval the request needs (PolicySet.evaluate's `approvals`): a grant for each. */
  requirements: readonly ApprovalRequirement[];
  connection: string;
  /** The model as the runtime knows it; "" when the request names none. */
  model: string;
  operation: string;
  /** The body exactly as received: a `request` grant admits this body, by its SHA-256. */
  body: Buffer;
  sessionId: string;
  /** The `Prefer` header(s). */
  prefer: string | string[] | undefined;
  clientGone: AbortSignal;
  /** The body as the audit record keeps it (masked when a policy asks), for the approver to read. */
  auditText(): { text: string; truncated: boolean };
  /** Gives back what the request holds while it waits (its in-flight place), and takes it again after. */
  pause(): void;
  resume(): void;
  setHeader(name: string, value: string): void;
  /**
   * After a wait: authenticates and evaluates the request again, as minutes
   * may have passed (a token expired, a policy changed). Throws the refusal,
   * or returns who asks and what the request needs now.
   */
  recheck(): Promise<{ identity: Identity; requirements: readonly ApprovalRequirement[] }>;
  /**
   * Takes the request's audit place. Called just before grants are spent,
   * so a one-time grant is never spent on a request then refused for want
   * of an audit place.
   */
  reserve(): void;
}

/** What the audit record says about the approvals (AuditRecord.approvals), and whether they admitted the request. */
export interface ApprovalTrail {
  records: NonNullable<AuditRecord["approvals"]>;
  admitted: boolean;
}

/** Longest prompt text sent to the control plane for the approver (characters). */
const APPROVAL_PROMPT_MAX_CHARS = 16_000;
/**
 * How long this gateway answers an identical held request from the pending
 * approval it learned of, without asking the control plane again: retries
 * of one request cost the control plane one transaction, not one each. A
 * decision evicts the entry at once.
 */
const PENDING_TICKET_TTL_MS = 30_000;
const PENDING_TICKETS_MAX = 10_000;
/** A caller at the pending cap is told so by this gateway for this long before the control plane is asked again. */
const TOO_MANY_PENDING_TTL_MS = 1_000;

export function createApprovalStage(options: ApprovalStageOptions) {
  const { grants, link, metrics, logger } = options;
  const waitingBySubject = new Map<string, number>();
  let waiting = 0;
  /** Identical request (scope and body) → the pending approval it joins, until decided or stale. */
  const pendingTickets = new Map<string, { ticket: ApprovalTicket; until: number }>();
  /** Approval id → the keys of pendingTickets naming it, so a decision evicts them without a scan. */
  const ticketKeys = new Map<string, Set<string>>();
  /** Subjects at their pending cap, until when. */
  const atPendingCap = new Map<string, number>();
  grants.onDecided((approvalId) => {
    for (const key of ticketKeys.get(approvalId) ?? []) pendingTickets.delete(key);
    ticketKeys.delete(approvalId);
  });

  function forgetPending(key: string): void {
    const entry = pendingTickets.get(key);
    if (!entry) return;
    pendingTickets.delete(key);
    const keys = ticketKeys.get(entry.ticket.approvalId);
    keys?.delete(key);
    if (keys?.size === 0) ticketKeys.delete(entry.ticket.approvalId);
  }

  function rememberPending(key: string, ticket: ApprovalTicket): void {
    if (pendingTickets.size >= PENDING_TICKETS_MAX) {
      const oldest = pendingTickets.keys().next().value;
      if (oldest !== undefined) forgetPending(oldest);
    }
    pendingTickets.set(key, { ticket, until: Math.min(Date.now() + PENDING_TICKET_TTL_MS, ticket.expiresAt) });
    let keys = ticketKeys.get(ticket.approvalId);
    if (!keys) {
      keys = new Set();
      ticketKeys.set(ticket.approvalId, keys);
    }
    keys.add(key);
  }

  /** The pending approval an identical request joined a moment ago on this gateway, if still fresh. */
  function knownPending(key: string): ApprovalTicket | undefined {
    const entry = pendingTickets.get(key);
    if (!entry) return undefined;
    if (entry.until > Date.now()) return entry.ticket;
    forgetPending(key);
    return undefined;
  }

  function takeWaitPlace(subject: string): boolean {
    const mine = waitingBySubject.get(subject) ?? 0;
    if (mine >= options.maxWaitingPerSubject || waiting >= options.maxWaiting) return false;
    waitingBySubject.set(subject, mine + 1);
    waiting += 1;
    metrics.approvalWaiting.set(waiting);
    return true;
  }

  function giveWaitPlace(subject: string): void {
    const mine = (waitingBySubject.get(subject) ?? 1) - 1;
    if (mine <= 0) waitingBySubject.delete(subject);
    else waitingBySubject.set(subject, mine);
    waiting -= 1;
    metrics.approvalWaiting.set(waiting);
  }

  /**
   * Spends a grant on this request: a window grant is checked here, a
   * request grant is taken at the control plane, where exactly one request
   * gets it whichever gateway sends it.
   */
  async function use(approval: ApprovalMessage, scope: GrantScope, request: HeldRequest, bodySha256: string) {
    if (!grantCovers(approval, scope, Date.now())) return false;
    if (approval.grant === "window") return true;
    if (approval.bodySha256 !== bodySha256) return false;
    try {
      return await link.consumeApproval(
        { approvalId: approval.id, sessionId: request.sessionId, subjectKey: scope.subjectKey, bodySha256 },
        options.controlPlaneTimeoutMs,
      );
    } catch (error) {
      metrics.approvals.inc({ outcome: "unavailable" });
      logger.warn(
        { err: error, approvalId: approval.id },
        "approval grant could not be used: control plane unreachable",
      );
      throw unavailable();
    }
  }

  function admitted(used: readonly ApprovalMessage[]): ApprovalTrail {
    metrics.approvals.inc({ outcome: "admitted" });
    return {
      admitted: true,
      records: used.map((approval) => ({
        id: approval.id,
        status: "approved",
        grant: approval.grant === "window" ? "window" : "request",
        deciders: decidersOf(approval),
      })),
    };
  }

  async function open(
    request: HeldRequest,
    identity: Identity,
    requirement: ApprovalRequirement,
    scope: GrantScope,
    bodySha256: string,
  ): Promise<ApprovalTicket> {
    const prompt = request.auditText();
    const text =
      prompt.text.length > APPROVAL_PROMPT_MAX_CHARS ? cut(prompt.text, APPROVAL_PROMPT_MAX_CHARS) : prompt.text;
    try {
      return await link.requestApproval(
        {
          gatewayId: options.gatewayId,
          sessionId: request.sessionId,
          subject: {
            key: scope.subjectKey,
            id: identity.subjectId,
            email: identity.email ?? "",
            groups: [...identity.groups],
            authMethod: identity.authMethod,
            issuer: identity.issuer ?? "",
          },
          connection: request.connection,
          model: request.model,
          operation: request.operation,
          policyId: requirement.policyId,
          rule: scope.rule,
          field: requirement.field,
          reason: requirement.reason,
          bodySha256,
          prompt: text,
          promptTruncated: prompt.truncated || text.length < prompt.text.length,
        },
        options.controlPlaneTimeoutMs,
      );
    } catch (error) {
      metrics.approvals.inc({ outcome: "unavailable" });
      logger.warn(
        { err: error, sessionId: request.sessionId },
        "approval could not be opened: control plane unreachable",
      );
      throw unavailable();
    }
  }

  /**
   * A grant for one requirement, or the pending approval it waits for.
   * Asks the control plane only when this gateway knows of neither.
   */
  async function grantOrTicket(
    request: HeldRequest,
    identity: Identity,
    requirement: ApprovalRequirement,
    scope: GrantScope,
    bodySha256: string,
  ): Promise<{ grant: ApprovalMessage } | { ticket: ApprovalTicket; known: boolean }> {
    const local = grants.find(scope, bodySha256);
    if (local) return { grant: local };
    if ((atPendingCap.get(scope.subjectKey) ?? 0) > Date.now()) throw tooManyPending(metrics);
    const requestKey = `${scopeKeyOf(scope)}\u0000${bodySha256}`;
    const known = knownPending(requestKey);
    const ticket = known ?? (await open(request, identity, requirement, scope, bodySha256));
    // Approved a moment ago; the configuration stream brings the grant here shortly.
    if (ticket.outcome === "APPROVAL_OUTCOME_GRANTED" && ticket.grant) return { grant: ticket.grant };
    if (ticket.outcome === "APPROVAL_OUTCOME_TOO_MANY_PENDING") {
      if (atPendingCap.size >= PENDING_TICKETS_MAX) atPendingCap.clear();
      atPendingCap.set(scope.subjectKey, Date.now() + TOO_MANY_PENDING_TTL_MS);
      throw tooManyPending(metrics);
    }
    if (ticket.outcome !== "APPROVAL_OUTCOME_PENDING" || !ticket.approvalId) {
      // The policy changed at the control plane and this gateway has not caught up yet.
      metrics.approvals.inc({ outcome: "unavailable" });
      throw unavailable();
    }
    if (!known) rememberPending(requestKey, ticket);
    return { ticket, known: Boolean(known) };
  }

  /**
   * Admits the request with a grant for each approval it needs, or throws
   * the refusal. `trail` is called with what the audit record should say as
   * soon as it is known (undefined: the request needs no approval after all).
   */
  return async function admit(
    request: HeldRequest,
    trail: (approval: ApprovalTrail | undefined) => void,
  ): Promise<void> {
    let { identity, requirements } = request;
    const bodySha256 = createHash("sha256").update(request.body).digest("hex");
    const waitSeconds = preferredWait(request.prefer, options.maxWaitSeconds);
    const waitUntil = Date.now() + waitSeconds * 1000;
    let waitPlace: string | undefined;
    try {
      // Each round either admits, refuses, or waits for one approval and
      // looks again: a round per requirement, and one for a grant another
      // request spent first.
      for (let round = 0; round <= requirements.length + 1; round++) {
        const scopes = requirements.map((requirement) => scopeOf(identity, request, requirement));
        const found: ApprovalMessage[] = [];
        let pending: { ticket: ApprovalTicket; requirement: ApprovalRequirement } | undefined;
        for (const [index, requirement] of requirements.entries()) {
          const scope = scopes[index] as GrantScope;
          const result = await grantOrTicket(request, identity, requirement, scope, bodySha256);
          if ("grant" in result) {
            found.push(result.grant);
            continue;
          }
          metrics.approvals.inc({ outcome: !result.known && result.ticket.created ? "opened" : "joined" });
          pending = { ticket: result.ticket, requirement };
          break;
        }

        if (!pending) {
          if (requirements.length === 0) {
            // The policies no longer hold it (they changed while it waited).
            trail(undefined);
            return;
          }
          request.reserve();
          let spent = true;
          for (const [index, grant] of found.entries()) {
            if (!(await use(grant, scopes[index] as GrantScope, request, bodySha256))) {
              // An identical request spent this one-time grant first: look again.
              spent = false;
              break;
            }
          }
          if (spent) {
            trail(admitted(found));
            return;
          }
          continue;
        }

        const { ticket, requirement } = pending;
        trail({ admitted: false, records: [{ id: ticket.approvalId, status: "pending" }] });
        const remainingMs = waitUntil - Date.now();
        if (remainingMs <= 0) throw approvalRequired(ticket, requirement);
        if (waitPlace === undefined) {
          const subject = subjectKey(request.identity);
          if (!takeWaitPlace(subject)) throw approvalRequired(ticket, requirement);
          waitPlace = subject;
          request.setHeader("preference-applied", `wait=${waitSeconds}`);
        }
        request.pause();
        const outcome = await grants.wait(ticket.approvalId, remainingMs, request.clientGone);
        // The approval stays pending for the caller's next try.
        if (outcome.kind === "client_gone") throw new ClientGoneError();
        request.resume();
        if (outcome.kind !== "decided") {
          metrics.approvals.inc({ outcome: "waited_out" });
          throw approvalRequired(ticket, requirement);
        }
        const { approval } = outcome;
        if (approval.status === "denied") {
          metrics.approvals.inc({ outcome: "denied" });
          trail({
            admitted: false,
            records: [{ id: approval.id, status: "denied", deciders: decidersOf(approval) }],
          });
          throw denied(approval);
        }
        if (approval.status === "expired") {
          metrics.approvals.inc({ outcome: "expired" });
          trail({ admitted: false, records: [{ id: approval.id, status: "expired" }] });
          throw approvalRequired(
            ticket,
            requirement,
            "it expired without a decision; sending the request again asks anew",
          );
        }
        // Approved (or its grant withdrawn): minutes may have passed, so who
        // asks and what the policies say are read again before the next round.
        ({ identity, requirements } = await request.recheck());
      }
      throw unavailable();
    } finally {
      if (waitPlace !== undefined) giveWaitPlace(waitPlace);
    }
  };
}

/** What grants for this requirement must match. */
function scopeOf(identity: Identity, request: HeldRequest, requirement: ApprovalRequirement): GrantScope {
  return {
    subjectKey: subjectKey(identity),
    connection: request.connection,
    model: request.model,
    operation: request.operation,
    policyId: requirement.policyId,
    rule: requirement.rule ?? -1,
  };
}

/**
 * The wait a caller asks for with RFC 7240's `Prefer: wait=<seconds>`,
 * capped; 0 when it asks for none or for it in a form this does not read.
 */
export function preferredWait(header: string | string[] | undefined, maxSeconds: number): number {
  if (header === undefined) return 0;
  const preferences = (Array.isArray(header) ? header.join(",") : header).split(",");
  for (const preference of preferences) {
    const [token = ""] = preference.split(";", 1);
    const equals = token.indexOf("=");
    if (equals === -1 || token.slice(0, equals).trim().toLowerCase() !== "wait") continue;
    const value = token
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
    if (!/^\d{1,9}$/.test(value)) return 0;
    return Math.min(Number(value), maxSeconds);
  }
  return 0;
}

function decidersOf(approval: ApprovalMessage): NonNullable<ApprovalTrail["records"][number]["deciders"]> {
  return approval.deciders.slice(0, 20).map((decider) => ({
    id: cut(decider.id, 256),
    email: decider.email ? cut(decider.email, 320) : undefined,
    decision: decider.decision === "deny" ? "deny" : "approve",
    comment: decider.comment ? cut(decider.comment, 1024) : undefined,
    at: new Date(decider.at).toISOString(),
  }));
}

function approvalRequired(ticket: ApprovalTicket, requirement: ApprovalRequirement, state?: string): GatewayError {
  const status = state ?? "it is pending";
  return new GatewayError(
    "approval_required",
    `${requirement.reason}: approval ${ticket.approvalId} is needed and ${status}. An approver decides at ${ticket.url}; ` +
      `send the same request again once it is approved, or add the header "Prefer: wait=<seconds>" to wait for the decision`,
    null,
    { "x-modelgate-approval": ticket.approvalId },
    { approval_id: ticket.approvalId, approval_url: ticket.url },
  );
}

function denied(approval: ApprovalMessage): GatewayError {
  const decider = approval.deciders.find((item) => item.decision === "deny");
  const who = decider ? decider.email || decider.id : "an approver";
  const comment = decider?.comment ? `: ${decider.comment}` : "";
  return new GatewayError(
    "approval_denied",
    `approval ${approval.id} was denied by ${who}${comment}`,
    null,
    { "x-modelgate-approval": approval.id },
    { approval_id: approval.id, ...(decider?.comment ? { approval_comment: decider.comment } : {}) },
  );
}

function tooManyPending(metrics: GatewayMetrics): GatewayError {
  metrics.approvals.inc({ outcome: "too_many_pending" });
  return new GatewayError(
    "too_many_pending_approvals",
    "you have as many requests waiting for approval as one caller may; wait for them to be decided or to expire",
  );
}

function unavailable(): GatewayError {
  return new GatewayError(
    "approval_unavailable",
    "this request needs a human approval, which cannot be requested right now; retry later",
  );
}

/** At most `max` UTF-16 units, never ending in half a surrogate pair. */
function cut(value: string, max: number): string {
  if (value.length <= max) return value;
  const end = /[\uD800-\uDBFF]/.test(value[max - 1] ?? "") ? max - 1 : max;
  return value.slice(0, end);
}
