// The usage rollup (docs/audit.md, "Usage"): sessions and tokens per hour
// and per UTC day, for each subject, group, connection and model. The
// session store adds to it in the transaction that inserts the sessions, so
// a session is counted exactly when it is stored: a re-delivered record,
// skipped as a duplicate, adds nothing.
//
// One row per (interval, dimension, bucket, key) rather than one per
// combination of subject, connection and model: each groupBy reads only its
// own dimension's rows, so a query's cost follows the number of subjects (or
// models) and buckets in its range, not their product
// (docs/benchmarks.md, "Usage query").
import type { SessionRow } from "@modelgate/audit";
import type pg from "pg";

export const USAGE_DIMENSIONS = ["subject", "group", "connection", "model"] as const;
type UsageDimension = (typeof USAGE_DIMENSIONS)[number];
export const USAGE_INTERVALS = ["hour", "day"] as const;
export type UsageInterval = (typeof USAGE_INTERVALS)[number];

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** The start of the bucket `at` falls in: hours and days in UTC. */
export function bucketOf(at: Date | number, interval: UsageInterval): Date {
  const ms = typeof at === "number" ? at : at.getTime();
  const size = interval === "hour" ? HOUR_MS : DAY_MS;
  return new Date(Math.floor(ms / size) * size);
}

export function bucketSize(interval: UsageInterval): number {
  return interval === "hour" ? HOUR_MS : DAY_MS;
}

interface Sums {
  interval: UsageInterval;
  dimension: UsageDimension;
  bucket: string;
  key: string;
  label: string | null;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** A batch's sessions summed per rollup row, then written in one statement. */
export class UsageTally {
  readonly #rows = new Map<string, Sums>();

  add(session: SessionRow): void {
    const label = session.subjectName ?? session.subjectEmail;
    const keys: [UsageDimension, string, string | null][] = [
      ["subject", session.subjectId ?? "", label],
      ["connection", session.connection ?? "", null],
      ["model", session.model ?? "", null],
    ];
    // A subject in several groups counts in each, once.
    for (const group of new Set(session.subjectGroups)) keys.push(["group", group, null]);
    for (const interval of USAGE_INTERVALS) {
      const bucket = bucketOf(session.receivedAt, interval).toISOString();
      for (const [dimension, key, rowLabel] of keys) {
        const id = `${interval}\n${dimension}\n${bucket}\n${key}`;
        let sums = this.#rows.get(id);
        if (!sums) {
          sums = {
            interval,
            dimension,
            bucket,
            key,
            label: null,
            requests: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
          };
          this.#rows.set(id, sums);
        }
        sums.label = rowLabel ?? sums.label;
        sums.requests += 1;
        sums.prompt_tokens += session.promptTokens ?? 0;
        sums.completion_tokens += session.completionTokens ?? 0;
        sums.total_tokens += session.totalTokens ?? 0;
      }
    }
  }

  async write(client: pg.PoolClient): Promise<void> {
    if (this.#rows.size === 0) return;
    // In key order: two writers (only possible without the chain head's
    // lock, which every store takes first) could not deadlock on them.
    const rows = [...this.#rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
    await client.query(
      `INSERT INTO usage_rollup AS u (interval, dimension, bucket, key, label, requests, prompt_tokens,
            completion_tokens, total_tokens)
          SELECT interval, dimension, bucket, key, label, requests, prompt_tokens, completion_tokens, total_tokens
          FROM jsonb_populate_recordset(NULL::usage_rollup, $1::jsonb)
        ON CONFLICT (interval, dimension, bucket, key) DO UPDATE SET
          label = coalesce(EXCLUDED.label, u.label),
          requests = u.requests + EXCLUDED.requests,
          prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
          completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
          total_tokens = u.total_tokens + EXCLUDED.total_tokens`,
      [JSON.stringify(rows)],
    );
  }
}
