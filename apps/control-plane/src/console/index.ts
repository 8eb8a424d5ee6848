// The web console's side of the control plane (docs/console-auth.md):
// sign-in, server-side sessions, the session cookie as an API credential,
// and the single-page app's files.
import type { Logger } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import express, { type RequestHandler, type Router } from "express";
import type { ConsoleOidcClient } from "../config.js";
import type { Authenticator } from "../http/auth.js";
import { notFound } from "../http/errors.js";
import type { SessionAuthenticator } from "../http/route.js";
import { consoleSessionAuthenticator } from "./api-session.js";
import { consoleAuthRoutes } from "./auth-routes.js";
import { createPendingLogins } from "./logins.js";
import { createConsoleOidc } from "./oidc-client.js";
import { createConsoleSessions } from "./sessions.js";
import { consoleStaticFiles } from "./static-files.js";

export { defaultConsoleDir } from "./static-files.js";

export const CONSOLE_BASE_PATH = "/console";

/**
 * Nothing but this origin's own files, no inline script or style, no
 * framing: an injected tag can neither run nor send data elsewhere.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
  res.setHeader("x-frame-options", "DENY");
  res.setHeader("referrer-policy", "no-referrer");
  next();
};

export interface ConsoleOptions {
  /** The built app (index.html, assets/); undefined or missing: /console answers 503, the API works on. */
  dir: string | undefined;
  /** MODELGATE_CONSOLE_SESSION_HOURS (1-24). */
  sessionHours: number;
  /** Admin-token sign-in, for zero-config mode; undefined: none. */
  adminToken: string | undefined;
  /** Sign-in at the identity provider; undefined: none. */
  oidc: ConsoleOidcClient | undefined;
  /** MODELGATE_PUBLIC_URL (an origin), also accepted as the Origin of sign-in posts. */
  publicUrl: string | undefined;
}

export interface ConsoleDeps extends ConsoleOptions {
  db: Database;
  authenticator: Authenticator;
  logger: Logger;
}

export interface Console {
  /** Mounted at /console. */
  router: Router;
  /** For the API's authenticate step: the session cookie as a credential. */
  sessionAuthenticator: SessionAuthenticator;
}

export function createConsole(deps: ConsoleDeps): Console {
  const sessions = createConsoleSessions({ db: deps.db, sessionHours: deps.sessionHours, adminToken: deps.adminToken });
  const router = express.Router({ caseSensitive: true, strict: true });
  router.use(securityHeaders);
  router.use((req, res, next) => {
    // `/console` itself: relative URLs in index.html resolve under /console/ only.
    const [pathname, query] = splitUrl(req.originalUrl);
    if (pathname === CONSOLE_BASE_PATH) return res.redirect(308, `${CONSOLE_BASE_PATH}/${query}`);
    next();
  });
  router.use(
    "/auth",
    consoleAuthRoutes({
      sessions,
      logins: createPendingLogins({ db: deps.db }),
      authenticator: deps.authenticator,
      oidc: deps.oidc ? createConsoleOidc(deps.oidc) : undefined,
      adminToken: deps.adminToken,
      publicOrigin: deps.publicUrl,
      logger: deps.logger,
    }),
    // Unknown sign-in paths are API-style 404s, not the app's index.html.
    (req, _res, next) => next(notFound(`no route for ${req.method} ${req.baseUrl}${req.path.slice(0, 200)}`)),
  );
  router.use(consoleStaticFiles(deps.dir));
  return { router, sessionAuthenticator: consoleSessionAuthenticator(sessions) };
}

function splitUrl(url: string): [string, string] {
  const at = url.indexOf("?");
  return at < 0 ? [url, ""] : [url.slice(0, at), url.slice(at)];
}

/**
 * The request as pino-http logs it, without the query of sign-in callbacks:
 * it carries an authorization code, and codes are credentials (if short-lived
 * ones, bound to a verifier this server keeps).
 */
export function withoutSignInCodes<T extends { url?: string; query?: unknown }>(req: T): T {
  if (typeof req.url === "string" && req.url.startsWith(`${CONSOLE_BASE_PATH}/auth/callback`)) {
    req.url = splitUrl(req.url)[0];
    req.query = undefined;
  }
  return req;
}
