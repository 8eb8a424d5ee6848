/**
 * The control plane's error hierarchy. Every error a client can see has a
 * stable machine code with one HTTP status; the handler in problem.ts renders
 * them as RFC 9457 problem+json. Anything that is not an ApiError is a bug or
 * an outage and is shown to the client only as a generic `internal` error.
 */

export const ERROR_STATUS = {
  invalid_request: 400,
  malformed_json: 400,
  unauthenticated: 401,
  forbidden: 403,
  self_approval: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  already_decided: 409,
  already_voted: 409,
  approval_expired: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  internal: 500,
  unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

const TITLES: Record<ErrorCode, string> = {
  invalid_request: "The request is invalid",
  malformed_json: "The request body is not valid JSON",
  unauthenticated: "Authentication is required",
  forbidden: "Not allowed",
  self_approval: "A request cannot be approved by the person who made it",
  not_found: "Not found",
  method_not_allowed: "Method not allowed",
  conflict: "Conflict with the current state",
  already_decided: "The approval is decided already",
  already_voted: "This approver has decided already",
  approval_expired: "The approval expired",
  payload_too_large: "The request body is too large",
  unsupported_media_type: "Unsupported media type",
  internal: "Internal error",
  unavailable: "Service unavailable",
};

export interface FieldIssue {
  /** JSON-pointer-like path of the offending value, e.g. `body.models.2`. */
  path: string;
  message: string;
}

export class ApiError extends Error {
  override name = "ApiError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly title: string;
  /** Shown to the client: must never contain secrets or internal details. */
  readonly detail: string;
  readonly issues: readonly FieldIssue[] | undefined;

  constructor(code: ErrorCode, detail: string, issues?: readonly FieldIssue[]) {
    super(detail);
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.title = TITLES[code];
    this.detail = detail;
    this.issues = issues;
  }
}

export const invalidRequest = (detail: string, issues?: readonly FieldIssue[]) =>
  new ApiError("invalid_request", detail, issues);
export const notFound = (detail: string) => new ApiError("not_found", detail);
export const conflict = (detail: string) => new ApiError("conflict", detail);
export const unauthenticated = (detail: string) => new ApiError("unauthenticated", detail);
export const forbidden = (detail: string) => new ApiError("forbidden", detail);
