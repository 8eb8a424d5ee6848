-- The listing's `q` searches a streamed answer by its text, assembled from
-- its events at ingest (packages/audit, answerSearchText), instead of by the
-- stream as stored: a phrase split across two chunks is found, and the
-- trigram index no longer holds every chunk's JSON wrapper, which was half
-- of Postgres' work per streamed session (docs/benchmarks.md, issue 16).
--
-- Sessions stored before this keep a null response_text and stay searchable
-- by their body: the body's index now covers exactly those rows (and any
-- answer that is not a stream), so nothing needs rewriting. Rebuilding that
-- index reads every stored body once; on a large table, run this migration
-- in a quiet hour.
--
-- Rolled back, an older control plane runs on this schema unchanged: it
-- stores no response_text (its rows stay under the body's index) and its
-- `q` still finds newer streamed sessions by their body, only without an
-- index for them.
ALTER TABLE "session_contents" ADD COLUMN "response_text" TEXT;

DROP INDEX "session_contents_response_body_idx";
CREATE INDEX "session_contents_response_body_idx" ON "session_contents" USING GIN ("response_body" gin_trgm_ops)
  WHERE "response_text" IS NULL;
CREATE INDEX "session_contents_response_text_idx" ON "session_contents" USING GIN ("response_text" gin_trgm_ops);
