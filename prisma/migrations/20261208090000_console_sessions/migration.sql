-- Web console sign-in (docs/console-auth.md). Both tables hold only hashes of
-- what the browser's cookies carry: a copy of the database cannot be turned
-- into a signed-in browser.

-- A signed-in console: the cookie holds a 32-byte random secret, this row its
-- SHA-256. The principal is the one the API's authenticator returned at
-- sign-in (roles included), trusted until expires_at. Sessions opened with the
-- bootstrap admin token keep that token's SHA-256, so rotating the token ends
-- them.
CREATE TABLE "console_sessions" (
    "id_hash" CHAR(64) NOT NULL,
    "principal" JSONB NOT NULL,
    "admin_token_hash" CHAR(64),
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "console_sessions_pkey" PRIMARY KEY ("id_hash")
);

CREATE INDEX "console_sessions_expires_at_idx" ON "console_sessions"("expires_at");

-- A sign-in at the identity provider in progress (authorization code flow):
-- what the callback must check, keyed by the SHA-256 of the random id in the
-- short-lived login cookie. Consumed by the callback; ten minutes at most.
CREATE TABLE "console_logins" (
    "id_hash" CHAR(64) NOT NULL,
    "state" VARCHAR(128) NOT NULL,
    "nonce" VARCHAR(128) NOT NULL,
    "code_verifier" VARCHAR(128) NOT NULL,
    "return_to" VARCHAR(2048) NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "console_logins_pkey" PRIMARY KEY ("id_hash")
);

CREATE INDEX "console_logins_expires_at_idx" ON "console_logins"("expires_at");
