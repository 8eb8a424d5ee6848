import { request } from "node:http";
import { Writable } from "node:stream";
import fc from "fast-check";
import { createLogger } from "./logger.js";
import { OPS_PATHS, type OpsServer, type Readiness, startOpsServer } from "./ops-server.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw HTTP/1.1 request, so paths and methods go out exactly as written. */
function call(
  url: string,
  path: string,
  { method = "GET", headers = {}, body }: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const METRICS_TEXT = "# HELP up_total Test\n# TYPE up_total counter\nup_total 1\n";

function testLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ name: "ops-test", level: "debug", destination }), lines };
}

describe("startOpsServer", () => {
  let server: OpsServer;
  let state: Readiness | Error | "hang" = { ready: true, details: { agents: 1 } };
  let metricsFail = false;
  const { logger, lines } = testLogger();

  beforeAll(async () => {
    server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      logger,
      readinessTimeoutMs: 200,
      readiness: () => {
        if (state === "hang") return new Promise<Readiness>(() => {});
        if (state instanceof Error) throw state;
        return state;
      },
      metrics: {
        contentType: "text/plain; version=0.0.4; charset=utf-8",
        metrics: async () => {
          if (metricsFail) throw new Error("collector broke");
          return METRICS_TEXT;
        },
      },
    });
  });
  afterAll(() => server.close());
  beforeEach(() => {
    state = { ready: true, details: { agents: 1 } };
    metricsFail = false;
  });

  it("listens on the port it reports", () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.url).not.toMatch(/:0$/);
  });

  it("answers /livez with 200 while the process runs", async () => {
    const answer = await call(server.url, "/livez");
    expect({ status: answer.status, body: JSON.parse(answer.body) }).toEqual({ status: 200, body: { status: "ok" } });
    expect(answer.headers["cache-control"]).toBe("no-store");
  });

  it("answers /readyz with 200 and the details when ready, 503 and the details when not", async () => {
    const ready = await call(server.url, "/readyz");
    expect({ status: ready.status, body: JSON.parse(ready.body) }).toEqual({
      status: 200,
      body: { status: "ready", agents: 1 },
    });
    state = { ready: false, details: { agents: 0 } };
    const notReady = await call(server.url, "/readyz?verbose=1");
    expect({ status: notReady.status, body: JSON.parse(notReady.body) }).toEqual({
      status: 503,
      body: { status: "not_ready", agents: 0 },
    });
    expect(notReady.headers["content-type"]).toBe("application/json");
    expect(lines.some((line) => line.includes('"msg":"not ready"'))).toBe(true);
  });

  it("answers 503 without the check's error text when the check throws", async () => {
    state = new Error("connect ECONNREFUSED postgresql://modelgate:s3cret@db.internal:5432");
    const answer = await call(server.url, "/readyz");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toEqual({ status: "not_ready", error: "the readiness check failed or timed out" });
    expect(answer.body).not.toContain("s3cret");
    expect(answer.body).not.toContain("db.internal");
  });

  it("answers 503 when the check does not finish in time", async () => {
    state = "hang";
    const answer = await call(server.url, "/readyz");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body).status).toBe("not_ready");
  });

  it("serves the metrics text with its content type", async () => {
    const answer = await call(server.url, "/metrics");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(answer.body).toBe(METRICS_TEXT);
  });

  it("answers 500 with a generic message when the metrics cannot be collected", async () => {
    metricsFail = true;
    const answer = await call(server.url, "/metrics");
    expect({ status: answer.status, body: JSON.parse(answer.body) }).toEqual({
      status: 500,
      body: { error: "metrics could not be collected" },
    });
  });

  it("answers HEAD like GET, without a body", async () => {
    for (const path of OPS_PATHS) {
      const get = await call(server.url, path);
      const head = await call(server.url, path, { method: "HEAD" });
      expect({ path, status: head.status, body: head.body }).toEqual({ path, status: get.status, body: "" });
      expect(head.headers["content-length"]).toBe(get.headers["content-length"]);
    }
  });

  it("answers 404 on every other path, whatever the method", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.stringMatching(/^\/[A-Za-z0-9._~%/-]{0,40}$/),
          // Near misses of the served paths.
          fc
            .tuple(fc.constantFrom(...OPS_PATHS), fc.constantFrom("/", "//", ".txt", "%20", "/x", "z"))
            .map(([path, suffix]) => `${path}${suffix}`),
          fc.constantFrom(...OPS_PATHS).map((path) => path.toUpperCase()),
          fc.constantFrom(...OPS_PATHS).map((path) => `/${path}`),
          fc.constantFrom("/", "/healthz", "/v1/models", "/api/v1/connections", "/c/llama/metrics"),
        ),
        fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"),
        async (path, method) => {
          fc.pre(!(OPS_PATHS as readonly string[]).includes(path.split("?", 1)[0] ?? ""));
          const answer = await call(server.url, path, { method });
          expect(answer.status).toBe(404);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("answers 405 to any method but GET and HEAD on the served paths, and closes the connection", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...OPS_PATHS),
        fc.constantFrom("POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        async (path, method) => {
          const answer = await call(server.url, path, { method });
          expect(answer.status).toBe(405);
          expect(answer.headers.allow).toBe("GET, HEAD");
          expect(answer.headers.connection).toBe("close");
        },
      ),
      { numRuns: 30 },
    );
  });

  it("never reads a request body: it answers and closes the connection instead", async () => {
    const body = Buffer.alloc(4 * 1024 * 1024, "x");
    const answer = await call(server.url, "/livez", {
      headers: { "content-type": "application/octet-stream", "content-length": String(body.length) },
      body,
    }).catch((error: NodeJS.ErrnoException) => error);
    // The server may close before the client finished writing; either way
    // it never waited for the body.
    if (answer instanceof Error) expect(answer.code).toMatch(/ECONNRESET|EPIPE/);
    else
      expect({ status: answer.status, connection: answer.headers.connection }).toEqual({
        status: 200,
        connection: "close",
      });
  });

  it("refuses oversized headers", async () => {
    const answer = await call(server.url, "/livez", { headers: { "x-filler": "a".repeat(16 * 1024) } }).catch(
      (error: NodeJS.ErrnoException) => error,
    );
    if (answer instanceof Error) expect(answer.code).toMatch(/ECONNRESET|EPIPE/);
    else expect(answer.status).toBe(431);
  });
});

describe("startOpsServer lifecycle", () => {
  const options = () => ({
    host: "127.0.0.1",
    port: 0,
    logger: testLogger().logger,
    readiness: () => ({ ready: true }),
    metrics: { contentType: "text/plain", metrics: async () => "" },
  });

  it("refuses to start on a port already taken", async () => {
    const first = await startOpsServer(options());
    try {
      const port = Number(new URL(first.url).port);
      await expect(startOpsServer({ ...options(), port })).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await first.close();
    }
  });

  it("closes with keep-alive connections open, and closing twice is harmless", async () => {
    const server = await startOpsServer(options());
    const response = await fetch(`${server.url}/livez`);
    expect(response.status).toBe(200);
    await server.close();
    await server.close();
    await expect(fetch(`${server.url}/livez`)).rejects.toThrow();
  });
});
