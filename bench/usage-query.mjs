#!/usr/bin/env node
// GET /api/v1/usage at scale: seeds a scratch database's usage rollup in SQL
// (generate_series) as 10 million sessions over 90 days would leave it, then
// times every groupBy × interval over the last 30 and 90 days through the
// control plane's own service, and prints EXPLAIN (ANALYZE, BUFFERS) of the
// slowest combination's two statements.
//
// Runs the built apps: `scripts/with-node.sh npx turbo run build` first, then
// `npm run bench:usage`. Environment (empty counts as unset):
//   BENCH_SESSIONS   sessions the rollup stands for (default 10000000)
//   BENCH_SUBJECTS   distinct subjects (default 500; each active in 60 % of the hours)
//   BENCH_GROUPS     distinct groups, each subject in two (default 40)
//   BENCH_MODELS     models, two per connection (default 12)
//   BENCH_REQUESTS   timed queries per combination (default 20, after 2 untimed)
//   BENCH_LIMIT      groups per answer (default 20, the API's default)
//   BENCH_KEEP_DATABASE=true  keep the seeded database (its name is printed)
import os from "node:os";
import pg from "pg";
import { BUCKETS_SQL, createUsageService, RANK_SQL } from "../apps/control-plane/dist/features/usage/service.js";
import { createDatabaseClient } from "../packages/db/dist/index.js";
import { createTestDatabase } from "../packages/db/dist/testing.js";
import { median, percentile } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const env = (name) => process.env[name]?.trim() || undefined;
const SESSIONS = Number(env("BENCH_SESSIONS") ?? 10_000_000);
const SUBJECTS = Number(env("BENCH_SUBJECTS") ?? 500);
const GROUPS = Number(env("BENCH_GROUPS") ?? 40);
const MODELS = Number(env("BENCH_MODELS") ?? 12);
const REQUESTS = Number(env("BENCH_REQUESTS") ?? 20);
const LIMIT = Number(env("BENCH_LIMIT") ?? 20);
const KEEP = env("BENCH_KEEP_DATABASE") === "true";
const DAYS = 90;
const ACTIVE = 0.6;
/** The range ends here; the seeded rollup covers the 90 days before it. */
const NOW = new Date("2026-12-07T00:00:00.000Z");

/**
 * Per hour: each subject's row with probability ACTIVE, requests drawn so
 * that all rows add up to about SESSIONS; every group, connection and model
 * each hour. Days are the sums of their hours, as the store keeps them.
 * Tokens: about 400 prompt and 250 completion tokens per request.
 */
const SEED = `
WITH hours AS (
  SELECT $1::timestamptz - (h * interval '1 hour') AS bucket FROM generate_series(1, $2::int * 24) AS h
), subject_hours AS (
  SELECT 'subject'::"UsageDimension" AS dimension, bucket, 'user-' || s AS key, 'User ' || s AS label,
         1 + floor(random() * (2 * $3::float8 - 1))::bigint AS requests
  FROM hours, generate_series(1, $4::int) AS s WHERE random() < $5::float8
), per_key AS (
  SELECT * FROM subject_hours
  UNION ALL
  SELECT 'group', bucket, 'group-' || g, NULL, 1 + floor(random() * (2 * $3::float8 * $4::int * $5::float8 * 2 / $6::int))::bigint
  FROM hours, generate_series(1, $6::int) AS g
  UNION ALL
  SELECT 'connection', bucket, 'conn-' || (m / 2), NULL, 1 + floor(random() * (2 * $3::float8 * $4::int * $5::float8 / ($7::int / 2)))::bigint
  FROM hours, generate_series(0, $7::int - 1, 2) AS m
  UNION ALL
  SELECT 'model', bucket, 'model-' || m, NULL, 1 + floor(random() * (2 * $3::float8 * $4::int * $5::float8 / $7::int))::bigint
  FROM hours, generate_series(0, $7::int - 1) AS m
), hourly AS (
  INSERT INTO usage_rollup (interval, dimension, bucket, key, label, requests, prompt_tokens, completion_tokens, total_tokens)
  SELECT 'hour', dimension, bucket, key, label, requests, requests * 400, requests * 250, requests * 650 FROM per_key
  RETURNING dimension, bucket, key, label, requests, prompt_tokens, completion_tokens, total_tokens
)
INSERT INTO usage_rollup (interval, dimension, bucket, key, label, requests, prompt_tokens, completion_tokens, total_tokens)
SELECT 'day', dimension, date_trunc('day', bucket, 'UTC'), key, max(label), sum(requests), sum(prompt_tokens),
       sum(completion_tokens), sum(total_tokens)
FROM hourly GROUP BY dimension, date_trunc('day', bucket, 'UTC'), key`;

async function main() {
  const database = await createTestDatabase();
  out(`database ${database.name}${KEEP ? " (kept: BENCH_KEEP_DATABASE=true)" : ""}`);
  out(
    `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), load ${os.loadavg()[0]?.toFixed(1)}`,
  );
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const db = createDatabaseClient({ databaseUrl: database.url, maxConnections: 2 });
  try {
    const seeded = performance.now();
    // Mean requests per subject-hour row, so that the subjects' rows add up to SESSIONS.
    const perRow = SESSIONS / (DAYS * 24 * SUBJECTS * ACTIVE);
    await client.query(SEED, [NOW.toISOString(), DAYS, perRow, SUBJECTS, ACTIVE, GROUPS, MODELS]);
    await client.query("VACUUM ANALYZE usage_rollup");
    const { rows } = await client.query(`
      SELECT version() AS version, pg_size_pretty(pg_total_relation_size('usage_rollup')) AS size,
        (SELECT count(*) FROM usage_rollup) AS rows,
        (SELECT sum(requests) FROM usage_rollup WHERE interval = 'hour' AND dimension = 'subject') AS sessions`);
    out(
      `rollup of ${rows[0].sessions} sessions (${SUBJECTS} subjects, ${GROUPS} groups, ${MODELS} models, ${DAYS} days): ` +
        `${rows[0].rows} rows, ${rows[0].size}, seeded in ${((performance.now() - seeded) / 1000).toFixed(1)} s`,
    );
    out(rows[0].version);

    const service = createUsageService({ db });
    out(`\n| groupBy | interval | range | groups | buckets | p50 ms | p95 ms | max ms |`);
    out(`| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |`);
    let slowest = { p95: 0, query: undefined };
    for (const groupBy of ["subject", "group", "connection", "model"]) {
      for (const interval of ["hour", "day"]) {
        for (const days of [30, 90]) {
          const query = {
            groupBy,
            interval,
            limit: LIMIT,
            from: new Date(NOW.getTime() - days * 86_400_000).toISOString(),
            to: NOW.toISOString(),
          };
          for (let warm = 0; warm < 2; warm += 1) await service.query(query);
          const times = [];
          let answer;
          for (let request = 0; request < REQUESTS; request += 1) {
            const at = performance.now();
            answer = await service.query(query);
            times.push(performance.now() - at);
          }
          const sorted = times.sort((a, b) => a - b);
          const p95 = percentile(sorted, 95);
          if (p95 > slowest.p95) slowest = { p95, query };
          const buckets = answer.groups.reduce((sum, group) => sum + group.buckets.length, 0);
          out(
            `| ${groupBy} | ${interval} | ${days} d | ${answer.groups.length} | ${buckets} | ` +
              `${median(sorted).toFixed(1)} | ${p95.toFixed(1)} | ${sorted.at(-1).toFixed(1)} |`,
          );
        }
      }
    }
    out(`\nslowest: ${JSON.stringify(slowest.query)}`);
    const { groupBy, interval, from, to } = slowest.query;
    // The same two statements, with the bounds the service computes for a whole-day range.
    const ranked = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${RANK_SQL}`, [groupBy, from, to, from, to, LIMIT]);
    for (const line of ranked.rows) out(`  ${line["QUERY PLAN"]}`);
    const keys = (await client.query(RANK_SQL, [groupBy, from, to, from, to, LIMIT])).rows.map((row) => row.key);
    const plan = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${BUCKETS_SQL}`, [interval, groupBy, keys, from, to]);
    for (const line of plan.rows) out(`  ${line["QUERY PLAN"]}`);
  } finally {
    await client.end();
    await db.$disconnect();
    if (!KEEP) await database.drop();
  }
}

await main();
