// Requests and tokens per connection, model and decision, counted from each
// audit record. Prometheus keeps a series per label set for as long as the
// process runs, so every label comes from a bounded set: connections and
// models as configured (a model a connection does not list, or any model on
// a connection that lists none, is "other"), decisions from their enum.
// Never a subject: usage per caller is the control plane's (GET /api/v1/usage).
import type { AuditRecord } from "@modelgate/audit";
import type { ConfigStore } from "./config-store.js";
import type { GatewayMetrics } from "./metrics.js";

const NONE = "none";
const OTHER = "other";

export function countUsage(
  store: Pick<ConfigStore, "connectionByName">,
  metrics: Pick<GatewayMetrics, "modelRequests" | "tokens">,
  record: AuditRecord,
): void {
  const connection = record.connection === undefined ? undefined : store.connectionByName(record.connection);
  const labels = {
    connection: connection?.name ?? (record.connection === undefined ? NONE : OTHER),
    model: record.model === undefined ? NONE : connection?.models.includes(record.model) ? record.model : OTHER,
    decision: record.decision,
  };
  metrics.modelRequests.inc(labels);
  const usage = record.usage;
  if (!usage) return;
  const prompt = usage.prompt_tokens;
  const completion = usage.completion_tokens;
  if (prompt !== undefined && prompt > 0) metrics.tokens.inc({ ...labels, kind: "prompt" }, prompt);
  if (completion !== undefined && completion > 0) metrics.tokens.inc({ ...labels, kind: "completion" }, completion);
}
