// Prometheus metrics of the data path, in a registry of its own so several
// gateways in one process (tests, zero-config mode) do not collide.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"code" | "connection" | "route">;
  latency: Histogram<"connection" | "route">;
  timeToFirstByte: Histogram<"connection" | "route">;
  inFlight: Gauge<"connection">;
  agentsConnected: Gauge<"connection">;
  retries: Counter<"connection">;
  decisions: Counter<"decision" | "code">;
  masked: Counter<"entity">;
  /** Recorded requests on model routes by connection, model and audit decision (usage-metrics.ts bounds the labels). */
  modelRequests: Counter<"connection" | "model" | "decision">;
  /** Tokens runtimes reported, by connection, model, decision and kind (prompt, completion). */
  tokens: Counter<"connection" | "model" | "decision" | "kind">;
  configLive: Gauge;
  configReceived: Gauge;
  /** Configuration messages applied, by kind (snapshot, delta). */
  configUpdates: Counter<"kind">;
  auditRefused: Counter;
  auditDropped: Counter;
  auditUnrecorded: Counter;
  refusedEarly: Counter<"code">;
  approvals: Counter<"outcome">;
  approvalWaiting: Gauge;
  /** Refusals answered late because their caller had used up its refusal budget (refusal-brake.ts). */
  refusalsDelayed: Counter<"code">;
  refusalsDelaying: Gauge;
  /** Requests Node's HTTP parser refused before any handler saw them, by the status answered. */
  httpRefused: Counter<"status">;
  auditBuffered: Gauge;
  auditHealthy: Gauge;
  auditSpoolRecords: Gauge;
  auditSpoolBytes: Gauge;
  /** Where the audit gauges read their values at scrape time. */
  observeAudit(status: () => AuditGaugeSource): void;
}

/** What the audit gauges show (the sink's status). */
interface AuditGaugeSource {
  buffered: number;
  transportHealthy: boolean;
  spool?: { records: number; bytes: number } | undefined;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createMetrics({ defaultMetrics = true }: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  let auditStatus: (() => AuditGaugeSource) | undefined;
  if (defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "modelgate_gateway_" });
  return {
    registry,
    requests: new Counter({
      name: "modelgate_requests_total",
      help: "Requests answered by the gateway, by HTTP status code, connection and route",
      labelNames: ["code", "connection", "route"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "modelgate_request_duration_seconds",
      help: "Time from receiving a request to the end of its response",
      labelNames: ["connection", "route"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    timeToFirstByte: new Histogram({
      name: "modelgate_time_to_first_byte_seconds",
      help: "Time from receiving a request to sending the runtime's first response bytes",
      labelNames: ["connection", "route"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "modelgate_requests_in_flight",
      help: "Requests being forwarded to agents right now",
      labelNames: ["connection"],
      registers: [registry],
    }),
    agentsConnected: new Gauge({
      name: "modelgate_agents_connected",
      help: "Agents with a live tunnel to this gateway (not draining)",
      labelNames: ["connection"],
      registers: [registry],
    }),
    configLive: new Gauge({
      name: "modelgate_config_live",
      help: "1 while the configuration stream from the control plane is up; 0 while serving the last-known configuration",
      registers: [registry],
    }),
    configReceived: new Gauge({
      name: "modelgate_config_received_timestamp_seconds",
      help: "When the configuration in use arrived (Unix seconds); 0 before the first",
      registers: [registry],
    }),
    configUpdates: new Counter({
      name: "modelgate_config_updates_total",
      help: "Configuration messages applied, by kind: snapshot (all of it) or delta (what changed)",
      labelNames: ["kind"],
      registers: [registry],
    }),
    decisions: new Counter({
      name: "modelgate_policy_decisions_total",
      help: "Policy decisions, by outcome (allowed, denied, rate_limited) and error code",
      labelNames: ["decision", "code"],
      registers: [registry],
    }),
    modelRequests: new Counter({
      name: "modelgate_gateway_model_requests_total",
      help: "Recorded requests by connection, model (as configured; other: any other) and audit decision",
      labelNames: ["connection", "model", "decision"],
      registers: [registry],
    }),
    tokens: new Counter({
      name: "modelgate_gateway_tokens_total",
      help: "Tokens runtimes reported, by connection, model, audit decision and kind (prompt, completion)",
      labelNames: ["connection", "model", "decision", "kind"],
      registers: [registry],
    }),
    masked: new Counter({
      name: "modelgate_masked_total",
      help: "Values the agents masked in responses, by entity (EMAIL, CREDIT_CARD, custom names, …)",
      labelNames: ["entity"],
      registers: [registry],
    }),
    retries: new Counter({
      name: "modelgate_request_retries_total",
      help: "Requests moved to another agent before reaching a runtime",
      labelNames: ["connection"],
      registers: [registry],
    }),
    auditRefused: new Counter({
      name: "modelgate_audit_refused_total",
      help: "Requests refused with 503 audit_unavailable because their audit record could not be kept",
      registers: [registry],
    }),
    httpRefused: new Counter({
      name: "modelgate_http_refused_total",
      help: "Requests the HTTP parser refused before the gateway saw them (no audit record): 431 headers too large, 400 malformed, 408 too slow",
      labelNames: ["status"],
      registers: [registry],
    }),
    auditDropped: new Counter({
      name: "modelgate_audit_dropped_total",
      help: "Audit records dropped with MODELGATE_AUDIT_FAIL_OPEN on (the buffer was full)",
      registers: [registry],
    }),
    auditUnrecorded: new Counter({
      name: "modelgate_audit_unrecorded_refusals_total",
      help: "Refusals answered without an audit record because the audit buffer was full",
      registers: [registry],
    }),
    approvals: new Counter({
      name: "modelgate_approval_holds_total",
      help: "Requests a policy held for human approval, by outcome: opened (a new approval), joined (an identical pending one), admitted (by a grant), denied, expired, waited_out, too_many_pending, unavailable",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    approvalWaiting: new Gauge({
      name: "modelgate_approval_waiting_requests",
      help: "Requests held open with Prefer: wait until their approval is decided",
      registers: [registry],
    }),
    refusalsDelayed: new Counter({
      name: "modelgate_refusals_delayed_total",
      help: "Refusals answered late because their caller had used up its refusal budget, by error code",
      labelNames: ["code"],
      registers: [registry],
    }),
    refusalsDelaying: new Gauge({
      name: "modelgate_refusals_delaying",
      help: "Refusals waiting out the refusal brake's delay now",
      registers: [registry],
    }),
    refusedEarly: new Counter({
      name: "modelgate_requests_refused_early_total",
      help: "Requests refused before their body was used: too many in flight for one subject, a body too slow or too large",
      labelNames: ["code"],
      registers: [registry],
    }),
    auditBuffered: new Gauge({
      name: "modelgate_audit_buffered_records",
      help: "Audit records waiting in the gateway's local buffer to be handed to the queue",
      registers: [registry],
      collect() {
        if (auditStatus) this.set(auditStatus().buffered);
      },
    }),
    auditHealthy: new Gauge({
      name: "modelgate_audit_transport_healthy",
      help: "1 while audit records are handed over to the queue, 0 while they are only buffered",
      registers: [registry],
      collect() {
        if (auditStatus) this.set(auditStatus().transportHealthy ? 1 : 0);
      },
    }),
    auditSpoolRecords: new Gauge({
      name: "modelgate_audit_spool_records",
      help: "Audit records waiting in the gateway's spool on disk (while the queue was unreachable) to be handed over",
      registers: [registry],
      collect() {
        if (auditStatus) this.set(auditStatus().spool?.records ?? 0);
      },
    }),
    auditSpoolBytes: new Gauge({
      name: "modelgate_audit_spool_bytes",
      help: "Bytes of the gateway's audit spool files; at MODELGATE_AUDIT_SPOOL_MAX_BYTES requests are refused",
      registers: [registry],
      collect() {
        if (auditStatus) this.set(auditStatus().spool?.bytes ?? 0);
      },
    }),
    observeAudit(status) {
      auditStatus = status;
    },
  };
}
