// The record stage: every request on a model route ends here, answered or
// refused, with its audit record and its decision log line.
//
// What it holds: a place in the audit buffer (an AuditTicket). A request
// that will be forwarded takes its place before it is forwarded (no record,
// no answer); a refused one takes a place only when the refusal is written,
// so nothing a caller does before it is authorised (a slow upload, a flood
// of bad keys) holds a place the others need.
import type { IncomingMessage, ServerResponse } from "node:http";
import { AUDIT_RECORD_VERSION, type AuditRecord, type AuditSink, type AuditTicket } from "@modelgate/audit";
import { type Logger, withoutRedaction } from "@modelgate/core";
import type { ResponseCapture } from "./audit-capture.js";
import { buildAuditRecord, decisionLogFields, decisionOf, type RequestTrail } from "./audit-record.js";
import type { ConfigStore } from "./config-store.js";
import { GatewayError } from "./errors.js";
import { subjectOf } from "./identity.js";
import type { GatewayMetrics } from "./metrics.js";
import { countUsage } from "./usage-metrics.js";

export interface RecorderOptions {
  store: Pick<ConfigStore, "policies" | "connectionByName">;
  audit: Pick<AuditSink, "admit">;
  metrics: Pick<GatewayMetrics, "auditRefused" | "auditUnrecorded" | "modelRequests" | "tokens">;
  logger: Logger;
  gatewayId: string;
  /** Cap per recorded body (request, response). */
  auditMaxBodyBytes: number;
  /** Put the request body (masked when the policy asks) into the decision log line. */
  logPrompts: boolean;
}

export interface Recorder {
  /**
   * Reserves the audit place of a request about to be answered by anything
   * other than a refusal; throws 503 `audit_unavailable` when the buffer is
   * full, so the request is refused instead of served unrecorded.
   */
  reserve(): AuditTicket;
  /** Builds and submits the record of a finished request, and returns it; never throws. */
  record(
    req: IncomingMessage,
    res: ServerResponse,
    trail: RequestTrail,
    capture: ResponseCapture,
    ticket?: AuditTicket,
  ): AuditRecord;
}

export function createRecorder(options: RecorderOptions): Recorder {
  const { store, audit, metrics, logger } = options;
  // The decision line is built field by field from the audit record: no
  // secret can be in it, so it skips the redaction pass (docs/audit.md).
  const decisionLog = withoutRedaction(logger);

  function reserve(): AuditTicket {
    const ticket = audit.admit();
    if (ticket) return ticket;
    metrics.auditRefused.inc();
    throw new GatewayError(
      "audit_unavailable",
      "requests cannot be recorded right now, so none are served; retry later",
    );
  }

  /**
   * The request's audit record. Never throws: a record that cannot be built
   * in full (a bug, or an answer shaped to break it) is still recorded, with
   * what is certain and the failure as its error.
   */
  function recordOf(req: IncomingMessage, res: ServerResponse, trail: RequestTrail, capture: ResponseCapture) {
    const status = trail.outcome?.status ?? res.statusCode;
    const recordOptions = { gatewayId: options.gatewayId, maxBodyBytes: options.auditMaxBodyBytes };
    try {
      if (!trail.verdict && trail.identity && trail.connection) {
        trail.refusedAuditMasking = store.policies.auditMasking(subjectOf(trail.identity), trail.connection);
      }
      return buildAuditRecord(req, trail, capture.result(), status, recordOptions);
    } catch (error) {
      logger.error({ err: error, sessionId: trail.sessionId }, "audit record built without its bodies after a failure");
      const now = new Date().toISOString();
      return {
        version: AUDIT_RECORD_VERSION,
        sessionId: trail.sessionId,
        gatewayId: options.gatewayId,
        receivedAt: new Date(trail.receivedAtWall).toISOString(),
        finishedAt: now,
        endpoint: (req.url ?? "/").split("?", 1)[0]?.slice(0, 512) ?? "/",
        method: (req.method ?? "GET").slice(0, 16),
        decision: decisionOf(trail),
        policyIds: [],
        capped: [],
        responseStatus: status > 0 && status <= 999 ? status : undefined,
        latencyMs: Math.min(2 ** 31 - 1, Math.max(0, Math.round(performance.now() - trail.receivedAt))),
        events: [],
        error: { code: "audit_record_incomplete", message: "the record could not be built in full" },
      } satisfies AuditRecord;
    }
  }

  function record(
    req: IncomingMessage,
    res: ServerResponse,
    trail: RequestTrail,
    capture: ResponseCapture,
    ticket: AuditTicket | undefined,
  ): AuditRecord {
    const record = recordOf(req, res, trail, capture);
    // A refusal takes its place now. With the buffer full it is answered
    // all the same (it served nothing) but cannot be kept: counted, so an
    // operator sees refusals went unrecorded while the queue was away.
    const place = ticket ?? audit.admit();
    if (place) place.submit(record);
    else metrics.auditUnrecorded.inc();
    countUsage(store, metrics, record);
    decisionLog.info(decisionLogFields(record, options.logPrompts), "decision");
    return record;
  }

  return { reserve, record };
}
