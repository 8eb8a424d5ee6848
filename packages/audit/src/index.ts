export {
  AUDIT_BACKOFF,
  AUDIT_BATCH_JOB_NAME,
  AUDIT_JOB_NAME,
  AUDIT_JOB_OPTIONS,
  AUDIT_QUEUE,
  type AuditQueue,
  type AuditQueueOptions,
  createAuditQueue,
  type RedisConnection,
} from "./queue.js";
export {
  AUDIT_RECORD_VERSION,
  type AuditDecision,
  type AuditRecord,
  type AuditSubject,
  auditRecordSchema,
  auditSubjectSchema,
  DECISIONS,
  recordedBodySchema,
  streamEventSchema,
} from "./record.js";
export {
  SESSION_COLUMNS,
  type SessionContentRow,
  type SessionDetails,
  type SessionEventRow,
  type SessionField,
  type SessionRow,
  type SessionRows,
  toSessionRows,
} from "./rows.js";
export { answerSearchText } from "./search-text.js";
export {
  AuditSink,
  type AuditSinkOptions,
  type AuditSinkStatus,
  type AuditTicket,
  type AuditTransport,
} from "./sink.js";
export {
  AuditSpool,
  type AuditSpoolOptions,
  type AuditSpoolStatus,
  DEFAULT_COMMIT_INTERVAL_MS,
  DEFAULT_SPOOL_MAX_BYTES,
} from "./spool.js";
export { batchJobId, createQueueTransport, createStoreTransport, type QueueTransportOptions } from "./transport.js";
export {
  type AuditStore,
  type AuditWorker,
  type AuditWorkerOptions,
  auditBackoffDelay,
  type OnStored,
  processAuditJob,
  type StoreOutcome,
  startAuditWorker,
} from "./worker.js";
