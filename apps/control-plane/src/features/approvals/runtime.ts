// Starts what approvals need besides the API: the service, the expiry timers
// (a BullMQ queue with Redis, in-process timers without) and the sweep.
import type { Logger } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import type { ConfigPublishing } from "../../gateway-link/changes.js";
import {
  type ApprovalExpiry,
  DEFAULT_SWEEP_INTERVAL_MS,
  startExpirySweep,
  startQueuedExpiry,
  startTimedExpiry,
} from "./expiry.js";
import { type ApprovalEventSink, type ApprovalService, createApprovalService } from "./service.js";

export interface ApprovalOptions {
  /** Where approvers decide: approval URLs are `<urlBase>/<id>` (MODELGATE_APPROVAL_URL_BASE); default the API's own `/api/v1/approvals`. */
  urlBase?: string | undefined;
  /** Pending approvals one subject may have at once (MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT, default 20). */
  maxPendingPerSubject?: number | undefined;
  /** How often overdue pending approvals are looked for, besides their timers (default 30 s); tests shorten it. */
  sweepIntervalMs?: number | undefined;
}

export interface RunningApprovals {
  service: ApprovalService;
  close(): Promise<void>;
}

export async function startApprovals({
  db,
  config,
  logger,
  urlBase,
  maxPendingPerSubject,
  sweepIntervalMs = DEFAULT_SWEEP_INTERVAL_MS,
  events,
  redisUrl,
  prefix,
}: {
  db: Database;
  config: ConfigPublishing;
  logger: Logger;
  /** The URL base in effect; a function because the default is known only once the API listens. */
  urlBase: () => string;
  maxPendingPerSubject?: number | undefined;
  sweepIntervalMs?: number | undefined;
  events?: ApprovalEventSink | undefined;
  /** With Redis, expiry timers are BullMQ delayed jobs, shared by every control plane. */
  redisUrl?: string | undefined;
  prefix?: string | undefined;
}): Promise<RunningApprovals> {
  let expiry: ApprovalExpiry | undefined;
  const service = createApprovalService({
    db,
    config,
    logger,
    urlBase,
    maxPendingPerSubject,
    events,
    scheduleExpiry: async (id, expiresAt) => expiry?.schedule(id, expiresAt),
  });
  const expireOne = (id: string) => service.expireOne(id);
  expiry = redisUrl
    ? await startQueuedExpiry({ redisUrl, prefix, expire: expireOne, logger })
    : startTimedExpiry({ expire: expireOne, logger });
  const armed = expiry;
  // Timers for what was pending before this start (in-process timers died
  // with the last process; re-adding a queued job that exists changes
  // nothing). In the background: the database may still be away.
  const rearming = service
    .pendingExpiries()
    .then(async (pending) => {
      for (const { id, expiresAt } of pending) await armed.schedule(id, expiresAt);
    })
    .catch((error: unknown) =>
      logger.warn({ err: error }, "could not arm the expiry of pending approvals; the sweep expires them"),
    );
  const sweep = startExpirySweep({ sweep: () => service.sweep(), intervalMs: sweepIntervalMs, logger });
  return {
    service,
    async close() {
      await rearming;
      await sweep.close();
      await armed.close();
      await service.close();
    },
  };
}
