import type { ServerResponse } from "node:http";
import { sendJson } from "./http.js";

/**
 * Which runtime's conventions a path follows. Clients parse errors by these
 * shapes (the `openai` SDK reads `error.message`, the `ollama` client reads a
 * string `error`), so an error in the wrong shape would break them differently
 * from the real runtime. "generic" covers paths shared by several runtimes
 * (`/health`, `/metrics`) and unknown paths outside every protocol's prefix.
 */
export type Protocol = "openai" | "ollama" | "tgi" | "anthropic" | "generic";

export interface ErrorDetails {
  /** OpenAI: the request field at fault. */
  param?: string | null;
  /** OpenAI: a machine-readable code such as "model_not_found". */
  code?: string | null;
  /** OpenAI `type` or TGI `error_type`; derived from the status when omitted. */
  type?: string;
}

/**
 * A request the fixture refuses. Thrown by route handlers and turned into the
 * route's protocol error shape in one place, so no handler formats errors.
 */
export class FixtureRequestError extends Error {
  override name = "FixtureRequestError";
  readonly status: number;
  readonly details: ErrorDetails;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message: string, details: ErrorDetails = {}, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.details = details;
    this.headers = headers;
  }
}

export function protocolForPath(pathname: string): Protocol {
  if (pathname.startsWith("/v1/")) return "openai";
  if (pathname === "/" || pathname.startsWith("/api/")) return "ollama";
  if (pathname === "/generate" || pathname === "/generate_stream" || pathname === "/info") return "tgi";
  return "generic";
}

function errorBody(protocol: Protocol, status: number, message: string, details: ErrorDetails = {}): unknown {
  switch (protocol) {
    case "openai":
      return {
        error: {
          message,
          type: details.type ?? openAiErrorType(status),
          param: details.param ?? null,
          code: details.code ?? null,
        },
      };
    case "tgi":
      return { error: message, error_type: details.type ?? tgiErrorType(status) };
    case "anthropic":
      // vLLM's and Anthropic's own shape; the SDK raises `error.message` by status.
      return { type: "error", error: { type: details.type ?? anthropicErrorType(status), message } };
    case "ollama":
    case "generic":
      return { error: message };
  }
}

export function sendError(
  res: ServerResponse,
  protocol: Protocol,
  status: number,
  message: string,
  details?: ErrorDetails,
): void {
  sendJson(res, status, errorBody(protocol, status, message, details));
}

function openAiErrorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

function tgiErrorType(status: number): string {
  if (status === 401) return "authentication";
  if (status === 424) return "generation";
  if (status === 429) return "overloaded";
  if (status >= 500) return "incomplete_generation";
  return "validation";
}

function anthropicErrorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 413) return "request_too_large";
  if (status === 429) return "rate_limit_error";
  if (status === 529 || status === 503) return "overloaded_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}
