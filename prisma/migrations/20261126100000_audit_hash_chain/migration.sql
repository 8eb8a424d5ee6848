-- The audit hash chain (docs/audit.md, "Tamper evidence") and retention
-- checkpoints (docs/audit.md, "Retention").

-- CreateEnum
CREATE TYPE "AuditCheckpointKind" AS ENUM ('chain', 'content');

-- AlterTable
-- Position in the chain and the digest of the content and events. Nullable:
-- sessions stored before this migration are outside the chain.
ALTER TABLE "sessions" ADD COLUMN "chain_seq" BIGINT,
ADD COLUMN "content_digest" CHAR(64);

-- CreateTable
CREATE TABLE "audit_chain_head" (
    "id" INTEGER NOT NULL,
    "chain_seq" BIGINT NOT NULL,
    "hash" CHAR(64) NOT NULL,

    CONSTRAINT "audit_chain_head_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_checkpoints" (
    "id" BIGSERIAL NOT NULL,
    "kind" "AuditCheckpointKind" NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" VARCHAR(128) NOT NULL,
    "chain_seq" BIGINT,
    "hash" CHAR(64),
    "purged_before" TIMESTAMPTZ(3),

    CONSTRAINT "audit_checkpoints_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "sessions_chain_seq_key" ON "sessions"("chain_seq");

-- CreateIndex
CREATE INDEX "audit_checkpoints_kind_chain_seq_idx" ON "audit_checkpoints"("kind", "chain_seq" DESC);

-- The one head row: the chain starts empty, at sequence 0 with the genesis
-- hash (64 zeros), which is the prev_hash of the first chained session.
INSERT INTO "audit_chain_head" ("id", "chain_seq", "hash")
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
