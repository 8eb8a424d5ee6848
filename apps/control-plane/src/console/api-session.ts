import { unauthenticated } from "../http/errors.js";
import type { SessionAuthenticator } from "../http/route.js";
import { readCookie, SESSION_COOKIE } from "./cookies.js";
import { isSafeMethod, refuseCrossSite, requireCsrfToken } from "./csrf.js";
import { type ConsoleSessions, SESSION_ABSENT } from "./sessions.js";

/**
 * The console's cookie as an API credential. A cookie goes with every
 * request the browser makes, also those another page triggers, so unlike
 * a bearer token it proves nothing about who asked: a request that changes
 * anything must also carry the session's CSRF token, which only the console
 * can read, and a request the browser marks cross-site is refused outright.
 */
export function consoleSessionAuthenticator(sessions: ConsoleSessions): SessionAuthenticator {
  return async (req) => {
    const secret = readCookie(req, SESSION_COOKIE);
    if (secret === undefined) return undefined;
    refuseCrossSite(req);
    const session = await sessions.find(secret);
    if (!session) throw unauthenticated(SESSION_ABSENT);
    if (!isSafeMethod(req.method)) requireCsrfToken(req, session.csrfToken);
    return session.principal;
  };
}
