// Quota thresholds to the control plane, which raises them as alerts (its
// alert list, the console, SIEM exporters). Best effort off the request
// path: a crossing the control plane cannot take after a few tries stays in
// the gateway's warn log line and its metric (docs/policies.md#quotas).
import type { Logger } from "@modelgate/core";
import type { QuotaThreshold } from "./quota.js";

export interface QuotaThresholdLink {
  reportQuotaThreshold(crossing: QuotaThreshold, timeoutMs: number): Promise<void>;
}

/** Waits before each retry: the control plane may be restarting. */
const RETRY_DELAYS_MS = [2_000, 10_000, 30_000];
const CALL_TIMEOUT_MS = 5_000;

export function quotaThresholdReporter(
  link: () => QuotaThresholdLink | undefined,
  logger: Logger,
  delays: readonly number[] = RETRY_DELAYS_MS,
): (crossing: QuotaThreshold) => void {
  const send = async (crossing: QuotaThreshold) => {
    for (let attempt = 0; ; attempt++) {
      try {
        const target = link();
        if (!target) throw new Error("no control plane link yet");
        await target.reportQuotaThreshold(crossing, CALL_TIMEOUT_MS);
        return;
      } catch (error) {
        const delay = delays[attempt];
        if (delay === undefined) {
          logger.error(
            { err: error, policyId: crossing.policyId, threshold: crossing.threshold },
            "could not report a quota threshold to the control plane; no alert is raised for it",
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  };
  return (crossing) => void send(crossing);
}
