import { createHmac } from "node:crypto";
import { secretsEqual } from "@modelgate/core";
import type { Request } from "express";
import { forbidden } from "../http/errors.js";

const CSRF_HEADER = "x-csrf-token";

/**
 * The CSRF token of a session, derived from the session cookie's secret
 * rather than stored: a page that can make the browser send the cookie
 * cannot read it (HttpOnly, and the token only comes from
 * GET /console/auth/session, which other origins cannot read), and without
 * the secret it cannot compute the token. The label keeps the token from
 * ever equalling anything else derived from the secret (the stored hash).
 */
export function csrfTokenFor(sessionSecret: string): string {
  return createHmac("sha256", sessionSecret).update("modelgate console csrf v1").digest("base64url");
}

/** Methods that change nothing; everything else needs the CSRF token. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export const isSafeMethod = (method: string) => SAFE_METHODS.has(method);

/** Refuses a state-changing request whose `x-csrf-token` is not the session's (compared in constant time). */
export function requireCsrfToken(req: Request, expected: string): void {
  const presented = req.get(CSRF_HEADER);
  if (presented === undefined || !secretsEqual(presented, expected)) {
    throw forbidden(`missing or wrong ${CSRF_HEADER}`);
  }
}

/**
 * Refuses what a browser says came from another site. The SameSite=Strict
 * cookie already stays home on such requests; this holds even where a
 * browser or an extension would send it, for every method.
 */
export function refuseCrossSite(req: Request): void {
  if (req.get("sec-fetch-site") === "cross-site") {
    throw forbidden("cross-site requests cannot use the console session");
  }
}
