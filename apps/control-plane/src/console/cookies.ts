import type { CookieOptions, Request, Response } from "express";

/**
 * The console's two cookies. The `__Host-` prefix makes browsers accept them
 * only with Secure, Path=/ and no Domain, so a sibling subdomain cannot plant
 * or overwrite one (session fixation). Browsers treat http://localhost and
 * http://127.0.0.1 as secure, so local development works without TLS.
 */
export const SESSION_COOKIE = "__Host-modelgate-console";
/**
 * Lax, unlike the session cookie: the identity provider sends the browser
 * back with a cross-site top-level GET, which must carry it.
 */
export const LOGIN_COOKIE = "__Host-modelgate-login";

const BASE: CookieOptions = { httpOnly: true, secure: true, path: "/" };

/** Strict: no cross-site request, not even a link, carries the session. */
export function setSessionCookie(res: Response, secret: string, expiresAt: Date): void {
  res.cookie(SESSION_COOKIE, secret, { ...BASE, sameSite: "strict", maxAge: expiresAt.getTime() - Date.now() });
}

export function clearSessionCookie(res: Response): void {
  res.clearCookie(SESSION_COOKIE, { ...BASE, sameSite: "strict" });
}

export function setLoginCookie(res: Response, id: string, lifetimeMs: number): void {
  res.cookie(LOGIN_COOKIE, id, { ...BASE, sameSite: "lax", maxAge: lifetimeMs });
}

export function clearLoginCookie(res: Response): void {
  res.clearCookie(LOGIN_COOKIE, { ...BASE, sameSite: "lax" });
}

/** Our cookie values are base64url; anything else in a cookie of ours is not one we set. */
const COOKIE_VALUE = /^[A-Za-z0-9_-]{16,128}$/;

/** The value of the first cookie named `name`, when it has the shape of one we set. */
export function readCookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const pair of header.split(";")) {
    const at = pair.indexOf("=");
    if (at < 0 || pair.slice(0, at).trim() !== name) continue;
    const value = pair.slice(at + 1).trim();
    return COOKIE_VALUE.test(value) ? value : undefined;
  }
  return undefined;
}
