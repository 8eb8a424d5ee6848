// Errors as OpenAI-compatible clients expect them:
// {"error": {"message", "type", "code", "param"}}, with stable codes.
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
  not_found: { status: 404, type: "invalid_request_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  // The body did not arrive in time (idle too long, or slower than the minimum rate).
  request_timeout: { status: 408, type: "invalid_request_error" },
  payload_too_large: { status: 413, type: "invalid_request_error" },
  rate_limited: { status: 429, type: "rate_limit_error" },
  // The caller already has as many requests in flight as one subject may.
  too_many_in_flight: { status: 429, type: "rate_limit_error" },
  internal: { status: 500, type: "server_error" },
  upstream_error: { status: 502, type: "server_error" },
  // The agent could not mask the response; nothing unmasked was sent.
  masking_failed: { status: 502, type: "server_error" },
  no_agent_available: { status: 503, type: "server_error" },
  identity_provider_unavailable: { status: 503, type: "server_error" },
  rate_limiter_unavailable: { status: 503, type: "server_error" },
  // The request's audit record could not be kept (issue: no unrecorded inference).
  audit_unavailable: { status: 503, type: "server_error" },
  upstream_timeout: { status: 504, type: "server_error" },
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly param: string | null;
  /** Extra response headers (retry-after, www-authenticate). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    code: GatewayErrorCode,
    message: string,
    param: string | null = null,
    headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.param = param;
    this.headers = headers;
  }

  get status(): number {
    return GATEWAY_ERRORS[this.code].status;
  }
}

export function errorBody(code: GatewayErrorCode, message: string, param: string | null = null) {
  return { error: { message, type: GATEWAY_ERRORS[code].type, code, param } };
}

/** Writes an error response unless the head already went out. */
export function sendError(res: ServerResponse, error: GatewayError, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(errorBody(error.code, error.message, error.param));
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
    res.end(`\n\ndata: ${JSON.stringify(errorBody(code, message))}\n\n`);
  } else if (contentType.startsWith("application/x-ndjson")) {
    // Ollama's clients raise the `error` field of a stream line.
    res.end(`\n${JSON.stringify({ error: message, code })}\n`);
  } else {
    // No in-band way to signal failure: cut the chunked transfer short so
    // the client sees an incomplete response, never a truncated "success".
    res.destroy(new Error(message));
  }
}
