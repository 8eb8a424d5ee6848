import { type Database, poolOf } from "@modelgate/db";
import { bucketOf, bucketSize } from "./rollup.js";
import type { UsageQuery, UsageView } from "./schemas.js";

const DAY_MS = 86_400_000;

interface RankedRow {
  key: string;
  label: string | null;
  groups: number;
}

interface BucketRow {
  key: string;
  /** ISO 8601 in UTC, written by Postgres: parsing tens of thousands of timestamps in pg cost more than the query. */
  bucket: string;
  requests: number;
  prompt: number;
  completion: number;
  total: number;
}

/**
 * The range's groups by their totals: $1 dimension, [$2, $3) whole days, [$4, $5) the range, $6 limit.
 * @public bench/usage-query.mjs runs it under EXPLAIN.
 */
export const RANK_SQL = `SELECT key, max(label) AS label, count(*) OVER ()::int AS groups
  FROM (
  SELECT key, label, requests, total_tokens FROM usage_rollup
  WHERE interval = 'day' AND dimension = $1::"UsageDimension" AND bucket >= $2 AND bucket < $3
  UNION ALL
  SELECT key, label, requests, total_tokens FROM usage_rollup
  WHERE interval = 'hour' AND dimension = $1::"UsageDimension"
  AND ((bucket >= $4 AND bucket < $2) OR (bucket >= $3 AND bucket < $5))
  ) AS rows
  GROUP BY key
  ORDER BY sum(total_tokens) DESC, sum(requests) DESC, key
  LIMIT $6`;

/**
 * The buckets of the ranked groups: $1 interval, $2 dimension, $3 keys, [$4, $5) the range.
 * @public bench/usage-query.mjs runs it under EXPLAIN.
 */
export const BUCKETS_SQL = `SELECT key, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket,
  requests::float8 AS requests, prompt_tokens::float8 AS prompt,
  completion_tokens::float8 AS completion, total_tokens::float8 AS total
  FROM usage_rollup
  WHERE interval = $1::"UsageInterval" AND dimension = $2::"UsageDimension" AND key = ANY($3::text[])
  AND bucket >= $4 AND bucket < $5
  ORDER BY key, bucket`;

export interface UsageService {
  query(query: UsageQuery): Promise<UsageView>;
}

/**
 * Reads the usage rollup (rollup.ts), never the sessions, in two indexed
 * queries: first the range's groups ranked by their totals, then the
 * buckets of the first `limit` of them.
 *
 * Ranking reads the day rows of the whole UTC days inside the range and the
 * hour rows only at its ragged ends: exact (a day is the sum of its hours),
 * and at most 366 rows per group where hour rows would be 24 times as many.
 * The buckets then come by key through the (interval, dimension, key,
 * bucket) index, so a query reads what it answers and little else
 * (docs/benchmarks.md, "Usage query"). Sums are bigint in Postgres and
 * doubles here: exact up to 2^53 tokens per bucket.
 *
 * The statements go straight through `pg` on the Prisma client's pool:
 * tens of thousands of bucket rows are common (a quarter of hours for 20
 * subjects), and Prisma's raw-query layer cost more than Postgres did.
 */
export function createUsageService({ db }: { db: Database }): UsageService {
  return {
    async query({ groupBy, interval, limit, ...range }) {
      const from = bucketOf(new Date(range.from), interval);
      const size = bucketSize(interval);
      const to = new Date(Math.ceil(new Date(range.to).getTime() / size) * size);
      // The whole days inside [from, to); none when it spans no whole day.
      let daysFrom = new Date(Math.ceil(from.getTime() / DAY_MS) * DAY_MS);
      let daysTo = bucketOf(to, "day");
      if (daysFrom >= daysTo) [daysFrom, daysTo] = [from, from];
      const pool = poolOf(db);
      const ranked = await pool.query<RankedRow>(RANK_SQL, [groupBy, daysFrom, daysTo, from, to, limit]);
      const keys = ranked.rows.map((row) => row.key);
      const buckets =
        keys.length === 0 ? [] : (await pool.query<BucketRow>(BUCKETS_SQL, [interval, groupBy, keys, from, to])).rows;
      const byKey = new Map<string, UsageView["groups"][number]>();
      for (const row of ranked.rows) {
        byKey.set(row.key, {
          key: row.key === "" ? null : row.key,
          label: row.label,
          total: { requests: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0 },
          buckets: [],
        });
      }
      for (const row of buckets) {
        const group = byKey.get(row.key);
        if (!group) continue;
        group.total.requests += row.requests;
        group.total.promptTokens += row.prompt;
        group.total.completionTokens += row.completion;
        group.total.totalTokens += row.total;
        group.buckets.push({
          start: row.bucket,
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
        groups: [...byKey.values()],
        more: (ranked.rows[0]?.groups ?? 0) > ranked.rows.length,
      };
    },
  };
}
