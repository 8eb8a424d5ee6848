// Signing a person in at the identity provider with the OAuth 2.0 device
// authorization grant (RFC 8628): the CLI shows a URL and a code, the person
// confirms it in a browser and signs in there (with whatever second factor
// the IdP asks for), and the CLI receives an access token for the API.
// Nothing secret is typed into the terminal, and no admin token is shared.
import { setTimeout as sleep } from "node:timers/promises";
import { CliError, EXIT } from "./errors.js";

export interface CliLogin {
  issuer: string;
  clientId: string;
  scope: string;
}

const REQUEST_TIMEOUT_MS = 15_000;
/** RFC 8628 §3.5: without an interval the client waits 5 s; `slow_down` adds 5 s. */
const DEFAULT_INTERVAL_S = 5;
const SLOW_DOWN_S = 5;
const MAX_INTERVAL_S = 60;
/** A sign-in nobody confirmed within half an hour is given up. */
const MAX_EXPIRES_S = 1800;

const boundedSeconds = (value: unknown, fallback: number, max: number): number =>
  typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.min(value, max) : fallback;

/** http only to this machine; anything else must be https, since tokens come back over it. */
function checkedEndpoint(value: unknown, what: string): URL {
  if (typeof value !== "string") throw new CliError(`the identity provider names no ${what}`, EXIT.auth);
  const url = new URL(value);
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new CliError(`the identity provider's ${what} is not https: ${url.href}`, EXIT.auth);
  }
  return url;
}

async function postForm(
  url: URL,
  fields: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(fields),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new CliError(
      `could not reach the identity provider at ${url.origin} (${(error as Error).message})`,
      EXIT.failure,
    );
  }
  let body: Record<string, unknown> = {};
  try {
    body = (await response.json()) as Record<string, unknown>;
  } catch {
    // An answer that is not JSON: its status says what there is to say.
  }
  return { status: response.status, body };
}

/** Signs a person in; resolves with the access token. `note` shows them where to go. */
export async function deviceLogin(login: CliLogin, note: (text: string) => void): Promise<string> {
  const discovery = checkedEndpoint(`${login.issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`, "issuer");
  let metadata: Record<string, unknown>;
  try {
    const response = await fetch(discovery, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!response.ok) throw new Error(`status ${response.status}`);
    metadata = (await response.json()) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(
      `could not read the identity provider's configuration at ${discovery.href} (${(error as Error).message})`,
      EXIT.failure,
    );
  }
  if (metadata.device_authorization_endpoint === undefined) {
    throw new CliError(
      "the identity provider offers no device sign-in; log in with an access token instead: `modelgate login --token-stdin`",
      EXIT.auth,
    );
  }
  const deviceEndpoint = checkedEndpoint(metadata.device_authorization_endpoint, "device authorization endpoint");
  const tokenEndpoint = checkedEndpoint(metadata.token_endpoint, "token endpoint");

  const started = await postForm(deviceEndpoint, { client_id: login.clientId, scope: login.scope });
  const { device_code: deviceCode, user_code: userCode } = started.body;
  const verification = started.body.verification_uri_complete ?? started.body.verification_uri;
  if (started.status !== 200 || typeof deviceCode !== "string" || typeof userCode !== "string") {
    throw new CliError(
      `the identity provider refused to start a sign-in: ${String(started.body.error_description ?? started.body.error ?? started.status)}`,
      EXIT.auth,
    );
  }
  const page = checkedEndpoint(verification, "verification page");
  note(`To sign in, open ${page.href}`);
  note(`and check that it shows the code ${userCode}. Waiting…`);

  // Bounded, whatever the provider says: a huge interval would overflow the timer into a tight loop.
  let intervalS = boundedSeconds(started.body.interval, DEFAULT_INTERVAL_S, MAX_INTERVAL_S);
  const expiresInS = boundedSeconds(started.body.expires_in, 600, MAX_EXPIRES_S);
  const deadline = Date.now() + expiresInS * 1000;
  while (Date.now() < deadline) {
    await sleep(intervalS * 1000);
    const { status, body } = await postForm(tokenEndpoint, {
      grant_type: "urn:ietf:params:oauth:grant-type:device_code",
      device_code: deviceCode,
      client_id: login.clientId,
    });
    if (status === 200 && typeof body.access_token === "string") return body.access_token;
    switch (body.error) {
      case "authorization_pending":
        continue;
      case "slow_down":
        intervalS = Math.min(intervalS + SLOW_DOWN_S, MAX_INTERVAL_S);
        continue;
      case "access_denied":
        throw new CliError("the sign-in was refused at the identity provider", EXIT.auth);
      case "expired_token":
        throw new CliError("the code expired before it was confirmed: run `modelgate login` again", EXIT.auth);
      default:
        throw new CliError(
          `the identity provider refused the sign-in: ${String(body.error_description ?? body.error ?? status)}`,
          EXIT.auth,
        );
    }
  }
  throw new CliError("the code expired before it was confirmed: run `modelgate login` again", EXIT.auth);
}
