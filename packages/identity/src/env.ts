import { ConfigError, envBoolean } from "@modelgate/core";
import type { OidcVerifierOptions } from "./options.js";

const MAX_CLOCK_TOLERANCE_SECONDS = 300;
const MAX_JWKS_COOLDOWN_MS = 3_600_000;
const MAX_CLAIM_NAME_LENGTH = 256;
// Each listed groups claim is looked up in every token; a handful covers
// every IdP layout we know of (groups, realm roles, client roles, app roles).
const MAX_GROUPS_CLAIMS = 16;

// The variables besides OIDC_ISSUER; setting any of them without an issuer is
// almost certainly a mistake (a typo in OIDC_ISSUER, a half-copied config),
// and silently running without OIDC would hide it.
const DEPENDENT_VARIABLES = [
  "OIDC_AUDIENCE",
  "OIDC_GROUPS_CLAIM",
  "OIDC_USER_CLAIM",
  "OIDC_CLOCK_TOLERANCE_SECONDS",
  "OIDC_ALLOW_INSECURE_HTTP",
  "OIDC_JWKS_COOLDOWN_MS",
] as const;

/**
 * Verifier options from `OIDC_*` environment variables, or undefined when
 * `OIDC_ISSUER` is unset (OIDC off). Several issuers may be listed, comma
 * separated; in this form they all share one audience list and one pair of
 * claim settings. Programmatic configuration can set those per issuer.
 *
 * Empty values count as unset, as everywhere in modelgate. Errors name the
 * variable; values are not echoed.
 */
export function oidcOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): OidcVerifierOptions | undefined {
  const value = (name: string): string | undefined => {
    const raw = env[name]?.trim();
    return raw === "" ? undefined : raw;
  };

  const issuerList = value("OIDC_ISSUER");
  if (issuerList === undefined) {
    const stray = DEPENDENT_VARIABLES.filter((name) => value(name) !== undefined);
    if (stray.length > 0) throw new ConfigError(`${stray.join(", ")} set but OIDC_ISSUER is not`);
    return undefined;
  }

  const allowInsecureRequests = booleanVariable("OIDC_ALLOW_INSECURE_HTTP", value("OIDC_ALLOW_INSECURE_HTTP"), false);
  const issuers = list(issuerList);
  if (issuers.length === 0) throw new ConfigError("OIDC_ISSUER: no issuer URL in the list");
  for (const [index, issuer] of issuers.entries()) {
    const where = issuers.length > 1 ? ` (entry ${index + 1})` : "";
    const url = URL.parse(issuer);
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) {
      throw new ConfigError(`OIDC_ISSUER${where}: expected an https:// URL`);
    }
    if (url.protocol === "http:" && !allowInsecureRequests) {
      throw new ConfigError(
        `OIDC_ISSUER${where}: http:// issuers need OIDC_ALLOW_INSECURE_HTTP=true, which is meant for development only`,
      );
    }
    if (url.search !== "" || url.hash !== "") {
      throw new ConfigError(`OIDC_ISSUER${where}: an issuer URL has no query or fragment`);
    }
  }
  if (new Set(issuers).size !== issuers.length) throw new ConfigError("OIDC_ISSUER: an issuer is listed twice");

  const audienceList = value("OIDC_AUDIENCE");
  const audiences = audienceList === undefined ? [] : list(audienceList);
  if (audiences.length === 0) throw new ConfigError("OIDC_AUDIENCE: required when OIDC_ISSUER is set");
  const audience = audiences.length === 1 ? (audiences[0] as string) : audiences;

  const groupsClaim = groupsClaims(value("OIDC_GROUPS_CLAIM"));
  const userClaim = claimName("OIDC_USER_CLAIM", value("OIDC_USER_CLAIM"), "sub");

  return {
    issuers: issuers.map((issuer) => ({ issuer, audience, groupsClaim, userClaim })),
    allowInsecureRequests,
    clockToleranceSeconds: integerVariable(
      "OIDC_CLOCK_TOLERANCE_SECONDS",
      value("OIDC_CLOCK_TOLERANCE_SECONDS"),
      30,
      MAX_CLOCK_TOLERANCE_SECONDS,
    ),
    jwksCooldownMs: integerVariable(
      "OIDC_JWKS_COOLDOWN_MS",
      value("OIDC_JWKS_COOLDOWN_MS"),
      30_000,
      MAX_JWKS_COOLDOWN_MS,
    ),
  };
}

function list(raw: string): string[] {
  return raw
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function booleanVariable(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined) return fallback;
  const parsed = envBoolean.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`${name}: expected true or false`);
  return parsed.data;
}

function integerVariable(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const parsed = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed > max) {
    throw new ConfigError(`${name}: expected a whole number from 0 to ${max}`);
  }
  return parsed;
}

function claimName(name: string, raw: string | undefined, fallback: string): string {
  if (raw === undefined) return fallback;
  if (raw.length > MAX_CLAIM_NAME_LENGTH) throw new ConfigError(`${name}: at most ${MAX_CLAIM_NAME_LENGTH} characters`);
  return raw;
}

/**
 * OIDC_GROUPS_CLAIM: one claim path or several, comma separated, whose
 * groups are merged. The comma is always a separator: claim names are
 * identifiers, dotted paths or URLs, and a URL-named claim with a comma in it
 * cannot be listed here (programmatic configuration takes an array instead).
 * An empty entry (`groups,,roles`, a trailing comma) is refused rather than
 * skipped, because it usually means a name went missing while editing.
 */
function groupsClaims(raw: string | undefined): string | string[] {
  const name = "OIDC_GROUPS_CLAIM";
  if (raw === undefined) return "groups";
  const claims = raw.split(",").map((claim) => claim.trim());
  if (claims.length > MAX_GROUPS_CLAIMS) throw new ConfigError(`${name}: at most ${MAX_GROUPS_CLAIMS} claims`);
  for (const [index, claim] of claims.entries()) {
    const where = claims.length > 1 ? ` (entry ${index + 1})` : "";
    if (claim === "") throw new ConfigError(`${name}${where}: empty claim name; separate claims with single commas`);
    if (claim.length > MAX_CLAIM_NAME_LENGTH) {
      throw new ConfigError(`${name}${where}: at most ${MAX_CLAIM_NAME_LENGTH} characters per claim`);
    }
  }
  if (new Set(claims).size !== claims.length) throw new ConfigError(`${name}: a claim is listed twice`);
  return claims.length === 1 ? (claims[0] as string) : claims;
}
