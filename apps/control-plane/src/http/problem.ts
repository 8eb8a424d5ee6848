import type { Logger } from "@modelgate/core";
import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import { ApiError, type ErrorCode, type FieldIssue } from "./errors.js";
import { requestIdOf } from "./request-id.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  requestId: string;
  errors?: readonly FieldIssue[];
}

export const problemType = (code: ErrorCode) => `urn:modelgate:problem:${code}`;

export function sendProblem(res: Response, error: ApiError): void {
  const body: ProblemBody = {
    type: problemType(error.code),
    title: error.title,
    status: error.status,
    code: error.code,
    detail: error.detail,
    requestId: requestIdOf(res),
    ...(error.issues?.length ? { errors: error.issues } : {}),
  };
  if (error.code === "unauthenticated") res.setHeader("www-authenticate", 'Bearer realm="modelgate"');
  res.status(error.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}

/** Unknown routes are a problem+json 404 too, never Express's HTML page. */
export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new ApiError("not_found", `no route for ${req.method} ${req.path}`));
};

/** Errors raised by body-parser carry a `type`; map the ones a client causes. */
function fromBodyParser(error: { type?: unknown; limit?: unknown }): ApiError | undefined {
  switch (error.type) {
    case "entity.too.large":
      return new ApiError("payload_too_large", `request bodies are limited to ${error.limit} bytes`);
    case "entity.parse.failed":
      return new ApiError("malformed_json", "the request body could not be parsed as JSON");
    case "encoding.unsupported":
    case "charset.unsupported":
      return new ApiError("unsupported_media_type", "request bodies must be UTF-8 JSON");
    case "request.aborted":
    case "request.size.invalid":
      return new ApiError("invalid_request", "the request body was incomplete");
    default:
      return undefined;
  }
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    let apiError: ApiError | undefined;
    if (error instanceof ApiError) apiError = error;
    else if (typeof error === "object" && error !== null) apiError = fromBodyParser(error);
    if (!apiError) {
      // Log the real cause, but tell the client nothing about it: internal
      // messages can carry SQL, hostnames or worse.
      logger.error({ err: error, requestId: requestIdOf(res), method: req.method, path: req.path }, "unhandled error");
      apiError = new ApiError("internal", "an internal error occurred; quote the requestId when reporting it");
    }
    sendProblem(res, apiError);
  };
}
