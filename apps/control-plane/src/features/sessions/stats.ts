import type { AuditDecision } from "@modelgate/audit";
import { type Database, Prisma } from "@modelgate/db";
import { type SessionStatsView, STATS_WINDOWS, type StatsWindow } from "./schemas.js";

/**
 * The decisions of a request the gateway refused to answer (the gateway's
 * decisionOf): a policy or prompt rule (blocked, denied), a rate limit, a
 * failed or refused credential (denied), an approver's denial (denied), or
 * an approval still pending when the caller was answered
 * (approval_required). `error` is the gateway or something behind it
 * failing, not a refusal; `approved` was answered.
 */
const REFUSED_DECISIONS = [
  "blocked",
  "denied",
  "rate_limited",
  "approval_required",
] as const satisfies readonly AuditDecision[];

const TOP_REASONS = 10;
const TOP_CONNECTIONS = 20;

/**
 * GROUPING(bucket, connection, reason) of each grouping set: a bit is set
 * for each column the set does not group by.
 */
const BY_BUCKET = 0b011;
const BY_CONNECTION = 0b101;
const BY_REASON = 0b110;
const TOTAL = 0b111;

interface StatsRow {
  grouping: number;
  bucket: Date | null;
  connection: string | null;
  reason: string | null;
  requests: number;
  refused: number;
  masked: number;
  rank: number;
}

/** The window's bounds: buckets aligned to their size, the last one holding `now`. */
function statsWindow(window: StatsWindow, now: Date) {
  const { bucketSeconds, buckets } = STATS_WINDOWS[window];
  const bucketMs = bucketSeconds * 1000;
  const to = (Math.floor(now.getTime() / bucketMs) + 1) * bucketMs;
  return { bucketSeconds, buckets, bucketMs, from: new Date(to - buckets * bucketMs), to: new Date(to) };
}

/** The query of `sessionStats`, on its own for EXPLAIN (bench/session-stats.mjs). */
function statsQuery({ bucketSeconds, from, to }: { bucketSeconds: number; from: Date; to: Date }): Prisma.Sql {
  const refused = Prisma.join(REFUSED_DECISIONS.map((decision) => Prisma.sql`${decision}::"Decision"`));
  return Prisma.sql`
    WITH counted AS (
      -- First per (bucket, connection, reason): a few thousand groups
      -- however many sessions, which the grouping sets below then add up.
      -- Grouping the sessions four ways directly sorted every one of them
      -- (Postgres cannot estimate how few buckets date_bin makes). OFFSET 0
      -- keeps the classification in its own step, so the grouping carries a
      -- flag instead of each session's details (measured: a hash of 2 MB
      -- instead of a sort spilled to disk).
      SELECT bucket, connection, reason, count(*) AS requests, count(*) FILTER (WHERE masked) AS masked
      FROM (
        SELECT date_bin(make_interval(secs => ${bucketSeconds}::int), received_at, ${from}::timestamptz) AS bucket,
               connection,
               CASE WHEN decision IN (${refused})
                    THEN COALESCE(details #>> '{error,code}', decision::text) END AS reason,
               decision = 'masked' OR jsonb_path_exists(details, '$.maskedCounts.* ? (@ > 0)') AS masked
        FROM sessions
        WHERE received_at >= ${from}::timestamptz AND received_at < ${to}::timestamptz
        OFFSET 0
      ) AS classified
      GROUP BY bucket, connection, reason
    ),
    grouped AS (
      SELECT GROUPING(bucket, connection, reason) AS grouping, bucket, connection, reason,
             -- coalesce: an empty window's totals are a sum of no rows.
             coalesce(sum(requests), 0)::int AS requests,
             -- A reason is a refusal's: the rest have none.
             coalesce(sum(requests) FILTER (WHERE reason IS NOT NULL), 0)::int AS refused,
             coalesce(sum(masked), 0)::int AS masked,
             -- The requests that were not refused make one group of reason
             -- NULL in the reason set: ranked last, and dropped below.
             row_number() OVER (
               PARTITION BY GROUPING(bucket, connection, reason)
               ORDER BY reason IS NULL, sum(requests) DESC, connection NULLS LAST, reason
             ) AS rank
      FROM counted
      GROUP BY GROUPING SETS ((bucket), (connection), (reason), ())
    )
    SELECT grouping, bucket, connection, reason, requests, refused, masked, rank::int AS rank
    FROM grouped
    WHERE grouping IN (${BY_BUCKET}::int, ${TOTAL}::int)
       OR (grouping = ${BY_CONNECTION}::int AND rank <= ${TOP_CONNECTIONS}::int)
       OR (grouping = ${BY_REASON}::int AND reason IS NOT NULL AND rank <= ${TOP_REASONS}::int)`;
}

/**
 * The Overview's numbers for one window, in one query: one range scan on
 * received_at (the index sessions_received_at_id_idx, or the table when the
 * window holds a large part of it), grouped four ways at once (GROUPING
 * SETS: per bucket, per connection, per refusal reason, and the totals),
 * the top lists cut in SQL so a deployment with many connections returns 20
 * rows. Measured in docs/benchmarks.md, "Overview statistics".
 *
 * Masked means the agent masked something in the answer: a positive count
 * in details.maskedCounts. decision = 'masked' alone would miss answers
 * that were masked but recorded as `approved` (the gateway's decisionOf
 * puts an approval first). The reason of a refusal is its error code
 * (details.error.code, one of the gateway's stable codes such as
 * prompt_blocked or model_not_allowed), not `reason`, which is free text
 * naming policies; a record without one falls back to its decision.
 */
export async function sessionStats(db: Database, window: StatsWindow, now: Date): Promise<SessionStatsView> {
  const { bucketSeconds, buckets, bucketMs, from, to } = statsWindow(window, now);
  const rows = await db.$queryRaw<StatsRow[]>(statsQuery({ bucketSeconds, from, to }));

  const byBucket = new Map<number, StatsRow>();
  const connections: StatsRow[] = [];
  const reasons: StatsRow[] = [];
  let totals = { requests: 0, refused: 0, masked: 0 };
  for (const row of rows) {
    if (row.grouping === BY_BUCKET && row.bucket) byBucket.set(row.bucket.getTime(), row);
    else if (row.grouping === BY_CONNECTION) connections.push(row);
    else if (row.grouping === BY_REASON) reasons.push(row);
    else if (row.grouping === TOTAL) totals = { requests: row.requests, refused: row.refused, masked: row.masked };
  }
  // A window function ranks rows but does not order the result.
  const byRank = (a: StatsRow, b: StatsRow) => a.rank - b.rank;
  return {
    window,
    from: from.toISOString(),
    to: to.toISOString(),
    bucketSeconds,
    buckets: Array.from({ length: buckets }, (_, index) => {
      const start = from.getTime() + index * bucketMs;
      const row = byBucket.get(start);
      return {
        start: new Date(start).toISOString(),
        requests: row?.requests ?? 0,
        refused: row?.refused ?? 0,
        masked: row?.masked ?? 0,
      };
    }),
    totals,
    refusalsByReason: reasons.sort(byRank).map((row) => ({ reason: row.reason ?? "", count: row.requests })),
    byConnection: connections
      .sort(byRank)
      .map(({ connection, requests, refused }) => ({ connection, requests, refused })),
  };
}
