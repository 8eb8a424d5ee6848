// The web console's side of the control plane: people sign in at a real
// identity provider (oidc-provider on loopback, authorization code flow with
// PKCE) or with the admin token, get a server-side session in a cookie, and
// call the API with it under CSRF rules; the console's files are served with
// a strict CSP. The browser is played by hand: fetch, and a cookie jar kept
// here, so every cookie attribute and redirect is visible to the assertions.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { generateSecret } from "@modelgate/core";
import { OidcVerifier } from "@modelgate/identity";
import { type MintOptions, startTestIdentityProvider, type TestIdentityProvider } from "@modelgate/identity/testing";
import { apiClient, expectProblem, type RunningControlPlane, startControlPlane } from "./harness.js";

const AUDIENCE = "https://modelgate.test/api";
const CLIENT_ID = "modelgate-console";
const SESSION_COOKIE = "__Host-modelgate-console";
const LOGIN_COOKIE = "__Host-modelgate-login";
const ROLE_GROUPS = { admin: ["mg-admins"], auditor: ["mg-auditors"], approver: ["mg-approvers"] };
const INDEX_HTML =
  '<!DOCTYPE html><title>console</title><script type="module" src="/console/assets/app-3f2a9c.js"></script>';
const ASSET_JS = "export const console_asset = 1;\n";
const OUTSIDE_SECRET = "outside-the-console-dir";

const ADMIN = { subject: "alice", email: "alice@example.com", groups: ["mg-admins"] };
const AUDITOR = { subject: "olga", email: "olga@example.com", groups: ["mg-auditors"] };
const NOBODY = { subject: "nick", groups: ["data-science"] };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of several shapes and assert on it
  body: any;
}

/** One browser: its cookies, kept the way a browser keeps them (cleared ones dropped). */
class Browser {
  readonly cookies = new Map<string, string>();
  readonly setCookies: string[] = [];
  private readonly base: string;
  constructor(base: string) {
    this.base = base;
  }

  async fetch(
    pathAndQuery: string,
    init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
    let body: string | undefined;
    if (init.body !== undefined) {
      body = typeof init.body === "string" ? init.body : JSON.stringify(init.body);
      headers["content-type"] ??= "application/json";
    }
    const response = await fetch(`${this.base}${pathAndQuery}`, {
      method: init.method ?? "GET",
      headers,
      body,
      redirect: "manual",
    });
    for (const header of response.headers.getSetCookie()) {
      this.setCookies.push(header);
      const [pair] = header.split(";");
      const at = (pair as string).indexOf("=");
      const name = (pair as string).slice(0, at);
      const value = (pair as string).slice(at + 1);
      if (value === "" || /expires=Thu, 01 Jan 1970/i.test(header) || /max-age=0\b/i.test(header)) {
        this.cookies.delete(name);
      } else {
        this.cookies.set(name, value);
      }
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, text, body: parsed };
  }

  lastSetCookie(name: string): string | undefined {
    return this.setCookies.findLast((header) => header.startsWith(`${name}=`));
  }
}

/** A GET whose path goes out byte for byte: fetch would resolve `%2e%2e` segments before sending. */
function rawGet(base: string, rawPath: string): Promise<{ status: number; text: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: rawPath, method: "GET" }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("web console sign-in, sessions and files", () => {
  let idp: TestIdentityProvider;
  let verifier: OidcVerifier;
  let cp: RunningControlPlane;
  let api: ReturnType<typeof apiClient>;
  let root: string;

  beforeAll(async () => {
    // The console's build in a temporary folder, with a file beside it that
    // no request may reach.
    root = await mkdtemp(path.join(os.tmpdir(), "mg-console-"));
    await writeFile(path.join(root, "package.json"), JSON.stringify({ secret: OUTSIDE_SECRET }));
    await mkdir(path.join(root, "dist", "assets"), { recursive: true });
    await writeFile(path.join(root, "dist", "index.html"), INDEX_HTML);
    await writeFile(path.join(root, "dist", "assets", "app-3f2a9c.js"), ASSET_JS);
    await writeFile(path.join(root, "dist", ".env"), `SECRET=${OUTSIDE_SECRET}`);

    // The identity provider must know the redirect URI, which names the
    // control plane's port, before the control plane (whose verifier needs
    // the provider) starts.
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const redirectUri = `${publicUrl}/console/auth/callback`;
    idp = await startTestIdentityProvider({ audience: AUDIENCE, webClient: { clientId: CLIENT_ID, redirectUri } });
    verifier = new OidcVerifier({
      issuers: [{ issuer: idp.issuer, audience: AUDIENCE, groupsClaim: "groups", userClaim: "sub" }],
      allowInsecureRequests: true,
    });
    await verifier.start();
    cp = await startControlPlane({
      port,
      oidc: { verifier, roleGroups: ROLE_GROUPS },
      console: {
        dir: path.join(root, "dist"),
        publicUrl,
        oidc: {
          issuer: idp.issuer,
          clientId: CLIENT_ID,
          clientSecret: undefined,
          scope: "openid",
          redirectUri,
          allowInsecureRequests: true,
        },
      },
    });
    api = apiClient(cp);
  }, 30_000);

  afterAll(async () => {
    await cp?.close();
    verifier?.close();
    await idp?.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Starts a sign-in in `browser`; resolves with the provider's redirect back (code and state). */
  async function startSignIn(browser: Browser, user: MintOptions, returnTo = "/console/connections") {
    const login = await browser.fetch(`/console/auth/login?returnTo=${encodeURIComponent(returnTo)}`);
    expect(login.status).toBe(302);
    const authorizationUrl = login.headers.get("location") as string;
    const back = new URL(await idp.signInWithCode(authorizationUrl, user));
    return { login, authorizationUrl: new URL(authorizationUrl), callback: `${back.pathname}${back.search}` };
  }

  async function signIn(user: MintOptions): Promise<{ browser: Browser; csrfToken: string }> {
    const browser = new Browser(cp.url);
    const { callback } = await startSignIn(browser, user);
    const landed = await browser.fetch(callback);
    expect({ status: landed.status, location: landed.headers.get("location") }).toEqual({
      status: 303,
      location: "/console/connections",
    });
    const session = await browser.fetch("/console/auth/session");
    expect(session.status).toBe(200);
    return { browser, csrfToken: session.body.csrfToken };
  }

  async function adminTokenSession(target = cp, token = target.adminToken): Promise<Browser> {
    const browser = new Browser(target.url);
    const answer = await browser.fetch("/console/auth/token", { method: "POST", body: { token } });
    expect(answer.status).toBe(204);
    return browser;
  }

  const connection = (name: string) => ({ name, protocol: "openai", models: ["m"] });

  it("names the sign-in methods it offers", async () => {
    const answer = await new Browser(cp.url).fetch("/console/auth/options");
    expect({ status: answer.status, body: answer.body }).toEqual({
      status: 200,
      body: { oidc: true, adminToken: true },
    });
  });

  it("signs a person in with the code flow and PKCE; the cookie is a session with the roles of their groups", async () => {
    const browser = new Browser(cp.url);
    const { login, authorizationUrl, callback } = await startSignIn(browser, ADMIN, "/console/connections");
    const params = authorizationUrl.searchParams;
    expect({
      clientId: params.get("client_id"),
      responseType: params.get("response_type"),
      method: params.get("code_challenge_method"),
      redirectUri: params.get("redirect_uri"),
    }).toEqual({
      clientId: CLIENT_ID,
      responseType: "code",
      method: "S256",
      redirectUri: `${cp.url}/console/auth/callback`,
    });
    expect(params.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get("state")).toBeTruthy();
    expect(params.get("nonce")).toBeTruthy();
    const loginCookie = login.headers.getSetCookie().find((header) => header.startsWith(`${LOGIN_COOKIE}=`));
    expect(loginCookie).toMatch(/; Max-Age=600;/);
    expect(loginCookie).toMatch(/; Path=\//);
    expect(loginCookie).toMatch(/; HttpOnly/);
    expect(loginCookie).toMatch(/; Secure/);
    expect(loginCookie).toMatch(/; SameSite=Lax/);
    expect(await cp.db.consoleLogin.count()).toBeGreaterThan(0);

    const landed = await browser.fetch(callback);
    expect({ status: landed.status, location: landed.headers.get("location") }).toEqual({
      status: 303,
      location: "/console/connections",
    });
    const sessionCookie = browser.lastSetCookie(SESSION_COOKIE) as string;
    expect(sessionCookie).toMatch(/; Path=\//);
    expect(sessionCookie).toMatch(/; HttpOnly/);
    expect(sessionCookie).toMatch(/; Secure/);
    expect(sessionCookie).toMatch(/; SameSite=Strict/);
    expect(sessionCookie).not.toMatch(/Domain=/i);
    expect(browser.cookies.has(LOGIN_COOKIE)).toBe(false);
    const secret = browser.cookies.get(SESSION_COOKIE) as string;
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const session = await browser.fetch("/console/auth/session");
    expect(session.status).toBe(200);
    expect(session.body).toEqual({
      signedIn: true,
      principal: { id: "alice", kind: "oidc", roles: ["admin"], groups: ["mg-admins"], email: "alice@example.com" },
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      expiresAt: expect.any(String),
    });
    // The test provider's access tokens live an hour: the session ends with the token, not after 8 hours.
    const expiresIn = Date.parse(session.body.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(3_500_000);
    expect(expiresIn).toBeLessThanOrEqual(3_600_000);

    // Stored: a hash of the secret, never the secret.
    const rows = await cp.db.consoleSession.findMany();
    expect(rows.some((row) => row.idHash.length === 64 && row.adminTokenHash === null)).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(secret);

    expect((await browser.fetch("/api/v1/connections")).status).toBe(200);
    const created = await browser.fetch("/api/v1/connections", {
      method: "POST",
      headers: { "x-csrf-token": session.body.csrfToken },
      body: connection("by-console"),
    });
    expect(created.status).toBe(201);
    const entry = await cp.db.adminAuditLog.findFirstOrThrow({ where: { targetId: "by-console" } });
    expect({ actor: entry.actor, actorType: entry.actorType }).toEqual({ actor: "alice", actorType: "oidc" });

    // Nothing a browser holds reaches the log: not the cookie, not the code.
    const code = new URLSearchParams(callback.split("?")[1]).get("code") as string;
    const logs = cp.logLines().join("\n");
    expect(logs).toContain("/console/auth/callback");
    expect(logs).not.toContain(code);
    expect(logs).not.toContain(secret);
  });

  it("gives an auditor an auditor's console and a person in no role group nothing", async () => {
    const auditor = await signIn(AUDITOR);
    expect((await auditor.browser.fetch("/api/v1/admin-audit-log")).status).toBe(200);
    const refused = await auditor.browser.fetch("/api/v1/policies");
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 403, code: "forbidden" });

    const nobody = await signIn(NOBODY);
    const session = await nobody.browser.fetch("/console/auth/session");
    expect(session.body.principal).toEqual({ id: "nick", kind: "oidc", roles: [], groups: ["data-science"] });
    const listed = await nobody.browser.fetch("/api/v1/connections");
    expect({ status: listed.status, code: listed.body.code }).toEqual({ status: 403, code: "forbidden" });
  });

  it("refuses a tampered state, then the genuine callback too: a pending sign-in is used once", async () => {
    const browser = new Browser(cp.url);
    const { callback } = await startSignIn(browser, ADMIN);
    const tampered = callback.replace(/state=[^&]+/, "state=forged-state-value");
    const refused = await browser.fetch(tampered);
    expect({ status: refused.status, location: refused.headers.get("location") }).toEqual({
      status: 303,
      location: "/console/login?error=state_mismatch",
    });
    expect(browser.cookies.has(LOGIN_COOKIE)).toBe(false);
    // Even with the login cookie kept (a browser that ignored the clearing), the sign-in is gone.
    const replayBrowser = new Browser(cp.url);
    const again = await startSignIn(replayBrowser, ADMIN);
    const loginCookie = replayBrowser.cookies.get(LOGIN_COOKIE) as string;
    await replayBrowser.fetch(again.callback.replace(/state=[^&]+/, "state=x"));
    replayBrowser.cookies.set(LOGIN_COOKIE, loginCookie);
    const genuine = await replayBrowser.fetch(again.callback);
    expect(genuine.headers.get("location")).toBe("/console/login?error=login_expired");
    expect(replayBrowser.cookies.has(SESSION_COOKIE)).toBe(false);
    expect(browser.cookies.has(SESSION_COOKIE)).toBe(false);
  });

  it("refuses a replayed callback, one from another browser, an expired sign-in and an identity provider's error", async () => {
    const browser = new Browser(cp.url);
    const { callback } = await startSignIn(browser, ADMIN);
    const loginCookie = browser.cookies.get(LOGIN_COOKIE) as string;
    // Another browser (no login cookie) cannot redeem this browser's code.
    const stranger = new Browser(cp.url);
    expect((await stranger.fetch(callback)).headers.get("location")).toBe("/console/login?error=login_expired");
    expect(stranger.cookies.has(SESSION_COOKIE)).toBe(false);
    expect((await browser.fetch(callback)).status).toBe(303);
    expect(browser.cookies.has(SESSION_COOKIE)).toBe(true);
    // The same callback again, login cookie and all.
    const replay = new Browser(cp.url);
    replay.cookies.set(LOGIN_COOKIE, loginCookie);
    expect((await replay.fetch(callback)).headers.get("location")).toBe("/console/login?error=login_expired");
    expect(replay.cookies.has(SESSION_COOKIE)).toBe(false);

    const late = new Browser(cp.url);
    const slow = await startSignIn(late, ADMIN);
    await cp.db.consoleLogin.updateMany({ data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await late.fetch(slow.callback)).headers.get("location")).toBe("/console/login?error=login_expired");

    const denied = new Browser(cp.url);
    const login = await denied.fetch("/console/auth/login");
    const state = new URL(login.headers.get("location") as string).searchParams.get("state") as string;
    const answer = await denied.fetch(`/console/auth/callback?error=access_denied&state=${state}`);
    expect(answer.headers.get("location")).toBe("/console/login?error=idp_error");
    expect(answer.text).not.toMatch(/Error|at /);
  });

  it("sends returnTo only to paths under /console", async () => {
    for (const [returnTo, expected] of [
      ["/console/approvals/7?tab=votes", "/console/approvals/7?tab=votes"],
      ["https://evil.example/console/", "/console/"],
      ["//evil.example/console/", "/console/"],
      ["/api/v1/connections", "/console/"],
    ]) {
      const browser = new Browser(cp.url);
      const { callback } = await startSignIn(browser, ADMIN, returnTo);
      expect((await browser.fetch(callback)).headers.get("location")).toBe(expected);
    }
  });

  it("signs in with the admin token; a wrong token or another site's Origin is refused", async () => {
    const browser = new Browser(cp.url);
    const right = await browser.fetch("/console/auth/token", {
      method: "POST",
      headers: { origin: cp.url },
      body: { token: cp.adminToken },
    });
    expect(right.status).toBe(204);
    expect(browser.lastSetCookie(SESSION_COOKIE)).toMatch(/; HttpOnly; Secure; SameSite=Strict$/);
    const session = await browser.fetch("/console/auth/session");
    expect(session.body.principal).toEqual({
      id: "bootstrap-admin",
      kind: "admin_token",
      roles: ["admin"],
      groups: [],
    });
    expect(Date.parse(session.body.expiresAt) - Date.now()).toBeGreaterThan(8 * 3_600_000 - 60_000);

    const wrong = new Browser(cp.url);
    const refused = await wrong.fetch("/console/auth/token", {
      method: "POST",
      body: { token: generateSecret("mgadmin_") },
    });
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 401, code: "unauthenticated" });
    expect(wrong.cookies.size).toBe(0);

    const crossSite = new Browser(cp.url);
    const forged = await crossSite.fetch("/console/auth/token", {
      method: "POST",
      headers: { origin: "https://evil.example" },
      body: { token: cp.adminToken },
    });
    expect({ status: forged.status, code: forged.body.code }).toEqual({ status: 403, code: "forbidden" });
    expect(crossSite.cookies.size).toBe(0);

    const tooLarge = await new Browser(cp.url).fetch("/console/auth/token", {
      method: "POST",
      body: { token: cp.adminToken, padding: "x".repeat(9000) },
    });
    expect(tooLarge.status).toBe(413);
  });

  it("lets a cookie change nothing without the right x-csrf-token, or from another site", async () => {
    const browser = await adminTokenSession();
    const { csrfToken } = (await browser.fetch("/console/auth/session")).body;
    const missing = await browser.fetch("/api/v1/connections", { method: "POST", body: connection("no-csrf") });
    expect({ status: missing.status, code: missing.body.code, detail: missing.body.detail }).toEqual({
      status: 403,
      code: "forbidden",
      detail: "missing or wrong x-csrf-token",
    });
    const wrong = await browser.fetch("/api/v1/connections", {
      method: "POST",
      headers: { "x-csrf-token": `${csrfToken.slice(0, -1)}A` === csrfToken ? "B" : `${csrfToken.slice(0, -1)}A` },
      body: connection("no-csrf"),
    });
    expect({ status: wrong.status, code: wrong.body.code }).toEqual({ status: 403, code: "forbidden" });
    const crossSite = await browser.fetch("/api/v1/connections", {
      method: "POST",
      headers: { "x-csrf-token": csrfToken, "sec-fetch-site": "cross-site" },
      body: connection("no-csrf"),
    });
    expect({ status: crossSite.status, code: crossSite.body.code }).toEqual({ status: 403, code: "forbidden" });
    expectProblem(await api("GET", "/api/v1/connections/no-csrf"), 404, "not_found");

    const done = await browser.fetch("/api/v1/connections", {
      method: "POST",
      headers: { "x-csrf-token": csrfToken, "sec-fetch-site": "same-origin" },
      body: connection("with-csrf"),
    });
    expect(done.status).toBe(201);
    expect((await api("GET", "/api/v1/connections/with-csrf")).status).toBe(200);
  });

  it("takes the Authorization header over the cookie when a request has both", async () => {
    const nobody = await signIn(NOBODY);
    const withBearer = await nobody.browser.fetch("/api/v1/connections", {
      headers: { authorization: `Bearer ${cp.adminToken}` },
    });
    expect(withBearer.status).toBe(200);
    // The cookie is ignored entirely: no CSRF token is asked for.
    const created = await nobody.browser.fetch("/api/v1/connections", {
      method: "POST",
      headers: { authorization: `Bearer ${cp.adminToken}` },
      body: connection("by-bearer"),
    });
    expect(created.status).toBe(201);
    const admin = await adminTokenSession();
    const badBearer = await admin.fetch("/api/v1/connections", { headers: { authorization: "Bearer not-a-token" } });
    expect({ status: badBearer.status, code: badBearer.body.code }).toEqual({ status: 401, code: "unauthenticated" });
  });

  it("ends a session at logout, which needs the CSRF token", async () => {
    const { browser, csrfToken } = await signIn(ADMIN);
    const secret = browser.cookies.get(SESSION_COOKIE) as string;
    const forged = await browser.fetch("/console/auth/logout", { method: "POST" });
    expect({ status: forged.status, code: forged.body.code }).toEqual({ status: 403, code: "forbidden" });
    expect((await browser.fetch("/api/v1/connections")).status).toBe(200);

    const out = await browser.fetch("/console/auth/logout", { method: "POST", headers: { "x-csrf-token": csrfToken } });
    expect(out.status).toBe(204);
    expect(browser.cookies.has(SESSION_COOKIE)).toBe(false);
    // The server forgot it too: the old cookie, sent again, is worth nothing.
    const stale = new Browser(cp.url);
    stale.cookies.set(SESSION_COOKIE, secret);
    const afterwards = await stale.fetch("/api/v1/connections");
    expectProblem({ ...afterwards, body: afterwards.body }, 401, "unauthenticated");
    expect(afterwards.body.detail).toMatch(/console session expired or does not exist; sign in again/);
    const asked = await stale.fetch("/console/auth/session");
    expect({ status: asked.status, body: asked.body }).toEqual({ status: 200, body: { signedIn: false } });
  });

  it("ends a session when it expires", async () => {
    const { browser } = await signIn(ADMIN);
    expect((await browser.fetch("/api/v1/connections")).status).toBe(200);
    await cp.db.consoleSession.updateMany({ data: { expiresAt: new Date(Date.now() - 1000) } });
    const expired = await browser.fetch("/api/v1/connections");
    expect({ status: expired.status, code: expired.body.code }).toEqual({ status: 401, code: "unauthenticated" });
    const session = await browser.fetch("/console/auth/session");
    expect({ status: session.status, body: session.body }).toEqual({ status: 200, body: { signedIn: false } });
    // The next sign-in clears every expired session out of the table.
    expect(await cp.db.consoleSession.count({ where: { expiresAt: { lt: new Date() } } })).toBeGreaterThan(0);
    await adminTokenSession();
    expect(await cp.db.consoleSession.count({ where: { expiresAt: { lt: new Date() } } })).toBe(0);
  });

  describe("with another control plane on the same database and another admin token", () => {
    let other: RunningControlPlane;
    beforeAll(async () => {
      other = await startControlPlane({
        databaseUrl: cp.database.url,
        adminToken: generateSecret("mgadmin_"),
        // Not built: the API works on, /console says so.
        console: { dir: path.join(root, "not-built") },
      });
    });
    afterAll(() => other?.close());

    it("ends admin-token sessions when the admin token rotates", async () => {
      const browser = await adminTokenSession(cp);
      expect((await browser.fetch("/api/v1/connections")).status).toBe(200);
      const rotated = new Browser(other.url);
      rotated.cookies.set(SESSION_COOKIE, browser.cookies.get(SESSION_COOKIE) as string);
      const refused = await rotated.fetch("/api/v1/connections");
      expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 401, code: "unauthenticated" });
      // The session is gone for good, not just elsewhere.
      expect((await browser.fetch("/api/v1/connections")).status).toBe(401);
      // People's sessions do not depend on the admin token.
      const person = await signIn(ADMIN);
      const elsewhere = new Browser(other.url);
      elsewhere.cookies.set(SESSION_COOKIE, person.browser.cookies.get(SESSION_COOKIE) as string);
      expect((await elsewhere.fetch("/api/v1/connections")).status).toBe(200);
    });

    it("answers 503 for the console when it is not built, and has no OIDC sign-in when none is configured", async () => {
      for (const page of ["/console/", "/console/connections", "/console/assets/app-3f2a9c.js"]) {
        const answer = await new Browser(other.url).fetch(page);
        expect({ status: answer.status, text: answer.text }).toEqual({
          status: 503,
          text: "the console is not built: run npm run build",
        });
        expect(answer.headers.get("content-security-policy")).toContain("default-src 'self'");
      }
      expect((await apiClient(other)("GET", "/api/v1/connections")).status).toBe(200);
      expect((await new Browser(other.url).fetch("/console/auth/options")).body).toEqual({
        oidc: false,
        adminToken: true,
      });
      const login = await new Browser(other.url).fetch("/console/auth/login");
      expect({ status: login.status, code: login.body.code }).toEqual({ status: 404, code: "not_found" });
      expect(login.body.detail).toMatch(/console OIDC sign-in is not configured/);
    });
  });

  describe("the console's files", () => {
    const CSP =
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    it("serves index.html for the app's routes, hashed assets for a year, all under a strict CSP", async () => {
      const browser = new Browser(cp.url);
      const bare = await browser.fetch("/console?x=1");
      expect({ status: bare.status, location: bare.headers.get("location") }).toEqual({
        status: 308,
        location: "/console/?x=1",
      });
      for (const page of [
        "/console/",
        "/console/connections",
        "/console/approvals/42",
        "/console/login?error=idp_error",
      ]) {
        const answer = await browser.fetch(page);
        expect({ page, status: answer.status, text: answer.text }).toEqual({ page, status: 200, text: INDEX_HTML });
        expect(answer.headers.get("content-type")).toMatch(/^text\/html/);
        expect(answer.headers.get("cache-control")).toBe("no-store");
        expect(answer.headers.get("content-security-policy")).toBe(CSP);
        expect(answer.headers.get("x-frame-options")).toBe("DENY");
        expect(answer.headers.get("referrer-policy")).toBe("no-referrer");
      }
      const asset = await browser.fetch("/console/assets/app-3f2a9c.js");
      expect({ status: asset.status, text: asset.text }).toEqual({ status: 200, text: ASSET_JS });
      expect(asset.headers.get("content-type")).toMatch(/javascript/);
      expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
      expect(asset.headers.get("content-security-policy")).toBe(CSP);
      const missing = await browser.fetch("/console/assets/app-old.js");
      expect(missing.status).toBe(404);
      expect(missing.headers.get("cache-control")).toBe("no-store");
      for (const page of ["/console/auth/options", "/console/auth/nothing-here"]) {
        expect((await browser.fetch(page)).headers.get("content-security-policy")).toBe(CSP);
      }
      expect((await browser.fetch("/console/auth/nothing-here")).status).toBe(404);
    });

    it("never serves a file outside its folder, nor a dotfile", async () => {
      for (const rawPath of [
        "/console/..%2f..%2fpackage.json",
        "/console/..%2fpackage.json",
        "/console/%2e%2e/package.json",
        "/console/%2e%2e%2fpackage.json",
        "/console/assets/..%2f..%2fpackage.json",
        "/console/assets/%2e%2e/%2e%2e/package.json",
        "/console/..%5c..%5cpackage.json",
        "/console/%252e%252e%252fpackage.json",
        "/console/.env",
        "/console/%2eenv",
      ]) {
        const answer = await rawGet(cp.url, rawPath);
        expect({ rawPath, leaked: answer.text.includes(OUTSIDE_SECRET) }).toEqual({ rawPath, leaked: false });
        expect([200, 400, 403, 404]).toContain(answer.status);
      }
    });
  });
});
