import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { FixtureState, Route, RouteHandler } from "./context.js";
import { MAX_BODY_BYTES, readBody } from "./http.js";
import { type FixtureSettings, type RuntimeFixtureOptions, resolveOptions } from "./options.js";
import { parseOverrides } from "./overrides.js";
import { FixtureRequestError, type Protocol, protocolForPath, sendError } from "./protocol-errors.js";
import { anthropicRoutes } from "./protocols/anthropic.js";
import { ollamaRoutes } from "./protocols/ollama.js";
import { openAiRoutes } from "./protocols/openai.js";
import { operationsRoutes } from "./protocols/operations.js";
import { responsesRoutes } from "./protocols/responses.js";
import { scoringRoutes } from "./protocols/scoring.js";
import { tgiRoutes } from "./protocols/tgi.js";
import { type RecordedRequest, RequestRecorder } from "./recorder.js";

export interface RuntimeFixture {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:43123. */
  readonly url: string;
  /** The most recent requests (up to 10,000), oldest first; a live view. */
  readonly requests: readonly RecordedRequest[];
  /** Requests whose response has neither finished nor been aborted. */
  inFlight(): number;
  /** Resolves with `abortedAt` when the request is aborted; rejects on timeout or a normal finish. */
  waitForAbort(requestId: number, timeoutMs: number): Promise<number>;
  /** While false, the health endpoints (`/health`, `/`, `/api/version`) answer 503. */
  setHealthy(healthy: boolean): void;
  /** Stops listening and destroys every open connection, streams included. */
  close(): Promise<void>;
}

const ROUTES: ReadonlyMap<string, Route> = new Map(
  [
    ...openAiRoutes,
    ...responsesRoutes,
    ...scoringRoutes,
    ...anthropicRoutes,
    ...ollamaRoutes,
    ...tgiRoutes,
    ...operationsRoutes,
  ].map((route) => [route.path, route]),
);

/** Starts the fixture and resolves once it is listening. */
export async function startRuntimeFixture(options?: RuntimeFixtureOptions): Promise<RuntimeFixture> {
  const settings = resolveOptions(options);
  const fixture: FixtureState = { settings, recorder: new RequestRecorder(), startedAt: new Date(), healthy: true };
  // noDelay: without it Nagle's algorithm may hold a small chunk back until the
  // previous one is acknowledged, and chunks would not arrive when sent.
  const server = createServer({ noDelay: true }, (req, res) => {
    void handleRequest(fixture, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.port, settings.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = settings.host.includes(":") ? `[${settings.host}]` : settings.host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    get requests() {
      return fixture.recorder.requests;
    },
    inFlight: () => fixture.recorder.inFlight(),
    waitForAbort: (requestId, timeoutMs) => fixture.recorder.waitForAbort(requestId, timeoutMs),
    setHealthy: (healthy) => {
      fixture.healthy = healthy;
    },
    close: () => {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // close() alone waits for keep-alive connections and open streams to end.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * One request, in the order a runtime behind a proxy would see it: record,
 * read the body, authenticate, route, apply per-request overrides, answer.
 * Every refusal is thrown as a FixtureRequestError and answered in the shape
 * of the protocol the path belongs to.
 */
async function handleRequest(fixture: FixtureState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { recorder } = fixture;
  const record = recorder.begin(req);
  recorder.processingStarted();
  const client = new AbortController();
  res.once("finish", () => recorder.finish(record));
  // "close" without "finish" means the connection went away mid-response: the
  // client aborted. Aborting the signal cancels any pending chunk timer.
  res.once("close", () => {
    if (res.writableFinished) return;
    recorder.abort(record);
    client.abort();
  });
  res.setHeader("x-fixture-request-id", String(record.id));

  const pathname = (req.url ?? "/").split("?")[0] ?? "/";
  const route = ROUTES.get(pathname);
  const protocol: Protocol = route?.protocol ?? protocolForPath(pathname);
  try {
    const body = await readBody(req);
    if (!body.complete) {
      throw new FixtureRequestError(
        413,
        `the request body exceeds ${MAX_BODY_BYTES} bytes`,
        {},
        { connection: "close" },
      );
    }
    recorder.setBody(record, body.text);
    authenticate(fixture.settings, req);
    const handler = handlerFor(route, req.method ?? "GET", pathname);
    const overrides = parseOverrides(req.headers);
    if (overrides.delayMs !== undefined) await sleep(overrides.delayMs, undefined, { signal: client.signal });
    if (overrides.status !== undefined) {
      throw new FixtureRequestError(
        overrides.status,
        `status ${overrides.status} forced by the x-fixture-status header`,
      );
    }
    await handler({ req, res, record, body: body.text, overrides, signal: client.signal, fixture });
  } catch (error) {
    answerFailure(res, protocol, error, client.signal);
  } finally {
    recorder.processingEnded();
  }
}

function handlerFor(route: Route | undefined, method: string, pathname: string): RouteHandler {
  if (route === undefined) throw new FixtureRequestError(404, `Invalid URL (${method} ${pathname})`);
  // Node answers HEAD with the GET handler's head and drops the body.
  const lookup = method === "HEAD" ? "GET" : method;
  const handler = lookup === "GET" || lookup === "POST" ? route.methods[lookup] : undefined;
  if (handler === undefined) {
    const allow = Object.keys(route.methods)
      .flatMap((name) => (name === "GET" ? ["GET", "HEAD"] : [name]))
      .join(", ");
    throw new FixtureRequestError(405, `Method ${method} is not allowed for ${pathname}`, {}, { allow });
  }
  return handler;
}

/** `Authorization: Bearer <requiredBearer>`, compared in constant time out of habit. */
function authenticate(settings: FixtureSettings, req: IncomingMessage): void {
  const expected = settings.requiredBearer;
  if (expected === undefined) return;
  const presented = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
  const digest = (text: string) => createHash("sha256").update(text).digest();
  if (presented === undefined || !timingSafeEqual(digest(presented), digest(expected))) {
    throw new FixtureRequestError(
      401,
      "Missing or incorrect API key: send Authorization: Bearer <key>",
      { code: "invalid_api_key" },
      { "www-authenticate": "Bearer" },
    );
  }
}

function answerFailure(res: ServerResponse, protocol: Protocol, error: unknown, clientGone: AbortSignal): void {
  // The client went away (mid-upload, during a delay or mid-stream): there is
  // nobody to answer, and the abort is already recorded.
  if (clientGone.aborted || res.destroyed || res.req.socket.destroyed) return;
  if (error instanceof FixtureRequestError && !res.headersSent) {
    for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
    sendError(res, protocol, error.status, error.message, error.details);
    return;
  }
  // Anything else is a bug in the fixture; say so loudly on stderr, never to the client.
  console.error("runtime fixture: unexpected error", error);
  if (res.headersSent) res.destroy();
  else sendError(res, protocol, 500, "internal error in the runtime fixture");
}
