-- API key rotation (issue 18, docs/control-plane-api.md "API keys"): a key
-- keeps its id, name, groups and the policies that name it, and gets a new
-- secret. The secret it replaces keeps working until previous_key_expires_at
-- (the overlap in which callers move over), then stops: gateways receive the
-- previous hash together with that time and enforce it by their own clock.
-- As with key_hash, only the SHA-256 of the previous secret is stored.
--
-- Nullable and without defaults: existing keys were never rotated, and an
-- older control plane rolled back onto this schema runs unchanged (it never
-- reads the columns, so a key it sees has only its current secret).
ALTER TABLE "api_keys"
    ADD COLUMN "previous_key_hash" CHAR(64),
    ADD COLUMN "previous_key_expires_at" TIMESTAMPTZ(3),
    ADD COLUMN "rotated_at" TIMESTAMPTZ(3);
