import { createHash, randomBytes } from "node:crypto";
import { hashSecret, secretMatchesHash } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import { z } from "zod";
import type { Principal } from "../http/auth.js";
import { csrfTokenFor } from "./csrf.js";

/**
 * Console sessions, server-side in Postgres. The browser holds a 32-byte
 * random secret in an HttpOnly cookie; the table holds its SHA-256, so a
 * copy of the table signs nobody in. Ending a session is deleting its row.
 *
 * The principal is stored as the authenticator returned it at sign-in,
 * roles included, and trusted until the session expires: a person removed
 * from a group keeps that group's role in the console until then (at most
 * MODELGATE_CONSOLE_SESSION_HOURS, and never past their access token's
 * expiry). Sessions opened with the bootstrap admin token also keep the
 * token's hash, checked on every use, so rotating MODELGATE_ADMIN_TOKEN ends
 * them at once.
 */

/** What a request without a live session is told. */
export const SESSION_ABSENT = "the console session expired or does not exist; sign in again";

interface ConsoleSession {
  principal: Principal;
  csrfToken: string;
  expiresAt: Date;
}

interface OpenedSession extends ConsoleSession {
  /** For the cookie only: never stored, never logged. */
  secret: string;
}

export interface ConsoleSessions {
  /** Opens a session until `expiresAt`, cut to the configured lifetime. */
  open(principal: Principal, expiresAt?: Date): Promise<OpenedSession>;
  /** The live session of a cookie secret, or undefined (unknown, expired or its admin token rotated). */
  find(secret: string): Promise<ConsoleSession | undefined>;
  /** Ends the session of a cookie secret; nothing happens when there is none. */
  end(secret: string): Promise<void>;
}

export interface ConsoleSessionOptions {
  db: Database;
  /** MODELGATE_CONSOLE_SESSION_HOURS: the longest a session lasts. */
  sessionHours: number;
  /** The current bootstrap admin token: sessions opened with another one are over. */
  adminToken: string | undefined;
}

const storedPrincipal = z.object({
  id: z.string(),
  kind: z.enum(["admin_token", "oidc"]),
  roles: z.array(z.enum(["admin", "auditor", "approver"])),
  groups: z.array(z.string()),
  email: z.string().optional(),
  issuer: z.string().optional(),
});

type StoredPrincipal = z.infer<typeof storedPrincipal>;

function toStored(principal: Principal): StoredPrincipal {
  return {
    id: principal.id,
    kind: principal.kind,
    roles: [...principal.roles],
    groups: [...principal.groups],
    ...(principal.email !== undefined ? { email: principal.email } : {}),
    ...(principal.issuer !== undefined ? { issuer: principal.issuer } : {}),
  };
}

function fromStored(stored: StoredPrincipal): Principal {
  return { ...stored, roles: new Set(stored.roles) };
}

const idHashOf = (secret: string) => createHash("sha256").update(secret, "utf8").digest("hex");

export function createConsoleSessions({ db, sessionHours, adminToken }: ConsoleSessionOptions): ConsoleSessions {
  const lifetimeMs = sessionHours * 3_600_000;
  return {
    async open(principal, until) {
      const secret = randomBytes(32).toString("base64url");
      const longest = new Date(Date.now() + lifetimeMs);
      const expiresAt = until && until < longest ? until : longest;
      const viaAdminToken = principal.kind === "admin_token";
      if (viaAdminToken && adminToken === undefined) throw new Error("an admin-token session without an admin token");
      // Expired rows go as new ones come: no sweeper to run, and the table
      // holds at most a lifetime's worth of sign-ins.
      await db.$transaction([
        db.consoleSession.deleteMany({ where: { expiresAt: { lt: new Date() } } }),
        db.consoleSession.create({
          data: {
            idHash: idHashOf(secret),
            principal: toStored(principal),
            adminTokenHash: viaAdminToken ? hashSecret(adminToken as string) : null,
            expiresAt,
          },
        }),
      ]);
      return { secret, principal, csrfToken: csrfTokenFor(secret), expiresAt };
    },

    async find(secret) {
      const row = await db.consoleSession.findUnique({ where: { idHash: idHashOf(secret) } });
      if (!row) return undefined;
      const rotated =
        row.adminTokenHash !== null && (adminToken === undefined || !secretMatchesHash(adminToken, row.adminTokenHash));
      if (row.expiresAt <= new Date() || rotated) {
        await db.consoleSession.deleteMany({ where: { idHash: row.idHash } });
        return undefined;
      }
      const principal = storedPrincipal.safeParse(row.principal);
      // A row this code did not write: not a session.
      if (!principal.success) return undefined;
      return { principal: fromStored(principal.data), csrfToken: csrfTokenFor(secret), expiresAt: row.expiresAt };
    },

    async end(secret) {
      await db.consoleSession.deleteMany({ where: { idHash: idHashOf(secret) } });
    },
  };
}
