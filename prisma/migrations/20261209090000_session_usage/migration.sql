-- Usage accounting (docs/audit.md, "Usage"): per-session token counts, time
-- to first token and the caller's display name as columns of their own, and
-- the usage rollup that GET /api/v1/usage reads.
--
-- The new session columns are covered by the hash chain from chain version 2
-- on (docs/audit.md, "Tamper evidence"). Sessions stored before keep
-- chain_version 1 and null in every new column: the verifier checks them as
-- they were hashed, and refuses a version-1 session with any of these columns
-- set (a value its hash never covered). Adding nullable columns and a column
-- with a constant default rewrites no row.

-- CreateEnum
CREATE TYPE "UsageDimension" AS ENUM ('subject', 'group', 'connection', 'model');

-- CreateEnum
CREATE TYPE "UsageInterval" AS ENUM ('hour', 'day');

-- AlterTable
ALTER TABLE "sessions" ADD COLUMN "subject_name" VARCHAR(256),
ADD COLUMN "prompt_tokens" INTEGER,
ADD COLUMN "completion_tokens" INTEGER,
ADD COLUMN "total_tokens" INTEGER,
ADD COLUMN "ttft_ms" INTEGER,
ADD COLUMN "chain_version" SMALLINT NOT NULL DEFAULT 1;

-- CreateTable
-- One row per interval (an hour, a UTC day), dimension and key: the
-- sessions of that bucket whose subject, one of whose groups, connection or
-- model is the key ('' when the session had none). Written by the session
-- store in the transaction that inserts the sessions, so it counts each
-- stored session exactly once.
CREATE TABLE "usage_rollup" (
    "interval" "UsageInterval" NOT NULL,
    "dimension" "UsageDimension" NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "key" VARCHAR(320) NOT NULL,
    "label" VARCHAR(320),
    "requests" BIGINT NOT NULL,
    "prompt_tokens" BIGINT NOT NULL,
    "completion_tokens" BIGINT NOT NULL,
    "total_tokens" BIGINT NOT NULL,

    CONSTRAINT "usage_rollup_pkey" PRIMARY KEY ("interval", "dimension", "bucket", "key")
);

-- CreateIndex
CREATE INDEX "usage_rollup_interval_dimension_key_bucket_idx" ON "usage_rollup"("interval", "dimension", "key", "bucket");

-- Backfill: the sessions stored so far, their tokens read from
-- details.usage (where the record kept them before the columns existed).
-- Reads every session once; on a large table run it in a quiet hour.
WITH s AS (
  SELECT received_at, subject_id, subject_email, subject_groups, connection, model,
    CASE WHEN jsonb_typeof(details->'usage'->'prompt_tokens') = 'number'
      THEN (details->'usage'->>'prompt_tokens')::numeric::bigint END AS p,
    CASE WHEN jsonb_typeof(details->'usage'->'completion_tokens') = 'number'
      THEN (details->'usage'->>'completion_tokens')::numeric::bigint END AS c,
    CASE WHEN jsonb_typeof(details->'usage'->'total_tokens') = 'number'
      THEN (details->'usage'->>'total_tokens')::numeric::bigint END AS t
  FROM "sessions"
), keyed AS (
  SELECT 'subject'::"UsageDimension" AS dimension, coalesce(subject_id, '') AS key, subject_email AS label, s.* FROM s
  UNION ALL
  SELECT 'group', g, NULL, s.* FROM s, LATERAL (SELECT DISTINCT unnest(s.subject_groups) AS g) groups
  UNION ALL
  SELECT 'connection', coalesce(connection, ''), NULL, s.* FROM s
  UNION ALL
  SELECT 'model', coalesce(model, ''), NULL, s.* FROM s
), buckets AS (
  SELECT 'hour'::"UsageInterval" AS interval, date_trunc('hour', received_at, 'UTC') AS bucket, keyed.* FROM keyed
  UNION ALL
  SELECT 'day', date_trunc('day', received_at, 'UTC'), keyed.* FROM keyed
)
INSERT INTO "usage_rollup" ("interval", "dimension", "bucket", "key", "label", "requests", "prompt_tokens",
  "completion_tokens", "total_tokens")
SELECT interval, dimension, bucket, left(key, 320), left(max(label), 320), count(*), coalesce(sum(p), 0),
  coalesce(sum(c), 0), coalesce(sum(coalesce(t, p + c)), 0)
FROM buckets
GROUP BY interval, dimension, bucket, left(key, 320);
