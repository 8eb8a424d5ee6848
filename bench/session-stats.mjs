#!/usr/bin/env node
// The Overview's statistics (GET /api/v1/sessions/stats) at scale: seeds a
// scratch database in SQL (generate_series), then times the one statistics
// query per window through the control plane's own code, and prints
// EXPLAIN (ANALYZE, BUFFERS) of each.
//
// Runs the built apps: `scripts/with-node.sh npx turbo run build` first, then
// `npm run bench:stats`. Environment (empty counts as unset):
//   BENCH_SESSIONS        sessions to seed (default 600000)
//   BENCH_DAYS            over how many days before NOW, evenly (default 3: a day window holds a third)
//   BENCH_REQUESTS        timed queries per window (default 30, after 3 untimed)
//   BENCH_KEEP_DATABASE=true  keep the seeded database (its name is printed)
import os from "node:os";
import pg from "pg";
import { createSessionService } from "../apps/control-plane/dist/features/sessions/service.js";
import { statsQuery, statsWindow } from "../apps/control-plane/dist/features/sessions/stats.js";
import { createDatabaseClient } from "../packages/db/dist/index.js";
import { createTestDatabase } from "../packages/db/dist/testing.js";
import { median, percentile } from "./lib/stats.mjs";

const out = (text) => process.stdout.write(`${text}\n`);
const env = (name) => process.env[name]?.trim() || undefined;
const SESSIONS = Number(env("BENCH_SESSIONS") ?? 600_000);
const DAYS = Number(env("BENCH_DAYS") ?? 3);
const REQUESTS = Number(env("BENCH_REQUESTS") ?? 30);
const KEEP = env("BENCH_KEEP_DATABASE") === "true";
/** The clock the windows end at; the seeded sessions end here too. */
const NOW = new Date("2026-12-07T06:00:00.000Z");

/**
 * Decisions as in bench/session-listing.mjs (90 % allowed, 5 % masked, 2 %
 * blocked, 1 % rate_limited, 0.5 % each of the rest); each refusal and
 * failure with the error code the gateway records, masked answers with
 * their counts; 30 connections, skewed; unauthenticated refusals without one.
 */
const SEED = `
INSERT INTO sessions (id, received_at, finished_at, subject_id, subject_groups, auth_method, connection, model,
    endpoint, method, decision, policy_ids, reason, response_status, latency_ms, details)
SELECT md5('session-' || i)::uuid::text, at, at + interval '800 ms',
       CASE WHEN code = 'unauthenticated' THEN NULL ELSE 'user-' || (i % 2000) END,
       '{}'::text[], CASE WHEN code = 'unauthenticated' THEN NULL ELSE 'oidc' END,
       CASE WHEN code = 'unauthenticated' THEN NULL ELSE 'conn-' || c END,
       CASE WHEN code = 'unauthenticated' THEN NULL ELSE 'model-' || c END,
       '/v1/chat/completions', 'POST', decision::"Decision", '{}'::text[],
       CASE WHEN code IS NOT NULL THEN 'policy ' || md5(i::text) || ': ' || code END,
       CASE WHEN code IS NULL THEN 200 WHEN decision = 'error' THEN 502 WHEN decision = 'rate_limited' THEN 429 ELSE 403 END,
       800,
       jsonb_strip_nulls(jsonb_build_object(
         'recordVersion', 1, 'gatewayId', 'gw-' || (i % 3), 'capped', '[]'::jsonb,
         'usage', jsonb_build_object('prompt_tokens', 120, 'completion_tokens', 300),
         'maskedCounts', CASE WHEN decision = 'masked' THEN jsonb_build_object('EMAIL', 1 + i % 3, 'PERSON', i % 2) END,
         'error', CASE WHEN code IS NOT NULL THEN jsonb_build_object('code', code, 'message', replace(code, '_', ' ')) END))
FROM (
  SELECT i, c, at, decision,
         CASE decision
           WHEN 'blocked' THEN 'prompt_blocked'
           WHEN 'rate_limited' THEN 'rate_limited'
           WHEN 'approval_required' THEN 'approval_required'
           WHEN 'error' THEN (ARRAY['upstream_error', 'upstream_timeout', 'no_agent_available'])[1 + i % 3]
           WHEN 'denied' THEN (ARRAY['unauthenticated', 'model_not_allowed', 'operation_not_allowed',
             'parameter_limit_exceeded', 'approval_denied', 'token_expired', 'payload_too_large'])[1 + i % 7]
         END AS code
  FROM (
    SELECT i,
           floor(30 * power(random(), 1.4))::int AS c,
           $2::timestamptz - (($1 - i + random()) / $1) * ($3 * interval '1 day') AS at,
           CASE WHEN d < 0.90 THEN 'allowed' WHEN d < 0.95 THEN 'masked' WHEN d < 0.97 THEN 'blocked'
                WHEN d < 0.98 THEN 'rate_limited' WHEN d < 0.985 THEN 'denied' WHEN d < 0.99 THEN 'error'
                WHEN d < 0.995 THEN 'approval_required' ELSE 'approved' END AS decision
    FROM (SELECT i, random() AS d FROM generate_series(1, $1) AS i) AS numbered
  ) AS drawn
) AS g`;

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
    await client.query(SEED, [SESSIONS, NOW.toISOString(), DAYS]);
    await client.query("VACUUM ANALYZE sessions");
    const { rows } = await client.query(
      "SELECT version() AS version, pg_size_pretty(pg_total_relation_size('sessions')) AS size",
    );
    out(
      `${SESSIONS} sessions seeded in ${((performance.now() - seeded) / 1000).toFixed(1)} s; sessions ${rows[0].size}`,
    );
    out(rows[0].version);

    const service = createSessionService({ db, now: () => NOW });
    for (const window of ["hour", "day"]) {
      for (let warm = 0; warm < 3; warm += 1) await service.stats({ window });
      const times = [];
      let answer;
      for (let request = 0; request < REQUESTS; request += 1) {
        const at = performance.now();
        answer = await service.stats({ window });
        times.push(performance.now() - at);
      }
      const sorted = times.sort((a, b) => a - b);
      out(
        `\n${window}: ${answer.totals.requests} sessions in the window, ${answer.buckets.length} buckets; ` +
          `p50 ${median(sorted).toFixed(1)} ms, p95 ${percentile(sorted, 95).toFixed(1)} ms, max ${sorted.at(-1).toFixed(1)} ms`,
      );
      const query = statsQuery(statsWindow(window, NOW));
      const plan = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${query.text}`, query.values);
      for (const line of plan.rows) out(`  ${line["QUERY PLAN"]}`);
    }
  } finally {
    await client.end();
    await db.$disconnect();
    if (!KEEP) await database.drop();
  }
}

await main();
