// Shared helpers for the identity tests. Every provider is a real
// oidc-provider on an ephemeral loopback port, so test files run in parallel.
import { type OidcIssuerConfig, OidcVerifier, type OidcVerifierOptions, TokenError } from "../src/index.js";
import type { TestIdentityProvider } from "../src/testing.js";

export interface LogEntry {
  level: "warn" | "info";
  obj: object;
  msg: string;
}

export function captureLogger(): {
  entries: LogEntry[];
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
} {
  const entries: LogEntry[] = [];
  return {
    entries,
    warn: (obj, msg) => entries.push({ level: "warn", obj, msg }),
    info: (obj, msg) => entries.push({ level: "info", obj, msg }),
  };
}

export function issuerConfig(idp: TestIdentityProvider, overrides: Partial<OidcIssuerConfig> = {}): OidcIssuerConfig {
  return { issuer: idp.issuer, audience: idp.audience, groupsClaim: "groups", userClaim: "sub", ...overrides };
}

/** A started verifier trusting the given providers over plain http. */
export async function startVerifier(
  idps: TestIdentityProvider[],
  options: Partial<OidcVerifierOptions> = {},
): Promise<OidcVerifier> {
  const verifier = new OidcVerifier({
    issuers: idps.map((idp) => issuerConfig(idp)),
    allowInsecureRequests: true,
    ...options,
  });
  await verifier.start();
  return verifier;
}

/** The TokenError code a verification fails with; fails the test when it succeeds or throws anything else. */
export async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof TokenError)) throw new Error(`expected a TokenError, got ${String(error)}`);
    return error.code;
  }
  throw new Error("expected the token to be refused");
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Claims of a token the provider could have issued, for signRaw. */
export function claimsFor(idp: TestIdentityProvider, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return { iss: idp.issuer, aud: idp.audience, sub: "alice", iat: now, exp: now + 300, jti: "raw-1", ...overrides };
}

export function base64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

export async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
