// The operations listener every modelgate process runs beside its public
// one: /livez, /readyz and /metrics for probes and Prometheus, nothing else.
// It is separate because what it tells (connection names, configuration
// revision, queue depths) is for the operator's network, not for callers:
// it binds to loopback unless told otherwise, and a deployment opens it to
// the kubelet and Prometheus only (docs/operations.md).
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./logger.js";

/** What /readyz reports: 200 when ready, 503 when not, with the details as JSON either way. */
export interface Readiness {
  ready: boolean;
  details?: Record<string, unknown>;
}

/** What /metrics serves; a prom-client `Registry` is one. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface OpsServerOptions {
  host: string;
  /** 0 picks a free port (tests); `url` tells which. */
  port: number;
  /** Called per /readyz (concurrent calls share one run); may be async. */
  readiness: () => Readiness | Promise<Readiness>;
  metrics: MetricsSource;
  logger: Logger;
  /**
   * A check that takes longer counts as not ready (default 2 s): a hung
   * database answers 503 in bounded time instead of holding the probe.
   * Kubernetes probes default to a 1 s timeout; give them 3 s.
   */
  readinessTimeoutMs?: number;
}

export interface OpsServer {
  /** `http://host:port` of the listener. */
  readonly url: string;
  close(): Promise<void>;
}

export const OPS_PATHS = ["/livez", "/readyz", "/metrics"] as const;

const DEFAULT_READINESS_TIMEOUT_MS = 2_000;
/**
 * Bounds for a listener nobody but probes and scrapers should call: small
 * headers, a few seconds per request, idle sockets closed soon, a cap on
 * sockets. A scraper reconnecting every interval costs nothing; a client
 * holding sockets open cannot grow the process's memory.
 */
const LIMITS = {
  maxHeaderSize: 8 * 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  socketIdleMs: 15_000,
  maxConnections: 64,
} as const;

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { logger } = options;
  const timeoutMs = options.readinessTimeoutMs ?? DEFAULT_READINESS_TIMEOUT_MS;
  let lastReady: boolean | undefined;

  // One check at a time: a burst of probes (or a client hammering /readyz)
  // runs the checks, which may query a database, once.
  const readiness = singleFlight(async (): Promise<Readiness> => {
    let result: Readiness;
    try {
      result = await withTimeout(Promise.resolve().then(options.readiness), timeoutMs);
    } catch (error) {
      logger.warn({ err: error }, "readiness check failed");
      result = { ready: false, details: { error: "the readiness check failed or timed out" } };
    }
    if (result.ready !== lastReady) {
      // Logged on change only: probes call every few seconds.
      if (result.ready) logger.info("ready");
      else logger.warn({ readiness: result.details }, "not ready");
      lastReady = result.ready;
    }
    return result;
  });
  const metrics = singleFlight(() => options.metrics.metrics());

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader("cache-control", "no-store");
    res.setHeader("x-content-type-options", "nosniff");
    // Nothing here reads a body; one that was sent is not read either, and
    // the connection closes after the answer instead of draining it.
    if (req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0) {
      res.setHeader("connection", "close");
    }
    const pathname = (req.url ?? "/").split("?", 1)[0];
    if (!(OPS_PATHS as readonly (string | undefined)[]).includes(pathname)) {
      return send(req, res, 404, { error: "not found" });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      res.setHeader("connection", "close");
      return send(req, res, 405, { error: "method not allowed" });
    }
    if (pathname === "/livez") return send(req, res, 200, { status: "ok" });
    if (pathname === "/readyz") {
      const { ready, details } = await readiness();
      return send(req, res, ready ? 200 : 503, { status: ready ? "ready" : "not_ready", ...details });
    }
    let text: string;
    try {
      text = await metrics();
    } catch (error) {
      logger.error({ err: error }, "metrics could not be collected");
      return send(req, res, 500, { error: "metrics could not be collected" });
    }
    res.writeHead(200, { "content-type": options.metrics.contentType, "content-length": Buffer.byteLength(text) });
    res.end(req.method === "HEAD" ? undefined : text);
  }

  const server = createServer({
    maxHeaderSize: LIMITS.maxHeaderSize,
    headersTimeout: LIMITS.headersTimeoutMs,
    requestTimeout: LIMITS.requestTimeoutMs,
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
  });
  server.maxConnections = LIMITS.maxConnections;
  // Without a "timeout" listener, Node destroys a socket idle this long.
  server.setTimeout(LIMITS.socketIdleMs);
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      logger.error({ err: error }, "ops request failed unexpectedly");
      res.destroy();
    });
  });
  server.listen(options.port, options.host);
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    close() {
      closing ??= (async () => {
        const closed = once(server, "close");
        server.close();
        // Probes and scrapes are short: nothing here is worth waiting for.
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

function send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(req.method === "HEAD" ? undefined : text);
}

/** Concurrent calls share the run in progress. */
function singleFlight<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
