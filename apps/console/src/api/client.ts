// The console's one way to call the control plane: a client typed by the
// OpenAPI document (generated/schema.d.ts), same origin, authenticated by
// the HttpOnly session cookie the browser sends. The page never sees a
// token; state-changing calls carry the session's CSRF token, which the
// API checks against the cookie.
import createClient, { type Middleware } from "openapi-fetch";
import type { operations, paths } from "./generated/schema";

export type { operations, paths };

/** The API's problem document (RFC 9457 with the project's fields). */
export interface Problem {
  status: number;
  code: string;
  detail: string;
  requestId?: string;
  errors?: { path: string; message: string }[];
}

/** An API call that did not succeed, carrying the problem the API answered with. */
export class ApiProblem extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.detail);
    this.problem = problem;
  }
}

let csrfToken: string | undefined;
let onUnauthenticated: () => void = () => {};

/** Set by the session provider once it knows the session. */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

/** Called when any call answers 401: the session ended (expired, signed out elsewhere, admin token rotated). */
export function whenUnauthenticated(handler: () => void): void {
  onUnauthenticated = handler;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

const session: Middleware = {
  onRequest({ request }) {
    if (!SAFE_METHODS.has(request.method) && csrfToken) request.headers.set("x-csrf-token", csrfToken);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) onUnauthenticated();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(session);

/** The problem of a failed call, for the page to show; anything else is a bug and is thrown on. */
export function problemOf(error: unknown): Problem {
  if (error instanceof ApiProblem) return error.problem;
  throw error;
}

/**
 * Every item of a listing, page after page along its cursor, up to
 * `maxPages` pages (a console page never walks an unbounded table).
 */
export async function allPages<T>(
  load: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>,
  maxPages = 20,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const answer = await load(cursor);
    items.push(...answer.items);
    if (!answer.nextCursor) break;
    cursor = answer.nextCursor;
  }
  return items;
}

/** A problem from whatever a failed call answered (JSON problem, or not). */
function toProblem(error: unknown, response: Response): Problem {
  if (error && typeof error === "object" && "code" in error && "detail" in error) return error as Problem;
  return { status: response.status, code: "http_error", detail: `the control plane answered ${response.status}` };
}

/** Unwraps an openapi-fetch result: the data, or an ApiProblem thrown. */
export async function call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: Awaited<typeof request>;
  try {
    result = await request;
  } catch {
    throw new ApiProblem({ status: 0, code: "network", detail: "the control plane cannot be reached" });
  }
  if (result.error !== undefined || !result.response.ok) throw new ApiProblem(toProblem(result.error, result.response));
  return result.data as T;
}

/**
 * For operations that answer several content types (replay): the JSON
 * answer, typed by the caller, who asked for JSON.
 */
export function callJson<T>(request: Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<T> {
  return call(request as Promise<{ data?: T; error?: unknown; response: Response }>);
}

type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
/** What an operation answers on success, by operationId. */
export type Answer<Op extends keyof operations> = JsonOf<
  operations[Op]["responses"][keyof operations[Op]["responses"] & (200 | 201)]
>;
/** An operation's JSON request body, by operationId. */
export type BodyOf<Op extends keyof operations> = operations[Op] extends {
  requestBody?: { content: { "application/json": infer T } };
}
  ? T
  : never;
