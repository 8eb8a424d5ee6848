-- CreateEnum
CREATE TYPE "Protocol" AS ENUM ('openai', 'ollama', 'tgi', 'http');

-- CreateEnum
CREATE TYPE "Decision" AS ENUM ('allowed', 'masked', 'blocked', 'approval_required', 'approved', 'denied', 'rate_limited', 'error');

-- CreateEnum
CREATE TYPE "ApprovalStatus" AS ENUM ('pending', 'approved', 'denied', 'expired');

-- CreateTable
CREATE TABLE "connections" (
    "id" UUID NOT NULL,
    "name" VARCHAR(63) NOT NULL,
    "protocol" "Protocol" NOT NULL,
    "models" TEXT[],
    "description" VARCHAR(1024),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "connections_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "agents" (
    "id" UUID NOT NULL,
    "connection_id" UUID NOT NULL,
    "name" VARCHAR(63) NOT NULL,
    "token_hash" CHAR(64) NOT NULL,
    "token_prefix" VARCHAR(16) NOT NULL,
    "version" VARCHAR(64),
    "last_seen_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "agents_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "groups" TEXT[],
    "key_hash" CHAR(64) NOT NULL,
    "key_prefix" VARCHAR(16) NOT NULL,
    "expires_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "created_by" VARCHAR(256) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "policies" (
    "id" UUID NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "description" VARCHAR(1024),
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "definition" JSONB NOT NULL,
    "revision" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "policies_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "sessions" (
    "id" VARCHAR(64) NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL,
    "first_byte_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "subject_id" VARCHAR(256),
    "subject_email" VARCHAR(320),
    "subject_groups" TEXT[],
    "auth_method" VARCHAR(32),
    "client_ip" VARCHAR(64),
    "user_agent" VARCHAR(512),
    "connection" VARCHAR(63),
    "model" VARCHAR(256),
    "agent_id" UUID,
    "endpoint" VARCHAR(512) NOT NULL,
    "method" VARCHAR(16) NOT NULL,
    "decision" "Decision" NOT NULL,
    "policy_ids" TEXT[],
    "reason" VARCHAR(1024),
    "response_status" INTEGER,
    "latency_ms" INTEGER,
    "ttfb_ms" INTEGER,
    "details" JSONB,
    "hash" CHAR(64),
    "prev_hash" CHAR(64),

    CONSTRAINT "sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "session_contents" (
    "session_id" VARCHAR(64) NOT NULL,
    "request_body" TEXT,
    "response_body" TEXT,
    "truncated" BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "session_contents_pkey" PRIMARY KEY ("session_id")
);

-- CreateTable
CREATE TABLE "session_events" (
    "session_id" VARCHAR(64) NOT NULL,
    "seq" INTEGER NOT NULL,
    "offset_ms" INTEGER NOT NULL,
    "data" TEXT NOT NULL,

    CONSTRAINT "session_events_pkey" PRIMARY KEY ("session_id","seq")
);

-- CreateTable
CREATE TABLE "approvals" (
    "id" UUID NOT NULL,
    "session_id" VARCHAR(64) NOT NULL,
    "status" "ApprovalStatus" NOT NULL DEFAULT 'pending',
    "subject_id" VARCHAR(256) NOT NULL,
    "summary" JSONB NOT NULL,
    "requested_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "decided_at" TIMESTAMPTZ(3),
    "decided_by" VARCHAR(256),
    "comment" VARCHAR(1024),

    CONSTRAINT "approvals_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "admin_audit_log" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" VARCHAR(256) NOT NULL,
    "actor_type" VARCHAR(32) NOT NULL,
    "action" VARCHAR(64) NOT NULL,
    "target_type" VARCHAR(32) NOT NULL,
    "target_id" VARCHAR(128) NOT NULL,
    "before" JSONB,
    "after" JSONB,
    "request_id" VARCHAR(128),

    CONSTRAINT "admin_audit_log_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "connections_name_key" ON "connections"("name");

-- CreateIndex
CREATE UNIQUE INDEX "agents_token_hash_key" ON "agents"("token_hash");

-- CreateIndex
CREATE INDEX "agents_connection_id_idx" ON "agents"("connection_id");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"("key_hash");

-- CreateIndex
CREATE UNIQUE INDEX "policies_name_key" ON "policies"("name");

-- CreateIndex
CREATE INDEX "sessions_received_at_id_idx" ON "sessions"("received_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "sessions_subject_id_received_at_idx" ON "sessions"("subject_id", "received_at" DESC);

-- CreateIndex
CREATE INDEX "sessions_connection_received_at_idx" ON "sessions"("connection", "received_at" DESC);

-- CreateIndex
CREATE INDEX "sessions_decision_received_at_idx" ON "sessions"("decision", "received_at" DESC);

-- CreateIndex
CREATE INDEX "approvals_status_requested_at_idx" ON "approvals"("status", "requested_at");

-- CreateIndex
CREATE INDEX "approvals_session_id_idx" ON "approvals"("session_id");

-- CreateIndex
CREATE INDEX "admin_audit_log_at_idx" ON "admin_audit_log"("at" DESC);

-- CreateIndex
CREATE INDEX "admin_audit_log_target_type_target_id_idx" ON "admin_audit_log"("target_type", "target_id");

-- AddForeignKey
ALTER TABLE "agents" ADD CONSTRAINT "agents_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "session_contents" ADD CONSTRAINT "session_contents_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "session_events" ADD CONSTRAINT "session_events_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "approvals" ADD CONSTRAINT "approvals_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;
