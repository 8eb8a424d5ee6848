// Errors with stable codes, in the shape the client of each API expects: a
// refusal the client cannot read is one the user never sees (the `ollama`
// client printed "[object Object]" for OpenAI's nested shape).
import type { ServerResponse } from "node:http";

export const GATEWAY_ERRORS = {
  invalid_request: { status: 400, type: "invalid_request_error" },
  unauthenticated: { status: 401, type: "authentication_error" },
  // An OIDC access token that failed verification, with the precise reason.
  token_malformed: { status: 401, type: "authentication_error" },
  token_expired: { status: 401, type: "authentication_error" },
  token_not_yet_valid: { status: 401, type: "authentication_error" },
  token_audience_invalid: { status: 401, type: "authentication_error" },
  token_issuer_untrusted: { status: 401, type: "authentication_error" },
  token_signature_invalid: { status: 401, type: "authentication_error" },
  token_algorithm_refused: { status: 401, type: "authentication_error" },
  token_key_unknown: { status: 401, type: "authentication_error" },
  token_claims_invalid: { status: 401, type: "authentication_error" },
  model_not_allowed: { status: 403, type: "permission_error" },
  operation_not_allowed: { status: 403, type: "permission_error" },
  parameter_limit_exceeded: { status: 403, type: "permission_error" },
  prompt_blocked: { status: 403, type: "permission_error" },
  // A human must approve the request first; the body names the approval and where it is decided.
  approval_required: { status: 403, type: "permission_error" },
  // An approver denied it; the message carries their comment.
  approval_denied: { status: 403, type: "permission_error" },
  not_found: { status: 404, type: "invalid_request_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  // The body did not arrive in time (idle too long, or slower than the minimum rate).
  request_timeout: { status: 408, type: "invalid_request_error" },
  payload_too_large: { status: 413, type: "invalid_request_error" },
  rate_limited: { status: 429, type: "rate_limit_error" },
  // The grant's quota for this period is used up (docs/policies.md#quotas).
  quota_exceeded: { status: 429, type: "rate_limit_error" },
  // The caller already has as many requests in flight as one subject may.
  too_many_in_flight: { status: 429, type: "rate_limit_error" },
  // The caller has as many approvals pending as one subject may.
  too_many_pending_approvals: { status: 429, type: "rate_limit_error" },
  internal: { status: 500, type: "server_error" },
  upstream_error: { status: 502, type: "server_error" },
  // The agent could not mask the response; nothing unmasked was sent.
  masking_failed: { status: 502, type: "server_error" },
  no_agent_available: { status: 503, type: "server_error" },
  identity_provider_unavailable: { status: 503, type: "server_error" },
  rate_limiter_unavailable: { status: 503, type: "server_error" },
  // Quotas cannot be checked (Redis unreachable, no lease left) or their counters were lost.
  quota_unavailable: { status: 503, type: "server_error" },
  // The request's audit record could not be kept (issue: no unrecorded inference).
  audit_unavailable: { status: 503, type: "server_error" },
  // The control plane, which opens and settles approvals, cannot be reached: held requests are refused.
  approval_unavailable: { status: 503, type: "server_error" },
  upstream_timeout: { status: 504, type: "server_error" },
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly param: string | null;
  /** Extra response headers (retry-after, www-authenticate). */
  readonly headers: Readonly<Record<string, string>>;
  /** Extra fields of the error body, such as `approval_id` (beside `code`, in every dialect). */
  readonly fields: Readonly<Record<string, string>>;
  constructor(
    code: GatewayErrorCode,
    message: string,
    param: string | null = null,
    headers: Readonly<Record<string, string>> = {},
    fields: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.param = param;
    this.headers = headers;
    this.fields = fields;
  }

  get status(): number {
    return GATEWAY_ERRORS[this.code].status;
  }
}

/**
 * Whose error shape a refusal takes:
 * - `openai`: `{"error": {"message", "type", "code", "param"}}`;
 * - `ollama`: `{"error": "<message>", "code"}` (its clients raise the string);
 * - `tgi`: `{"error": "<message>", "error_type", "code"}` (Text Generation
 *   Inference's own shape; its `error` is a string too, so Ollama readers cope);
 * - `anthropic`: `{"type": "error", "error": {"type", "message", "code", "param"}}`
 *   (Anthropic's Messages API; its SDK raises `error.message` by status).
 */
export type ErrorDialect = "openai" | "ollama" | "tgi" | "anthropic";

/** Anthropic's Messages API, the one route of Anthropic's the runtimes serve. */
const ANTHROPIC_PATHS = new Set(["/v1/messages"]);

/** TGI's native paths; `/` too under a connection (TGI's compat route, and Ollama's banner). */
const TGI_PATHS = new Set(["/", "/generate", "/generate_stream", "/info", "/tokenize", "/embed"]);

/**
 * The dialect of a request target, decided by the shape of its path alone:
 * `/v1/…` is OpenAI's API, `/api/…` Ollama's and `/generate…` TGI's, at the
 * top level and under `/c/{connection}/` alike. Never by looking the
 * connection up: a refusal that came in a different shape for an existing
 * connection than for a made-up one would tell unauthenticated callers which
 * connections exist. Everything else gets the gateway's own (OpenAI) shape.
 */
export function errorDialectFor(url: string): ErrorDialect {
  const pathEnd = url.search(/[?#]/);
  let path = pathEnd === -1 ? url : url.slice(0, pathEnd);
  const native = path.startsWith("/c/");
  if (native) {
    const slash = path.indexOf("/", 3);
    path = slash === -1 ? "/" : path.slice(slash);
  }
  const route = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  if (ANTHROPIC_PATHS.has(route)) return "anthropic";
  if (path === "/v1" || path.startsWith("/v1/")) return "openai";
  if (path === "/api" || path.startsWith("/api/")) return "ollama";
  if (TGI_PATHS.has(route) && (native || route !== "/")) return "tgi";
  return "openai";
}

/** TGI's `error_type` categories, which its clients map to exception classes. */
function tgiErrorType(status: number): string {
  if (status === 401) return "authentication";
  if (status === 429 || status === 503) return "overloaded";
  if (status >= 500) return "incomplete_generation";
  return "validation";
}

export function errorBody(
  code: GatewayErrorCode,
  message: string,
  param: string | null = null,
  dialect: ErrorDialect = "openai",
  fields: Readonly<Record<string, string>> = {},
) {
  switch (dialect) {
    case "ollama":
      return { error: message, code, ...fields };
    case "tgi":
      return { error: message, error_type: tgiErrorType(GATEWAY_ERRORS[code].status), code, ...fields };
    case "openai":
      return { error: { message, type: GATEWAY_ERRORS[code].type, code, param, ...fields } };
    case "anthropic":
      return {
        type: "error",
        error: { type: anthropicErrorType(GATEWAY_ERRORS[code].status), message, code, param, ...fields },
      };
  }
}

/** Anthropic's error `type` for each status, which its SDK's users branch on. */
function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/**
 * Writes an error response unless the head already went out, in the dialect
 * of the request's path (every call site gets it, without passing it along).
 */
export function sendError(res: ServerResponse, error: GatewayError, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const dialect = errorDialectFor(res.req.url ?? "/");
  const body = JSON.stringify(errorBody(error.code, error.message, error.param, dialect, error.fields));
  res.writeHead(error.status, {
    ...error.headers,
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    // A refused request whose body was not read (401, 413, …): close the
    // connection rather than read and discard an unbounded upload.
    ...(res.req.complete ? {} : { connection: "close" }),
  });
  res.end(body);
}

/**
 * Ends a response whose head was already sent, in a way the client cannot
 * mistake for success: an error event in the stream's own format, or (for a
 * plain body) an aborted transfer.
 */
export function failStartedResponse(res: ServerResponse, code: GatewayErrorCode, message: string): void {
  if (res.destroyed || res.writableEnded) return;
  const contentType = String(res.getHeader("content-type") ?? "").toLowerCase();
  if (contentType.startsWith("text/event-stream")) {
    // OpenAI's SDKs raise `error.message` of an event; TGI's clients raise
    // a string `error` with its `error_type`, as TGI itself sends them;
    // Anthropic's SDK raises an `error` event, as Anthropic's API sends it.
    const dialect = errorDialectFor(res.req.url ?? "/");
    if (dialect === "anthropic") {
      res.end(`\n\nevent: error\ndata: ${JSON.stringify(errorBody(code, message, null, dialect))}\n\n`);
      return;
    }
    res.end(`\n\ndata: ${JSON.stringify(errorBody(code, message, null, dialect === "tgi" ? "tgi" : "openai"))}\n\n`);
  } else if (contentType.startsWith("application/x-ndjson")) {
    // Ollama's clients raise the `error` field of a stream line.
    res.end(`\n${JSON.stringify(errorBody(code, message, null, "ollama"))}\n`);
  } else {
    // No in-band way to signal failure: cut the chunked transfer short so
    // the client sees an incomplete response, never a truncated "success".
    res.destroy(new Error(message));
  }
}
