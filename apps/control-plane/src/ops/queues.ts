// The queues whose depth and age the ops listener reports: the audit queue
// (gateways' records waiting for this control plane) and the export queue
// (SIEM deliveries). Read-only handles: nothing is added through them.
import { AUDIT_QUEUE } from "@modelgate/audit";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { EXPORT_QUEUE } from "../features/exporters/delivery.js";
import type { WorkMetrics } from "./work-metrics.js";

export interface WatchedQueues {
  close(): Promise<void>;
}

export function watchQueues(metrics: WorkMetrics, redisUrl: string, prefix: string | undefined): WatchedQueues {
  // Fails fast while Redis is away (no offline queue): a scrape reports
  // the queue unreadable instead of waiting for the reconnection.
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
  connection.on("error", () => {}); // reported as queue_readable 0
  const options = { connection, ...(prefix ? { prefix } : {}) };
  const queues = [
    { name: "audit", queue: new Queue(AUDIT_QUEUE, options) },
    { name: "export", queue: new Queue(EXPORT_QUEUE, options) },
  ];
  for (const { queue } of queues) queue.on("error", () => {});
  metrics.watchQueues(queues);
  return {
    async close() {
      metrics.watchQueues([]);
      await Promise.all(queues.map(({ queue }) => queue.close()));
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
