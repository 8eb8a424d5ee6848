-- SIEM export and alerts (issue 6): exporters, alert rules and the alerts they raise.

-- CreateEnum
CREATE TYPE "ExporterKind" AS ENUM ('webhook', 'syslog');

-- CreateEnum
CREATE TYPE "AlertKind" AS ENUM ('blocked_repeated', 'approval_requested', 'volume_spike');

-- CreateTable
CREATE TABLE "exporters" (
    "id" UUID NOT NULL,
    "name" VARCHAR(63) NOT NULL,
    "kind" "ExporterKind" NOT NULL,
    "description" VARCHAR(1024),
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "event_types" TEXT[],
    "decisions" TEXT[],
    "config" JSONB NOT NULL,
    "secret" VARCHAR(1024),
    "delivered_count" BIGINT NOT NULL,
    "failed_count" BIGINT NOT NULL,
    "last_success_at" TIMESTAMPTZ(3),
    "last_failure_at" TIMESTAMPTZ(3),
    "last_error" VARCHAR(1024),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "exporters_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "alert_rules" (
    "id" UUID NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "kind" "AlertKind" NOT NULL,
    "description" VARCHAR(1024),
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "params" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "alert_rules_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "alerts" (
    "id" UUID NOT NULL,
    "rule_id" UUID,
    "rule_name" VARCHAR(128) NOT NULL,
    "kind" "AlertKind" NOT NULL,
    "subject" VARCHAR(256),
    "session_ids" TEXT[],
    "details" JSONB NOT NULL,
    "triggered_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "alerts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "exporters_name_key" ON "exporters"("name");

-- CreateIndex
CREATE UNIQUE INDEX "alert_rules_name_key" ON "alert_rules"("name");

-- CreateIndex
CREATE INDEX "alerts_created_at_id_idx" ON "alerts"("created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "alerts_rule_id_subject_triggered_at_idx" ON "alerts"("rule_id", "subject", "triggered_at" DESC);

-- CreateIndex
CREATE INDEX "alerts_subject_created_at_idx" ON "alerts"("subject", "created_at" DESC);

-- AddForeignKey
ALTER TABLE "alerts" ADD CONSTRAINT "alerts_rule_id_fkey" FOREIGN KEY ("rule_id") REFERENCES "alert_rules"("id") ON DELETE SET NULL ON UPDATE CASCADE;
