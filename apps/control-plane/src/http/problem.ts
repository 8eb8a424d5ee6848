import type { Logger } from "@modelgate/core";
import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import { ApiError, type ErrorCode, type FieldIssue } from "./errors.js";
import { requestIdOf } from "./request-id.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  requestId: string;
  errors?: readonly FieldIssue[];
}

export const problemType = (code: ErrorCode) => `urn:modelgate:problem:${code}`;

function sendProblem(res: Response, error: ApiError): void {
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
  // The path is echoed for the caller's benefit, cut short so the error stays small.
  next(new ApiError("not_found", `no route for ${req.method} ${req.path.slice(0, 200)}`));
};

interface HttpErrorLike {
  type?: unknown;
  limit?: unknown;
  status?: unknown;
  expose?: unknown;
}

/**
 * Express and body-parser raise `http-errors` for what clients get wrong
 * (undecodable path parameters, bad compression, wrong charset). Map the
 * known ones to their codes and any other exposed 4xx to invalid_request, so
 * a client's mistake is never reported as the server's.
 */
function fromHttpError(error: HttpErrorLike): ApiError | undefined {
  // The router's decodeURIComponent of a path parameter such as `%ZZ`.
  if (error instanceof URIError)
    return new ApiError("invalid_request", "a path parameter is not valid percent-encoding");
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
  }
  if (typeof error.status === "number" && error.status >= 400 && error.status < 500 && error.expose === true) {
    if (error.status === 413) return new ApiError("payload_too_large", "the request body is too large");
    if (error.status === 415)
      return new ApiError("unsupported_media_type", "the request body's encoding is not supported");
    return new ApiError("invalid_request", "the request could not be read (bad encoding in the path or body)");
  }
  return undefined;
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    let apiError: ApiError | undefined;
    if (error instanceof ApiError) apiError = error;
    else if (typeof error === "object" && error !== null) apiError = fromHttpError(error);
    if (!apiError) {
      // Log the real cause, but tell the client nothing about it: internal
      // messages can carry SQL, hostnames or worse.
      logger.error({ err: error, requestId: requestIdOf(res), method: req.method, path: req.path }, "unhandled error");
      apiError = new ApiError("internal", "an internal error occurred; quote the requestId when reporting it");
    }
    sendProblem(res, apiError);
  };
}
