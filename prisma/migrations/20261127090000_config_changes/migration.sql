-- Versioned configuration changes (issue 14): every change gateways enforce
-- gets a revision, recorded in the transaction that makes it, so the
-- control plane can send gateways deltas instead of full snapshots.

-- CreateEnum
CREATE TYPE "ConfigEntity" AS ENUM ('connection', 'agent', 'api_key', 'policy');

-- CreateTable
CREATE TABLE "config_head" (
    "id" INTEGER NOT NULL,
    "epoch" UUID,
    "revision" BIGINT NOT NULL,
    "pruned_through" BIGINT NOT NULL,

    CONSTRAINT "config_head_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "config_changes" (
    "revision" BIGINT NOT NULL,
    "kind" "ConfigEntity" NOT NULL,
    "entity_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "config_changes_pkey" PRIMARY KEY ("revision","kind","entity_id")
);

-- The one head row. Its epoch is left null: the first control plane to start
-- on this database draws it, so databases cloned from a migrated template
-- (or created by the same migration elsewhere) never share one.
INSERT INTO "config_head" ("id", "epoch", "revision", "pruned_through") VALUES (1, NULL, 0, 0);
