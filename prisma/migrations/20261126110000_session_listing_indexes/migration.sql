-- Indexes for listing audit sessions at scale (GET /api/v1/sessions): every
-- filter of the listing is served by an index, measured with 1,000,000
-- sessions by bench/session-listing.mjs (results in docs/benchmarks.md).

-- Trigram indexes make `q` (a case-insensitive substring of either body) an
-- index lookup instead of a scan of every body. pg_trgm ships with Postgres'
-- contrib modules and is a trusted extension (PostgreSQL 13+), so the
-- database owner may create it without superuser rights.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- user= matches the subject id OR the email: both sides need an index for the
-- planner to combine them (BitmapOr) instead of scanning the table.
CREATE INDEX "sessions_subject_email_received_at_idx" ON "sessions"("subject_email", "received_at" DESC);

-- group= is an array containment (subject_groups @> ARRAY[group]).
CREATE INDEX "sessions_subject_groups_idx" ON "sessions" USING GIN ("subject_groups");

-- model= had no index at all.
CREATE INDEX "sessions_model_received_at_idx" ON "sessions"("model", "received_at" DESC);

CREATE INDEX "session_contents_request_body_idx" ON "session_contents" USING GIN ("request_body" gin_trgm_ops);
CREATE INDEX "session_contents_response_body_idx" ON "session_contents" USING GIN ("response_body" gin_trgm_ops);
