import type { Database } from "@modelgate/db";
import { bucketOf, bucketSize } from "./rollup.js";
import type { UsageQuery, UsageView } from "./schemas.js";

interface UsageRow {
  key: string;
  label: string | null;
  groups: number;
  g_requests: number;
  g_prompt: number;
  g_completion: number;
  g_total: number;
  bucket: Date;
  requests: number;
  prompt: number;
  completion: number;
  total: number;
}

export interface UsageService {
  query(query: UsageQuery): Promise<UsageView>;
}

/**
 * Reads the usage rollup (rollup.ts), never the sessions: one query ranks
 * the range's groups by their totals and returns the buckets of the first
 * `limit`. The sums are bigint in Postgres and doubles here: exact up to
 * 2^53 tokens per group.
 */
export function createUsageService({ db }: { db: Database }): UsageService {
  return {
    async query({ groupBy, interval, limit, ...range }) {
      const from = bucketOf(new Date(range.from), interval);
      const end = new Date(range.to).getTime();
      const to = new Date(Math.ceil(end / bucketSize(interval)) * bucketSize(interval));
      const rows = await db.$queryRaw<UsageRow[]>`
        WITH r AS MATERIALIZED (
          SELECT key, label, bucket, requests, prompt_tokens, completion_tokens, total_tokens
          FROM usage_rollup
          WHERE interval = ${interval}::"UsageInterval" AND dimension = ${groupBy}::"UsageDimension"
            AND bucket >= ${from} AND bucket < ${to}
        ), top AS (
          SELECT key, max(label) AS label, count(*) OVER ()::int AS groups,
            sum(requests) AS requests, sum(prompt_tokens) AS prompt,
            sum(completion_tokens) AS completion, sum(total_tokens) AS total
          FROM r GROUP BY key
          ORDER BY total DESC, requests DESC, key
          LIMIT ${limit}
        )
        SELECT top.key, top.label, top.groups,
          top.requests::float8 AS g_requests, top.prompt::float8 AS g_prompt,
          top.completion::float8 AS g_completion, top.total::float8 AS g_total,
          r.bucket, r.requests::float8 AS requests, r.prompt_tokens::float8 AS prompt,
          r.completion_tokens::float8 AS completion, r.total_tokens::float8 AS total
        FROM top JOIN r USING (key)
        ORDER BY top.total DESC, top.requests DESC, top.key, r.bucket`;
      const groups: UsageView["groups"] = [];
      let current: UsageView["groups"][number] | undefined;
      let currentKey: string | undefined;
      for (const row of rows) {
        if (current === undefined || row.key !== currentKey) {
          currentKey = row.key;
          current = {
            key: row.key === "" ? null : row.key,
            label: row.label,
            total: {
              requests: row.g_requests,
              promptTokens: row.g_prompt,
              completionTokens: row.g_completion,
              totalTokens: row.g_total,
            },
            buckets: [],
          };
          groups.push(current);
        }
        current.buckets.push({
          start: row.bucket.toISOString(),
          requests: row.requests,
          promptTokens: row.prompt,
          completionTokens: row.completion,
          totalTokens: row.total,
        });
      }
      return {
        groupBy,
        interval,
        from: from.toISOString(),
        to: to.toISOString(),
        groups,
        more: (rows[0]?.groups ?? 0) > groups.length,
      };
    },
  };
}
