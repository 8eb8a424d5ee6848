import { type Backoff, createBackoff } from "@modelgate/core";
import { allowInsecureRequests, discovery } from "openid-client";
import { describeError } from "./errors.js";
import { createIssuerKeySet, type IssuerKeySet } from "./jwks.js";
import type { OidcIssuerConfig, OidcLogger } from "./options.js";

export interface TrustedIssuerSettings {
  allowInsecureRequests: boolean;
  jwksCooldownMs: number;
  jwksCacheMaxAgeMs: number;
  httpTimeoutMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  logger: OidcLogger | undefined;
}

/**
 * One configured issuer and its discovery state. Until discovery succeeds
 * its tokens cannot be checked (503); a failed discovery is retried in the
 * background with jittered exponential backoff, so a gateway that starts
 * before its IdP becomes ready on its own.
 */
export class TrustedIssuer {
  readonly config: OidcIssuerConfig;
  readonly #settings: TrustedIssuerSettings;
  readonly #backoff: Backoff;
  #keys: IssuerKeySet | undefined;
  #retry: NodeJS.Timeout | undefined;
  #started = false;
  #closed = false;

  constructor(config: OidcIssuerConfig, settings: TrustedIssuerSettings) {
    this.config = config;
    this.#settings = settings;
    this.#backoff = createBackoff({ initialMs: settings.retryInitialMs, maxMs: settings.retryMaxMs });
  }

  /** The issuer's keys; undefined until discovery has succeeded. */
  get keys(): IssuerKeySet | undefined {
    return this.#keys;
  }

  get discovered(): boolean {
    return this.#keys !== undefined;
  }

  /** Runs the first discovery attempt; never rejects. */
  async start(): Promise<void> {
    if (this.#started || this.#closed) return;
    this.#started = true;
    await this.#attempt();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  async #attempt(): Promise<void> {
    const { issuer } = this.config;
    const { logger } = this.#settings;
    let jwksUri: URL;
    try {
      jwksUri = await discoverJwksUri(issuer, this.#settings);
    } catch (error) {
      if (this.#closed) return;
      const delayMs = this.#backoff.next();
      logger?.warn({ issuer, retryInMs: delayMs, err: describeError(error) }, "OIDC discovery failed; will retry");
      this.#retry = setTimeout(() => void this.#attempt(), delayMs);
      // Retrying must never be what keeps a process alive at shutdown.
      this.#retry.unref();
      return;
    }
    if (this.#closed) return;
    const keys = createIssuerKeySet({
      issuer,
      jwksUri,
      cooldownMs: this.#settings.jwksCooldownMs,
      cacheMaxAgeMs: this.#settings.jwksCacheMaxAgeMs,
      timeoutMs: this.#settings.httpTimeoutMs,
      logger,
    });
    logger?.info({ issuer, jwksUri: jwksUri.href }, "OIDC issuer discovered");
    // Fetched before the issuer counts as discovered, so the first tokens
    // do not all wait on the same JWKS request.
    await keys.prefetch();
    if (!this.#closed) this.#keys = keys;
  }
}

/**
 * OpenID Provider discovery. openid-client already insists that the
 * document's `issuer` is the URL it was fetched for (modulo URL
 * normalisation); the exact comparison here matters because tokens are
 * matched to this configuration by their `iss` string.
 */
async function discoverJwksUri(issuer: string, settings: TrustedIssuerSettings): Promise<URL> {
  const configuration = await discovery(new URL(issuer), "modelgate", undefined, undefined, {
    execute: settings.allowInsecureRequests ? [allowInsecureRequests] : [],
    // openid-client counts in whole seconds.
    timeout: Math.max(1, Math.ceil(settings.httpTimeoutMs / 1000)),
  });
  const metadata = configuration.serverMetadata();
  if (metadata.issuer !== issuer) {
    throw new Error(`the discovery document names the issuer "${metadata.issuer}"; configure exactly that`);
  }
  if (typeof metadata.jwks_uri !== "string") throw new Error("the discovery document has no jwks_uri");
  const jwksUri = new URL(metadata.jwks_uri);
  const secure = jwksUri.protocol === "https:" || (settings.allowInsecureRequests && jwksUri.protocol === "http:");
  if (!secure) throw new Error("the discovery document's jwks_uri is not https");
  return jwksUri;
}
