import type { Logger } from "@modelgate/core";
import { secretsEqual } from "@modelgate/core";
import express, { type Request, type Response, type Router } from "express";
import { z } from "zod";
import { type Authenticator, bootstrapAdmin, type Principal } from "../http/auth.js";
import { ApiError, forbidden, invalidRequest, notFound, unauthenticated } from "../http/errors.js";
import { setRouteTemplate } from "../http/metrics.js";
import {
  clearLoginCookie,
  clearSessionCookie,
  LOGIN_COOKIE,
  readCookie,
  SESSION_COOKIE,
  setLoginCookie,
  setSessionCookie,
} from "./cookies.js";
import { refuseCrossSite, requireCsrfToken } from "./csrf.js";
import { LOGIN_LIFETIME_MS, type PendingLogins } from "./logins.js";
import { type ConsoleOidc, SignInFailure } from "./oidc-client.js";
import { safeReturnTo } from "./return-to.js";
import { type ConsoleSessions, SESSION_ABSENT } from "./sessions.js";

/** The admin token form carries one token: nothing more to read. */
const TOKEN_BODY_LIMIT_BYTES = 8 * 1024;
const SIGN_IN_PAGE = "/console/login";

export interface ConsoleAuthDeps {
  sessions: ConsoleSessions;
  logins: PendingLogins;
  /** The API's authenticator: a person's access token gives them the roles it gives on API calls. */
  authenticator: Authenticator;
  /** Sign-in at the identity provider; undefined without MODELGATE_CONSOLE_CLIENT_ID. */
  oidc: ConsoleOidc | undefined;
  /** The bootstrap admin token; undefined: no admin-token sign-in. */
  adminToken: string | undefined;
  /** MODELGATE_PUBLIC_URL's origin: the Origin a browser sends when the control plane is behind a TLS proxy. */
  publicOrigin: string | undefined;
  logger: Logger;
}

const tokenBody = z.object({ token: z.string().min(1).max(TOKEN_BODY_LIMIT_BYTES) });

/** The session answer's principal: what the console shows and decides its menus by. */
function principalView(principal: Principal) {
  return {
    id: principal.id,
    kind: principal.kind,
    roles: [...principal.roles],
    groups: [...principal.groups],
    ...(principal.email !== undefined ? { email: principal.email } : {}),
  };
}

/**
 * When the access token expires (its `exp`; the token response's
 * `expires_in` for a provider whose tokens say nothing): the session ends
 * then too, so the console never acts for longer than the provider allowed.
 * The authenticator verified the token before this reads it.
 */
function accessTokenExpiry(accessToken: string, expiresIn: number | undefined): Date | undefined {
  try {
    const payload = JSON.parse(Buffer.from(accessToken.split(".")[1] ?? "", "base64url").toString("utf8"));
    if (typeof payload?.exp === "number") return new Date(payload.exp * 1000);
  } catch {
    // Not a JWT's payload: fall back to expires_in.
  }
  return expiresIn === undefined ? undefined : new Date(Date.now() + expiresIn * 1000);
}

/**
 * Login CSRF: another site could post its own admin token here and sign the
 * victim into the attacker's session. Browsers send Origin on every POST
 * from a page; it must be this control plane's, seen directly or through
 * its public URL.
 */
function requireSameOrigin(req: Request, publicOrigin: string | undefined): void {
  const origin = req.get("origin");
  if (origin === undefined) return;
  if (origin === `${req.protocol}://${req.get("host")}` || origin === publicOrigin) return;
  throw forbidden("the request comes from another site (Origin): sign in on the console itself");
}

/** GET/POST /console/auth/*: sign-in, the session, sign-out. */
export function consoleAuthRoutes(deps: ConsoleAuthDeps): Router {
  const { sessions, logins, authenticator, oidc, adminToken, publicOrigin, logger } = deps;
  const router = express.Router({ caseSensitive: true, strict: false });
  const template = (res: Response, path: string) => setRouteTemplate(res, `/console/auth${path}`);
  const requireOidc = (): ConsoleOidc => {
    if (!oidc) throw notFound("console OIDC sign-in is not configured (MODELGATE_CONSOLE_CLIENT_ID)");
    return oidc;
  };

  router.get("/options", (_req, res) => {
    template(res, "/options");
    res.json({ oidc: oidc !== undefined, adminToken: adminToken !== undefined });
  });

  router.get("/login", async (req, res) => {
    template(res, "/login");
    const client = requireOidc();
    let started: Awaited<ReturnType<ConsoleOidc["start"]>>;
    try {
      started = await client.start(safeReturnTo(req.query.returnTo));
    } catch (error) {
      logger.warn({ err: error }, "console sign-in: the identity provider cannot be reached");
      throw new ApiError("unavailable", "the identity provider cannot be reached; try again later");
    }
    setLoginCookie(res, await logins.begin(started.pending), LOGIN_LIFETIME_MS);
    res.redirect(302, started.authorizationUrl.href);
  });

  router.get("/callback", async (req, res) => {
    template(res, "/callback");
    const client = requireOidc();
    // The pending login is used up whatever happens next: a callback URL
    // cannot be replayed, nor its state guessed twice.
    const loginId = readCookie(req, LOGIN_COOKIE);
    clearLoginCookie(res);
    const pending = loginId ? await logins.consume(loginId) : undefined;
    try {
      if (req.query.error !== undefined)
        throw new SignInFailure("idp_error", "the identity provider answered an error");
      if (!pending) throw new SignInFailure("login_expired", "no pending sign-in for this browser, or it expired");
      const state = req.query.state;
      if (typeof state !== "string" || !secretsEqual(state, pending.state)) {
        throw new SignInFailure("state_mismatch", "the state does not match this browser's sign-in");
      }
      const query = new URL(req.originalUrl, "http://callback.invalid").search;
      const { accessToken, expiresIn } = await client.exchange(query, pending);
      // Exactly the check API calls get: issuer, audience, signature, and the roles of the groups.
      let principal: Principal;
      try {
        principal = await authenticator.authenticate(`Bearer ${accessToken}`);
      } catch (error) {
        if (error instanceof ApiError && error.code === "unavailable")
          throw new SignInFailure("idp_error", error.detail);
        throw new SignInFailure("token_invalid", error instanceof ApiError ? error.detail : String(error));
      }
      if (principal.kind !== "oidc") throw new SignInFailure("token_invalid", "the access token is not a person's");
      const session = await sessions.open(principal, accessTokenExpiry(accessToken, expiresIn));
      setSessionCookie(res, session.secret, session.expiresAt);
      logger.info({ principal: principal.id, roles: [...principal.roles] }, "console sign-in");
      res.redirect(303, pending.returnTo);
    } catch (error) {
      if (!(error instanceof SignInFailure)) throw error;
      logger.info({ error: error.code, reason: error.message }, "console sign-in refused");
      res.redirect(303, `${SIGN_IN_PAGE}?error=${error.code}`);
    }
  });

  // Origin before the body: a cross-site post is refused unread.
  router.post(
    "/token",
    (req, res, next) => {
      template(res, "/token");
      requireSameOrigin(req, publicOrigin);
      refuseCrossSite(req);
      if (!req.is("application/json")) {
        throw new ApiError("unsupported_media_type", "send the request body as application/json");
      }
      next();
    },
    express.json({ limit: TOKEN_BODY_LIMIT_BYTES, strict: true }),
    async (req, res) => {
      const body = tokenBody.safeParse(req.body);
      if (!body.success) throw invalidRequest('send {"token": "<admin token>"}');
      if (adminToken === undefined || !secretsEqual(body.data.token, adminToken)) {
        throw unauthenticated("the admin token is not valid");
      }
      const session = await sessions.open(bootstrapAdmin());
      setSessionCookie(res, session.secret, session.expiresAt);
      logger.info({ principal: "bootstrap-admin" }, "console sign-in with the admin token");
      res.status(204).end();
    },
  );

  router.get("/session", async (req, res) => {
    template(res, "/session");
    refuseCrossSite(req);
    const secret = readCookie(req, SESSION_COOKIE);
    const session = secret ? await sessions.find(secret) : undefined;
    // "Who am I?" has a normal answer when nobody is signed in: a 401 here
    // would be logged as an error by the browser on every sign-in page.
    if (!session) {
      if (secret) clearSessionCookie(res);
      res.json({ signedIn: false });
      return;
    }
    res.json({
      signedIn: true,
      principal: principalView(session.principal),
      csrfToken: session.csrfToken,
      expiresAt: session.expiresAt.toISOString(),
    });
  });

  router.post("/logout", async (req, res) => {
    template(res, "/logout");
    refuseCrossSite(req);
    const secret = readCookie(req, SESSION_COOKIE);
    const session = secret ? await sessions.find(secret) : undefined;
    if (!secret || !session) {
      clearSessionCookie(res);
      throw unauthenticated(SESSION_ABSENT);
    }
    // Else any page could sign a person out.
    requireCsrfToken(req, session.csrfToken);
    await sessions.end(secret);
    clearSessionCookie(res);
    res.status(204).end();
  });

  return router;
}
