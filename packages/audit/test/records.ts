// A minimal valid audit record for the sink and spool tests: a fresh
// session id each call, and a request body of `text` when given.
import type { AuditRecord } from "../src/record.js";

let counter = 0;

export function record(text?: string): AuditRecord {
  counter += 1;
  const now = new Date().toISOString();
  return {
    version: 1,
    sessionId: `session-${counter}`,
    gatewayId: "gw",
    receivedAt: now,
    finishedAt: now,
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "allowed",
    policyIds: [],
    capped: [],
    latencyMs: 1,
    events: [],
    ...(text === undefined ? {} : { request: { text, truncated: false, bytes: Buffer.byteLength(text) } }),
  };
}
