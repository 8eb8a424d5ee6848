-- Alerts raised when a quota reaches 80 or 100 % of its budget in a window
-- (reported by the gateways; no alert rule configures them).
ALTER TYPE "AlertKind" ADD VALUE IF NOT EXISTS 'quota_threshold';
