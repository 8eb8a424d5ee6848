import { createHash, randomBytes } from "node:crypto";
import type { Database } from "@modelgate/db";

/**
 * Sign-ins at the identity provider in progress: what the callback must
 * check (state, nonce, PKCE verifier) and where the person goes afterwards.
 * Kept server-side, keyed by the SHA-256 of a random id that only the
 * browser's short-lived login cookie holds, so the callback accepts a code
 * only in the browser that started the sign-in, and only once.
 */

/** How long a person has at the identity provider. */
export const LOGIN_LIFETIME_MS = 10 * 60_000;

export interface PendingLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
}

export interface PendingLogins {
  /** Stores a pending login; resolves with the id for the login cookie. */
  begin(login: PendingLogin): Promise<string>;
  /**
   * Takes the pending login of a cookie id out of the store: each is used
   * at most once, whatever the callback then decides. Undefined when there
   * is none or it expired.
   */
  consume(id: string): Promise<PendingLogin | undefined>;
}

interface ConsumedRow {
  state: string;
  nonce: string;
  code_verifier: string;
  return_to: string;
  expires_at: Date;
}

const idHashOf = (id: string) => createHash("sha256").update(id, "utf8").digest("hex");

export function createPendingLogins({ db }: { db: Database }): PendingLogins {
  return {
    async begin(login) {
      const id = randomBytes(32).toString("base64url");
      await db.$transaction([
        db.consoleLogin.deleteMany({ where: { expiresAt: { lt: new Date() } } }),
        db.consoleLogin.create({
          data: { idHash: idHashOf(id), ...login, expiresAt: new Date(Date.now() + LOGIN_LIFETIME_MS) },
        }),
      ]);
      return id;
    },

    async consume(id) {
      // One DELETE … RETURNING: two callbacks racing with one cookie cannot both get it.
      const [row] = await db.$queryRaw<ConsumedRow[]>`
        DELETE FROM "console_logins" WHERE "id_hash" = ${idHashOf(id)}
        RETURNING "state", "nonce", "code_verifier", "return_to", "expires_at"`;
      if (!row || row.expires_at <= new Date()) return undefined;
      return { state: row.state, nonce: row.nonce, codeVerifier: row.code_verifier, returnTo: row.return_to };
    },
  };
}
