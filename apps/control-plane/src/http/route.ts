import type { Request, RequestHandler, Response, Router } from "express";
import type { z } from "zod";
import type { Authenticator, Principal, Role } from "./auth.js";
import { ApiError, type ErrorCode, type FieldIssue, forbidden, invalidRequest } from "./errors.js";
import { setRouteTemplate } from "./metrics.js";
import { requestIdOf } from "./request-id.js";

/**
 * Declarative routes: each one names its schemas (params, query, body,
 * response), who may call it, and one handler. The same declaration mounts
 * the Express route, validates input and output, and feeds the OpenAPI
 * document, so the document cannot drift from what the server enforces.
 */

type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

/**
 * What a handler returns instead of a JSON value when it writes the response
 * itself (a stream). Errors it throws before returning still become problem
 * responses; once it runs, the status and headers are its own.
 */
export class StreamedResponse {
  readonly send: (req: Request, res: Response) => Promise<void>;
  constructor(send: (req: Request, res: Response) => Promise<void>) {
    this.send = send;
  }
}

type Schema = z.ZodType;
type Out<S> = S extends Schema ? z.output<S> : undefined;

interface RouteContext<Params, Query, Body> {
  params: Params;
  query: Query;
  body: Body;
  principal: Principal;
  requestId: string;
}

export interface RouteSpec<P, Q, B, R> {
  method: HttpMethod;
  /** OpenAPI-style path relative to the API base, e.g. `/connections/{name}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** The role a caller needs, or the roles of which any one will do. */
  role: Role | readonly Role[];
  /**
   * Also admit any person signed in with OIDC, whatever their roles (the
   * admin token is not a person). For routes whose handler decides what each
   * caller may see or do (approvals: members of an approval's approver groups).
   */
  anyPerson?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  response: {
    status: 200 | 201 | 204;
    description: string;
    schema?: R;
    /** Other content types the handler may stream (as a StreamedResponse), with what each carries. */
    streams?: Readonly<Record<string, string>>;
  };
  /** Error codes this route can answer with, besides the ones every route has. */
  errors?: readonly ErrorCode[];
  handler(context: RouteContext<Out<P>, Out<Q>, Out<B>>): Promise<Out<R> | StreamedResponse>;
}

/** A route with its types erased, ready to mount and to document. */
export interface Route {
  method: HttpMethod;
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** Any one of these roles may call the route. */
  roles: readonly Role[];
  /** Any OIDC person may call it too; the handler checks what they may do. */
  anyPerson: boolean;
  schemas: { params?: Schema; query?: Schema; body?: Schema; response?: Schema };
  responseStatus: number;
  responseDescription: string;
  responseStreams: Readonly<Record<string, string>>;
  errors: readonly ErrorCode[];
  run(req: Request, principal: Principal, requestId: string): Promise<unknown>;
}

export function defineRoute<
  P extends Schema | undefined = undefined,
  Q extends Schema | undefined = undefined,
  B extends Schema | undefined = undefined,
  R extends Schema | undefined = undefined,
>(spec: RouteSpec<P, Q, B, R>): Route {
  const schemas = { params: spec.params, query: spec.query, body: spec.body, response: spec.response.schema };
  return {
    method: spec.method,
    path: spec.path,
    operationId: spec.operationId,
    summary: spec.summary,
    tag: spec.tag,
    roles: typeof spec.role === "string" ? [spec.role] : spec.role,
    anyPerson: spec.anyPerson ?? false,
    schemas: Object.fromEntries(Object.entries(schemas).filter(([, schema]) => schema !== undefined)),
    responseStatus: spec.response.status,
    responseDescription: spec.response.description,
    responseStreams: spec.response.streams ?? {},
    errors: spec.errors ?? [],
    async run(req, principal, requestId) {
      if (spec.body && !req.is("application/json")) {
        throw new ApiError("unsupported_media_type", "send the request body as application/json");
      }
      const context = {
        params: parseInput(spec.params, req.params, "params"),
        query: parseInput(spec.query, req.query, "query"),
        body: parseInput(spec.body, req.body, "body"),
        principal,
        requestId,
      } as RouteContext<Out<P>, Out<Q>, Out<B>>;
      const result = await spec.handler(context);
      if (result instanceof StreamedResponse) return result;
      // Parsing the output strips every field the schema does not declare,
      // so a service that returns a row with a hash in it cannot leak it.
      return spec.response.schema ? spec.response.schema.parse(result) : undefined;
    },
  };
}

function parseInput(schema: Schema | undefined, value: unknown, where: string): unknown {
  if (!schema) return undefined;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalidRequest(`the request ${where} is invalid`, toFieldIssues(result.error, where));
}

function toFieldIssues(error: z.ZodError, where: string): FieldIssue[] {
  return error.issues.slice(0, 20).map((issue) => ({
    path: [where, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
}

const toExpressPath = (path: string) => path.replace(/\{([A-Za-z0-9_]+)\}/g, ":$1");

/**
 * Resolves a request's console session cookie to a principal, or undefined
 * when it carries none; throws when the session is over or the request may
 * not use it (CSRF). See console/api-session.ts.
 */
export type SessionAuthenticator = (req: Request) => Promise<Principal | undefined>;

/**
 * Authenticates every request that reaches it and keeps the principal for
 * the routes. Mounted before body parsing, so an anonymous caller cannot make
 * the server read a body or learn anything about what a route expects.
 *
 * The Authorization header, when present, is the credential (the CLI,
 * scripts); only without one does the web console's session cookie count.
 */
export function authenticate(authenticator: Authenticator, sessions?: SessionAuthenticator): RequestHandler {
  return async (req, res, next) => {
    // Node keeps the first of several Authorization headers and drops the
    // rest, where a proxy in front may keep the last: two credentials are
    // refused, never resolved by whichever one a component reads.
    if (authorizationHeaders(req.rawHeaders) > 1) {
      throw new ApiError("invalid_request", "the request carries more than one Authorization header");
    }
    const authorization = req.get("authorization");
    const fromSession = authorization === undefined && sessions ? await sessions(req) : undefined;
    res.locals.principal = fromSession ?? (await authenticator.authenticate(authorization));
    next();
  };
}

function authorizationHeaders(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let index = 0; index < rawHeaders.length; index += 2) {
    if ((rawHeaders[index] as string).toLowerCase() === "authorization") count++;
  }
  return count;
}

function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  // Fail closed: a route mounted without the authenticate middleware refuses everyone.
  if (!principal) throw new ApiError("unauthenticated", "authentication is required");
  return principal;
}

/** Mounts routes on a router that `authenticate` already guards, with each route's role check. */
export function mountRoutes(router: Router, routes: readonly Route[]): void {
  for (const route of routes) {
    router[route.method](toExpressPath(route.path), async (req: Request, res: Response) => {
      setRouteTemplate(res, `${req.baseUrl}${route.path}`);
      const principal = principalOf(res);
      if (!route.roles.some((role) => principal.roles.has(role)) && !(route.anyPerson && principal.kind === "oidc")) {
        throw forbidden(
          `this operation needs the ${route.roles.join(" or ")} role${route.anyPerson ? ", or a person's sign-in" : ""}`,
        );
      }
      const result = await route.run(req, principal, requestIdOf(res));
      if (result instanceof StreamedResponse) return result.send(req, res);
      res.status(route.responseStatus);
      if (route.responseStatus === 204 || result === undefined) res.end();
      else res.json(result);
    });
  }
}
