/// <reference path="./oidc-provider.d.ts" />
// An in-process OpenID Provider for tests: a real oidc-provider instance on
// loopback, so the verifier is exercised over HTTP exactly as against a
// production IdP (discovery, JWKS, RFC 9068 access tokens). Its sign-in page
// is plain HTML, so that a real browser or a few fetches can drive it.
import { randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWSHeaderParameters,
  type JWTPayload,
  SignJWT,
} from "jose";
import Provider from "oidc-provider";

export interface TestIdentityProviderOptions {
  /** The `aud` of minted tokens; default "modelgate". */
  audience?: string;
  /** Where minted tokens carry the groups: a name, a dotted path or a URL; default "groups". */
  groupsClaim?: string;
  /** Listen on this port instead of an ephemeral one (to bring an IdP "back up"). */
  port?: number;
  /**
   * Registers a public client with this id for the device authorization
   * grant (RFC 8628), as a CLI's; `approveDevice` then plays the person who
   * confirms the code in a browser and signs in.
   */
  deviceClientId?: string;
  /**
   * Registers a client for the authorization code flow (PKCE required), as a
   * web app's: public (`token_endpoint_auth_method: none`) without a secret.
   * People sign in on the provider's page as an account from `addAccount`;
   * `signInWithCode` plays their browser.
   */
  webClient?: { clientId: string; redirectUri: string; clientSecret?: string };
}

export interface MintOptions {
  subject: string;
  email?: string;
  groups?: string[];
  /** Default 300. */
  expiresInSeconds?: number;
  /** More claims to put in the token. */
  claims?: Record<string, unknown>;
}

export interface TestIdentityProvider {
  /** The issuer identifier, `http://127.0.0.1:<port>`. */
  readonly issuer: string;
  readonly audience: string;
  readonly port: number;
  /** How often the JWKS endpoint was requested so far (answered or not). */
  readonly jwksRequests: number;
  /** While false, the JWKS endpoint answers 503 (an IdP outage after discovery). */
  setJwksAvailable(available: boolean): void;
  /** An access token for a user, issued by the provider's token endpoint. */
  mintAccessToken(options: MintOptions): Promise<string>;
  /**
   * Plays the browser of a device login: opens `verificationUri` (the
   * `verification_uri_complete` a CLI printed), confirms the code and signs
   * in as `user`, whose claims the device's access token then carries.
   * Resolves once the provider shows its success page. One at a time: the
   * provider's sign-in page takes whoever the running call names.
   */
  approveDevice(verificationUri: string, user: MintOptions): Promise<void>;
  /**
   * Registers a person who can sign in on the provider's sign-in page with
   * `user.subject` as the username; their access tokens (authorization code
   * flow) carry the subject, email and groups.
   */
  addAccount(user: MintOptions): void;
  /**
   * Plays the browser of an authorization code sign-in without a browser:
   * opens `authorizationUrl`, submits the sign-in page as `user` (added as
   * an account), and resolves with the URL the provider then sends the
   * browser to: the web client's redirect URI with `code` and `state` (or
   * `error`). That URL is not fetched. Not while `approveDevice` runs.
   */
  signInWithCode(authorizationUrl: string, user: MintOptions): Promise<string>;
  /** Replaces the signing key with a new one (new `kid`); the old key is no longer published. */
  rotateKeys(): Promise<void>;
  /** Signs exactly these claims with the current key (RS256, `typ: at+jwt`, current `kid` unless overridden). */
  signRaw(claims: JWTPayload, header?: Partial<JWSHeaderParameters>): Promise<string>;
  /** The current public signing key. */
  publicJwk(): JWK;
  close(): Promise<void>;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  privateJwk: JWK;
  publicJwk: JWK;
}

interface PendingMint {
  subject: string;
  claims: Record<string, unknown>;
  expiresInSeconds: number;
}

// oidc-provider's default routes, and where its interactions (sign-in, consent) are sent.
const JWKS_PATH = "/jwks";
const TOKEN_PATH = "/token";
const INTERACTION_PATH = "/interaction/";

interface BrowseOptions {
  /** The page is the last one: stop there. */
  done?: (page: string) => boolean;
  /** A redirect to this URL ends the walk without following it (back to the client). */
  leavesTo?: (url: string) => boolean;
  /** Values for a form's visible fields, by name (the sign-in page's username). */
  fill?: Readonly<Record<string, string>>;
}

/**
 * A browser, as far as the provider's pages need one: follows redirects,
 * keeps cookies, and submits each page's form (the provider's pages are
 * forms that a person, or their script, submits) until `done` says the page
 * is the last or a redirect `leavesTo` the client; resolves with that
 * redirect's URL, or with the last page's URL.
 */
async function browse(start: string, { done, leavesTo, fill = {} }: BrowseOptions): Promise<string> {
  const cookies = new Map<string, string>();
  let request: { url: string; form?: URLSearchParams } = { url: start };
  for (let step = 0; step < 20; step += 1) {
    const response = await fetch(request.url, {
      method: request.form ? "POST" : "GET",
      redirect: "manual",
      headers: {
        cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join("; "),
        ...(request.form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      body: request.form,
    });
    for (const header of response.headers.getSetCookie()) {
      const [pair] = header.split(";");
      const at = (pair as string).indexOf("=");
      cookies.set((pair as string).slice(0, at).trim(), (pair as string).slice(at + 1).trim());
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, request.url).href;
      if (leavesTo?.(next)) return next;
      request = { url: next };
      continue;
    }
    const page = await response.text();
    if (!response.ok) throw new Error(`the provider answered ${response.status}: ${page.slice(0, 300)}`);
    if (done?.(page)) return request.url;
    const form = page.match(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/);
    if (!form) throw new Error(`a page without a form: ${page.slice(0, 300)}`);
    const fields = new URLSearchParams();
    for (const input of (form[2] as string).matchAll(/<input[^>]*>/g)) {
      const name = input[0].match(/name="([^"]+)"/)?.[1];
      if (!name) continue;
      if (/type="hidden"/.test(input[0])) {
        const value = input[0].match(/value="([^"]*)"/)?.[1] ?? "";
        // &amp; last, so that an escaped "&quot;" is not unescaped twice.
        fields.set(name, value.replaceAll("&quot;", '"').replaceAll("&amp;", "&"));
      } else if (fill[name] !== undefined) {
        fields.set(name, fill[name]);
      }
    }
    request = { url: new URL(form[1] as string, request.url).href, form: fields };
  }
  throw new Error("the sign-in did not finish in 20 steps");
}

/** The provider's sign-in page: a username, nothing else, and no script (a browser test fills it in). */
function signInPage(action: string, error?: string): string {
  const escapeHtml = (text: string) =>
    text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
  return [
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head><body>',
    "<main><h1>Sign in</h1>",
    error ? `<p role="alert">${escapeHtml(error)}</p>` : "",
    `<form method="post" action="${escapeHtml(action)}">`,
    '<label for="username">Username</label> ',
    '<input id="username" name="username" type="text" autocomplete="username" required autofocus> ',
    '<button type="submit">Sign in</button>',
    "</form></main></body></html>",
  ].join("");
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16_384) throw new Error("the sign-in form is too large");
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

/**
 * Starts a provider on 127.0.0.1. Tokens come from the client-credentials
 * grant with a resource indicator, so they are JWT access tokens for the
 * configured audience. To make a client-credentials token stand for a user,
 * each mint registers a one-off client (in the provider's storage adapter)
 * whose pending claims the provider's hooks pick up: `extraTokenClaims` adds
 * email and groups, the JWT customizer replaces `sub` (RFC 9068 sets it to
 * the client id for this grant) and the TTL hook applies the lifetime.
 */
export async function startTestIdentityProvider(
  options: TestIdentityProviderOptions = {},
): Promise<TestIdentityProvider> {
  const audience = options.audience ?? "modelgate";
  const groupsClaim = options.groupsClaim ?? "groups";
  const webClient = options.webClient;
  // Resource indicators must be absolute URIs; an audience that is not one
  // is wrapped, and the resource server still puts the plain audience in `aud`.
  const resource = URL.canParse(audience) ? audience : `urn:modelgate:audience:${encodeURIComponent(audience)}`;
  const storage = new Map<string, unknown>();
  const pending = new Map<string, PendingMint>();
  /** Claims of the people who signed in through an interaction (device logins), by account id. */
  const accounts = new Map<string, Record<string, unknown>>();
  /** Who the next interaction signs in (set by approveDevice while it drives one). */
  let signingIn: MintOptions | undefined;
  let provider: Provider | undefined;
  let jwksRequests = 0;
  let jwksAvailable = true;
  let key = await newSigningKey();
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  const server = createServer((req, res) => {
    if (req.url?.startsWith(INTERACTION_PATH) && provider) {
      void finishInteraction(provider, req, res).catch((error: unknown) => {
        res.writeHead(500).end(String(error));
      });
      return;
    }
    const isJwks = req.url?.split("?")[0] === JWKS_PATH;
    if (isJwks) jwksRequests += 1;
    if (!handler || (isJwks && !jwksAvailable)) {
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  await listen(server, options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  /**
   * The provider's interactions. While approveDevice drives a device login,
   * it signs in whoever that call names without a page; otherwise a person
   * signs in on the sign-in page as an account from addAccount. Consent is
   * always granted: the scope the client asked for and the API's audience.
   */
  async function finishInteraction(current: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await current.interactionDetails(req, res);
    const user = signingIn;
    if (details.prompt.name === "login") {
      let accountId = user?.subject;
      if (!accountId) {
        const action = `${INTERACTION_PATH}${details.uid}`;
        const page = (status: number, error?: string) => {
          res.writeHead(status, {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy": "default-src 'none'",
          });
          res.end(signInPage(action, error));
        };
        if (req.method !== "POST") return page(200);
        const username = (await readForm(req)).get("username")?.trim() ?? "";
        if (!accounts.has(username)) return page(200, `There is no account named "${username}".`);
        accountId = username;
      }
      await current.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
      return;
    }
    const accountId = details.session?.accountId ?? user?.subject;
    if (!accountId) throw new Error("consent without a signed-in account");
    const grant = new current.Grant({ accountId, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope ?? "openid"));
    grant.addResourceScope(resource, "");
    const grantId = await grant.save();
    await current.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  /** Makes `user` an account whose tokens carry their email and groups. */
  function addAccount(user: MintOptions): void {
    const claims: Record<string, unknown> = { ...(user.claims ?? {}) };
    if (user.email !== undefined) claims.email = user.email;
    if (user.groups !== undefined) setClaim(claims, groupsClaim, user.groups);
    accounts.set(user.subject, claims);
  }

  const isDeviceToken = (token: { accountId?: unknown }) => typeof token.accountId === "string";

  const mintFor = (clientId: unknown): PendingMint => {
    const mint = typeof clientId === "string" ? pending.get(clientId) : undefined;
    if (!mint) throw new Error("no pending mint for this client");
    return mint;
  };

  // A provider's keystore is fixed at construction, so rotating keys means a
  // new provider behind the same server (same issuer, same port, same storage).
  const buildProvider = (signingKey: SigningKey): Provider =>
    new Provider(issuer, {
      adapter: (model: string) => storageAdapter(storage, model),
      jwks: { keys: [signingKey.privateJwk] },
      clients: [
        ...(options.deviceClientId
          ? [
              {
                client_id: options.deviceClientId,
                grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
                response_types: [],
                redirect_uris: [],
                token_endpoint_auth_method: "none",
              },
            ]
          : []),
        ...(webClient
          ? [
              {
                client_id: webClient.clientId,
                grant_types: ["authorization_code"],
                response_types: ["code"],
                redirect_uris: [webClient.redirectUri],
                ...(webClient.clientSecret
                  ? { client_secret: webClient.clientSecret, token_endpoint_auth_method: "client_secret_basic" }
                  : { token_endpoint_auth_method: "none" }),
              },
            ]
          : []),
      ],
      findAccount: (_ctx: unknown, accountId: string) => ({
        accountId,
        claims: () => ({ sub: accountId, ...(accounts.get(accountId) ?? {}) }),
      }),
      // PKCE for every authorization code client, confidential ones too
      // (oidc-provider demands it only of public ones by default).
      pkce: { required: () => true },
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `${INTERACTION_PATH}${interaction.uid}` },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        deviceFlow: {
          enabled: Boolean(options.deviceClientId),
          // Plain pages: approveDevice submits their forms.
          userCodeInputSource: (ctx: { body: string }, form: string) => {
            ctx.body = `<!DOCTYPE html><title>Device sign-in</title>${form}`;
          },
          userCodeConfirmSource: (ctx: { body: string }, form: string) => {
            ctx.body = `<!DOCTYPE html><title>Confirm the device</title>${form}`;
          },
          successSource: (ctx: { body: string }) => {
            ctx.body = "<!DOCTYPE html><title>Sign-in Success</title><p>Sign-in Success</p>";
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => resource,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, indicator: string) => {
            if (indicator !== resource) throw new Error(`unknown resource indicator ${indicator}`);
            return { audience, scope: "", accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } };
          },
        },
      },
      extraTokenClaims: (_ctx: unknown, token: { clientId?: unknown; accountId?: unknown }) =>
        isDeviceToken(token) ? accounts.get(token.accountId as string) : mintFor(token.clientId).claims,
      formats: {
        customizers: {
          jwt: (
            _ctx: unknown,
            token: { clientId?: unknown; accountId?: unknown },
            jwt: { payload: Record<string, unknown> },
          ) => {
            // A person's token (device login) already names them.
            if (!isDeviceToken(token)) jwt.payload.sub = mintFor(token.clientId).subject;
          },
        },
      },
      ttl: {
        ClientCredentials: (_ctx: unknown, _token: unknown, client: { clientId: string }) =>
          mintFor(client.clientId).expiresInSeconds,
        // A device login's artifacts, in seconds.
        AccessToken: 3600,
        IdToken: 3600,
        DeviceCode: 600,
        Grant: 3600,
        Interaction: 600,
        Session: 3600,
      },
    });

  provider = buildProvider(key);
  handler = provider.callback();

  return {
    issuer,
    audience,
    port,
    get jwksRequests() {
      return jwksRequests;
    },

    setJwksAvailable(available) {
      jwksAvailable = available;
    },

    async mintAccessToken({ subject, email, groups, expiresInSeconds = 300, claims = {} }) {
      const clientId = `mint-${randomUUID()}`;
      const clientSecret = randomBytes(32).toString("base64url");
      const tokenClaims: Record<string, unknown> = { ...claims };
      if (email !== undefined) tokenClaims.email = email;
      if (groups !== undefined) setClaim(tokenClaims, groupsClaim, groups);
      pending.set(clientId, { subject, claims: tokenClaims, expiresInSeconds });
      storage.set(storageKey("Client", clientId), {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: "client_secret_basic",
      });
      try {
        const response = await fetch(new URL(TOKEN_PATH, issuer), {
          method: "POST",
          headers: {
            authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
            "content-type": "application/x-www-form-urlencoded",
          },
          body: new URLSearchParams({ grant_type: "client_credentials", resource }),
        });
        const body = (await response.json()) as {
          access_token?: unknown;
          error?: unknown;
          error_description?: unknown;
        };
        if (!response.ok || typeof body.access_token !== "string") {
          throw new Error(`token endpoint answered ${response.status}: ${body.error} ${body.error_description}`);
        }
        return body.access_token;
      } finally {
        pending.delete(clientId);
        storage.delete(storageKey("Client", clientId));
      }
    },

    async rotateKeys() {
      key = await newSigningKey();
      provider = buildProvider(key);
      handler = provider.callback();
    },

    async approveDevice(verificationUri, user) {
      addAccount(user);
      signingIn = user;
      try {
        await browse(verificationUri, { done: (page) => page.includes("Sign-in Success") });
      } finally {
        signingIn = undefined;
      }
    },

    addAccount,

    async signInWithCode(authorizationUrl, user) {
      if (!webClient) throw new Error("signInWithCode needs the webClient option");
      addAccount(user);
      const redirectUri = webClient.redirectUri;
      return browse(authorizationUrl, {
        leavesTo: (url) => url.startsWith(`${redirectUri}?`) || url === redirectUri,
        fill: { username: user.subject },
      });
    },

    signRaw(claims, header = {}) {
      return new SignJWT(claims)
        .setProtectedHeader({ alg: "RS256", typ: "at+jwt", kid: key.kid, ...header })
        .sign(key.privateKey);
    },

    publicJwk() {
      return { ...key.publicJwk };
    },

    async close() {
      handler = undefined;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections from fetch would otherwise hold close() open.
        server.closeAllConnections();
      });
    },
  };
}

async function newSigningKey(): Promise<SigningKey> {
  const kid = randomUUID();
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const meta = { kid, alg: "RS256", use: "sig" };
  return {
    kid,
    privateKey,
    privateJwk: { ...(await exportJWK(privateKey)), ...meta },
    publicJwk: { ...(await exportJWK(publicKey)), ...meta },
  };
}

/** Puts a value at a claim path the way IdPs nest them; URL-named claims stay flat. */
function setClaim(target: Record<string, unknown>, path: string, value: unknown): void {
  const segments = path.includes("://") ? [path] : path.split(".");
  let current = target;
  for (const segment of segments.slice(0, -1)) {
    const next = current[segment];
    const child: Record<string, unknown> =
      typeof next === "object" && next !== null && !Array.isArray(next) ? (next as Record<string, unknown>) : {};
    current[segment] = child;
    current = child;
  }
  current[segments[segments.length - 1] as string] = value;
}

function storageKey(model: string, id: string): string {
  return `${model}:${id}`;
}

/**
 * oidc-provider's storage interface over one Map per test provider: clients,
 * and the sessions, interactions, grants and device codes of device logins
 * (JWT access tokens are not stored).
 */
function storageAdapter(storage: Map<string, unknown>, model: string) {
  const keyFor = (id: string) => storageKey(model, id);
  const findWhere = (test: (payload: Record<string, unknown>) => boolean) => {
    for (const [key, payload] of storage) {
      if (
        key.startsWith(`${model}:`) &&
        payload &&
        typeof payload === "object" &&
        test(payload as Record<string, unknown>)
      ) {
        return payload;
      }
    }
    return undefined;
  };
  return {
    async upsert(id: string, payload: unknown) {
      storage.set(keyFor(id), payload);
    },
    async find(id: string) {
      return storage.get(keyFor(id));
    },
    async findByUid(uid: string) {
      return findWhere((payload) => payload.uid === uid);
    },
    async findByUserCode(userCode: string) {
      return findWhere((payload) => payload.userCode === userCode);
    },
    async consume(id: string) {
      const payload = storage.get(keyFor(id));
      if (payload && typeof payload === "object") storage.set(keyFor(id), { ...payload, consumed: Date.now() / 1000 });
    },
    async destroy(id: string) {
      storage.delete(keyFor(id));
    },
    async revokeByGrantId() {},
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
}
