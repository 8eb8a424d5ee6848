// Which HTTP headers may cross modelgate between a caller and a runtime.
// The caller's credentials stop at the gateway and the runtime's credential
// is added by the agent, so neither side ever sees the other's secrets.

/** Connection-specific headers (RFC 9110 §7.6.1) plus legacy ones. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

const NEVER_TO_RUNTIME = new Set([
  ...HOP_BY_HOP,
  "host",
  "content-length",
  // The agent asks for identity encoding: it must read the body to mask it.
  "accept-encoding",
  "expect",
  // Credentials of the caller, in every spelling clients use.
  "authorization",
  "proxy-authorization",
  "cookie",
  "api-key",
  "x-api-key",
  // Where the caller is, and which proxies it went through, is the audit
  // record's business, not the runtime's.
  "forwarded",
  "x-real-ip",
  "x-ms-client-principal",
  "x-ms-client-principal-id",
  "x-ms-client-principal-name",
]);

/**
 * Prefixes of headers that proxies in front of the gateway add, several of
 * which carry the caller's identity or access token (oauth2-proxy's
 * `x-forwarded-access-token`, `x-auth-request-*`, AWS ALB's `x-amzn-oidc-*`,
 * Cloudflare Access, Google IAP, Azure App Service).
 */
const NEVER_TO_RUNTIME_PREFIXES = [
  "x-forwarded-",
  "x-auth-request-",
  "x-amzn-oidc-",
  "cf-access-",
  "x-goog-iap-",
  "x-ms-token-",
  // Envoy acts on these (retries, timeouts, "internal" requests, the original path).
  "x-envoy-",
];

/**
 * Headers that change what a request *is* to some server or framework behind
 * the agent, after the gateway's policy decided on what it saw:
 *
 * - its method: `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`,
 *   `X-Original-Method` (a POST classified as inference would become, say, a
 *   DELETE of a model at a runtime that honours them);
 * - its path: `X-Original-URL`, `X-Rewrite-URL`, `X-Original-URI`,
 *   `X-Envoy-Original-Path` (IIS, Symfony, Envoy and others route by them);
 * - its host and the caller's address: `X-Host`, `X-Original-Host`,
 *   `X-Client-IP`, `True-Client-IP`, `CF-Connecting-IP`, `X-Remote-Addr`
 *   (absolute URLs and allow lists at the runtime).
 *
 * Matched as a class, not a list: each framework spells them its own way,
 * and the one spelling a list misses is the one that gets through.
 */
function changesRequestTarget(name: string): boolean {
  if (name.includes("method-override") || /-(?:ip|addr|host)$/.test(name)) return true;
  return name.startsWith("x-") && (name.includes("method") || /-(?:url|uri|path)(?:-|$)/.test(name));
}

const NEVER_TO_CALLER = new Set([
  ...HOP_BY_HOP,
  // The gateway re-frames the body (and masking may change its length).
  "content-length",
  "set-cookie",
  "server",
  "date",
]);

/** modelgate's own headers are set by modelgate only. */
const MODELGATE_PREFIX = "x-modelgate-";

export interface HeaderPair {
  name: string;
  value: string;
}

type HeaderInput = Iterable<HeaderPair> | Record<string, string | string[] | undefined>;

function pairs(headers: HeaderInput): HeaderPair[] {
  if (Symbol.iterator in headers) return [...(headers as Iterable<HeaderPair>)];
  const result: HeaderPair[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) result.push({ name, value: item });
  }
  return result;
}

function filter(
  headers: HeaderInput,
  refused: Set<string>,
  refusedPrefixes: readonly string[] = [],
  refusedClass: (name: string) => boolean = () => false,
): HeaderPair[] {
  const all = pairs(headers).map(({ name, value }) => ({ name: name.toLowerCase(), value }));
  // Headers named in `Connection` are hop-by-hop for this message too.
  const named = new Set<string>();
  for (const { name, value } of all) {
    if (name === "connection") for (const token of value.split(",")) named.add(token.trim().toLowerCase());
  }
  return all.filter(
    ({ name }) =>
      !refused.has(name) &&
      !named.has(name) &&
      !name.startsWith(MODELGATE_PREFIX) &&
      !refusedPrefixes.some((prefix) => name.startsWith(prefix)) &&
      !refusedClass(name),
  );
}

/** End-to-end request headers a runtime may see. */
export function headersForRuntime(headers: HeaderInput): HeaderPair[] {
  return filter(headers, NEVER_TO_RUNTIME, NEVER_TO_RUNTIME_PREFIXES, changesRequestTarget);
}

/** Response headers from a runtime that may reach the caller. */
export function headersForCaller(headers: HeaderInput): HeaderPair[] {
  return filter(headers, NEVER_TO_CALLER);
}

/** Header pairs as Node and undici take them: repeated names become arrays. */
export function headerRecord(headers: Iterable<HeaderPair>): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = {};
  for (const { name, value } of headers) {
    const existing = record[name];
    record[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return record;
}

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;
/**
 * Above every credential modelgate accepts (access tokens up to 16 KiB), so
 * a caller can refuse an oversized token by its size rather than as "not
 * Bearer"; a bound all the same, since callers pass whatever arrived.
 */
const MAX_AUTHORIZATION_LENGTH = 32 * 1024;

/** The token of an `Authorization: Bearer <token>` value; undefined for anything else. */
export function bearerToken(authorization: unknown): string | undefined {
  if (typeof authorization !== "string" || authorization.length > MAX_AUTHORIZATION_LENGTH) return undefined;
  return BEARER.exec(authorization)?.[1];
}
