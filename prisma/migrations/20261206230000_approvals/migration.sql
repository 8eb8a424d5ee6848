-- Just-in-time human approvals (issue 15, docs/approvals.md). Replaces the
-- placeholder table of the first migration, which nothing ever wrote: an
-- approval is opened while its request is refused, before the request's
-- session is stored (the audit worker stores it later), so it cannot hang off
-- a session row. Sessions name their approval in `details` (hash-chained);
-- the approval names the sessions by id.
DROP TABLE "approvals";
DROP TYPE "ApprovalStatus";

-- CreateEnum
CREATE TYPE "ApprovalStatus" AS ENUM ('pending', 'approved', 'denied', 'expired');

-- CreateEnum
CREATE TYPE "ApprovalGrantKind" AS ENUM ('request', 'window');

-- AlterEnum: decisions and grants travel to gateways on the configuration stream.
ALTER TYPE "ConfigEntity" ADD VALUE 'approval';

-- CreateTable
CREATE TABLE "approvals" (
    "id" UUID NOT NULL,
    "status" "ApprovalStatus" NOT NULL DEFAULT 'pending',
    -- Who asked: the gateway's fixed-length subject key (what grants match on) and the identity as recorded.
    "subject_key" VARCHAR(64) NOT NULL,
    "subject_id" VARCHAR(256) NOT NULL,
    "subject_email" VARCHAR(320),
    "subject_groups" TEXT[],
    "auth_method" VARCHAR(16) NOT NULL,
    "issuer" VARCHAR(1024),
    "api_key_id" UUID,
    -- What for.
    "connection" VARCHAR(63) NOT NULL,
    "model" VARCHAR(256) NOT NULL,
    "operation" VARCHAR(32) NOT NULL,
    -- Why: the policy and its rule (null: the grant itself needs approval). No foreign key:
    -- a deleted policy's approvals stay in the trail.
    "policy_id" UUID NOT NULL,
    "policy_name" VARCHAR(128) NOT NULL,
    "rule" INTEGER,
    "field" VARCHAR(300) NOT NULL DEFAULT '',
    "reason" VARCHAR(1024) NOT NULL,
    "body_sha256" CHAR(64) NOT NULL,
    "prompt" TEXT NOT NULL,
    "prompt_truncated" BOOLEAN NOT NULL DEFAULT false,
    -- Identical pending requests share one approval: at most one pending row per key.
    "dedupe_key" CHAR(64) NOT NULL,
    -- The policy's approval settings when the approval was opened.
    "approver_groups" TEXT[],
    "min_approvals" INTEGER NOT NULL,
    "grant_kind" "ApprovalGrantKind" NOT NULL,
    "window_minutes" INTEGER,
    "request_session_id" VARCHAR(64) NOT NULL,
    "gateway_id" VARCHAR(128) NOT NULL,
    "requested_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "decided_at" TIMESTAMPTZ(3),
    -- The grant an approval gives: until when, and (request grants) the one request that used it.
    "grant_expires_at" TIMESTAMPTZ(3),
    "used_at" TIMESTAMPTZ(3),
    "used_session_id" VARCHAR(64),
    -- A grant withdrawn before its end (key revoked, policy changed or disabled).
    "voided_at" TIMESTAMPTZ(3),
    "void_reason" VARCHAR(256),

    CONSTRAINT "approvals_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "approval_votes" (
    "approval_id" UUID NOT NULL,
    "approver_id" VARCHAR(256) NOT NULL,
    "approver_issuer" VARCHAR(1024) NOT NULL DEFAULT '',
    "approver_email" VARCHAR(320),
    "decision" VARCHAR(8) NOT NULL,
    "comment" VARCHAR(1024),
    "decided_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "approval_votes_pkey" PRIMARY KEY ("approval_id", "approver_id", "approver_issuer"),
    CONSTRAINT "approval_votes_decision_check" CHECK ("decision" IN ('approve', 'deny'))
);

-- CreateIndex
CREATE UNIQUE INDEX "approvals_pending_dedupe_key" ON "approvals"("dedupe_key") WHERE "status" = 'pending';

-- CreateIndex
CREATE INDEX "approvals_status_requested_at_idx" ON "approvals"("status", "requested_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "approvals_requested_at_idx" ON "approvals"("requested_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "approvals_subject_key_status_idx" ON "approvals"("subject_key", "status");

-- CreateIndex
CREATE INDEX "approvals_policy_id_idx" ON "approvals"("policy_id");

-- CreateIndex
CREATE INDEX "approvals_api_key_id_idx" ON "approvals"("api_key_id");

-- AddForeignKey
ALTER TABLE "approval_votes" ADD CONSTRAINT "approval_votes_approval_id_fkey" FOREIGN KEY ("approval_id") REFERENCES "approvals"("id") ON DELETE CASCADE ON UPDATE CASCADE;
