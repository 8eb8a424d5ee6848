import {
  allowInsecureRequests,
  authorizationCodeGrant,
  buildAuthorizationUrl,
  ClientError,
  ClientSecretBasic,
  type Configuration,
  calculatePKCECodeChallenge,
  discovery,
  None,
  randomNonce,
  randomPKCECodeVerifier,
  randomState,
} from "openid-client";
import type { ConsoleOidcClient } from "../config.js";
import type { PendingLogin } from "./logins.js";

/** Seconds openid-client waits for the identity provider (discovery, token endpoint). */
const IDP_TIMEOUT_SECONDS = 10;

/** Why a callback did not sign anyone in: the `error` the console's sign-in page gets. */
export type SignInErrorCode = "idp_error" | "state_mismatch" | "login_expired" | "token_invalid";

export class SignInFailure extends Error {
  override name = "SignInFailure";
  readonly code: SignInErrorCode;
  constructor(code: SignInErrorCode, reason: string) {
    super(reason);
    this.code = code;
  }
}

interface StartedLogin {
  /** Where the browser signs in. */
  authorizationUrl: URL;
  /** What the callback will check, to be kept server-side. */
  pending: PendingLogin;
}

interface CodeExchange {
  accessToken: string;
  /** Seconds the access token lives according to the token response, when it says. */
  expiresIn: number | undefined;
}

/** The console as an OpenID Connect relying party: authorization code flow with PKCE (S256), state and nonce. */
export interface ConsoleOidc {
  start(returnTo: string): Promise<StartedLogin>;
  /**
   * Redeems the code of a callback whose state already matched. `query` is
   * the callback's query string. Throws a SignInFailure: `token_invalid`
   * when the ID token does not check out (nonce, issuer, audience,
   * signature), `idp_error` when the provider refuses the code or cannot be
   * reached.
   */
  exchange(query: string, pending: PendingLogin): Promise<CodeExchange>;
}

export function createConsoleOidc(client: ConsoleOidcClient): ConsoleOidc {
  const wantsIdToken = client.scope.split(" ").includes("openid");
  let configuration: Promise<Configuration> | undefined;
  // Discovered on first use, not at start: an identity provider that is down
  // must not keep the control plane (and its API) from starting. A failed
  // discovery is forgotten, so the next sign-in tries again.
  const discovered = () => {
    configuration ??= discovery(
      new URL(client.issuer),
      client.clientId,
      { redirect_uris: [client.redirectUri], response_types: ["code"] },
      client.clientSecret === undefined ? None() : ClientSecretBasic(client.clientSecret),
      {
        execute: client.allowInsecureRequests ? [allowInsecureRequests] : [],
        timeout: IDP_TIMEOUT_SECONDS,
      },
    ).catch((error: unknown) => {
      configuration = undefined;
      throw error;
    });
    return configuration;
  };

  return {
    async start(returnTo) {
      const config = await discovered();
      const pending: PendingLogin = {
        state: randomState(),
        nonce: randomNonce(),
        codeVerifier: randomPKCECodeVerifier(),
        returnTo,
      };
      const authorizationUrl = buildAuthorizationUrl(config, {
        redirect_uri: client.redirectUri,
        scope: client.scope,
        code_challenge: await calculatePKCECodeChallenge(pending.codeVerifier),
        code_challenge_method: "S256",
        state: pending.state,
        ...(wantsIdToken ? { nonce: pending.nonce } : {}),
      });
      return { authorizationUrl, pending };
    },

    async exchange(query, pending) {
      let config: Configuration;
      try {
        config = await discovered();
      } catch (error) {
        throw new SignInFailure("idp_error", `discovery failed: ${(error as Error).message}`);
      }
      // The registered redirect URI, not the URL this request arrived at: behind
      // a proxy they differ, and the provider compares it with the one the
      // authorization request named.
      const callbackUrl = new URL(client.redirectUri);
      callbackUrl.search = query;
      try {
        const tokens = await authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          ...(wantsIdToken ? { expectedNonce: pending.nonce, idTokenExpected: true } : {}),
        });
        return { accessToken: tokens.access_token, expiresIn: tokens.expiresIn() };
      } catch (error) {
        // openid-client names its checks of JWTs (the ID token) OAUTH_JWT_*;
        // the rest is the provider refusing (invalid_grant) or not answering.
        const idToken = error instanceof ClientError && String(error.code).includes("JWT");
        throw new SignInFailure(idToken ? "token_invalid" : "idp_error", (error as Error).message);
      }
    },
  };
}
