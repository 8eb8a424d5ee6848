// An HTTP load balancer in front of gateway replicas, behaving like an
// ingress proxy (ingress-nginx, Envoy, a cloud load balancer) with
// readiness checks: it checks each backend's /readyz every `intervalMs`,
// sends each request to a ready backend in turn, on a connection of its own,
// and tries the next backend when that connection cannot be opened (the
// request was not sent yet, so that is safe: every load balancer does it).
// Clients keep their keep-alive connections to the balancer, never to a
// replica. A response cut short upstream is cut short to the client too, so
// a backend's death is never passed on as a complete answer. Each answer
// names its backend in `x-load-balancer-backend`, for the test's bookkeeping.
import { once } from "node:events";
import { createServer, request as httpRequest, type IncomingHttpHeaders } from "node:http";

export interface Backend {
  name: string;
  /** `http://host:port` the requests go to. */
  url: string;
  /** Its ops listener, for /readyz. */
  ops: string;
}

export interface LoadBalancer {
  url: string;
  /** Requests sent to each backend, by name. */
  readonly requests: Map<string, number>;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"]);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

export async function startLoadBalancer(backends: readonly Backend[], intervalMs = 100): Promise<LoadBalancer> {
  const ready = new Map<string, boolean>();
  const requests = new Map<string, number>();
  let next = 0;
  let closed = false;

  const check = async () => {
    await Promise.all(
      backends.map(async (backend) => {
        const status = await fetch(`${backend.ops}/readyz`, { signal: AbortSignal.timeout(intervalMs * 5) }).then(
          async (response) => {
            await response.arrayBuffer();
            return response.status;
          },
          () => 0,
        );
        ready.set(backend.name, status === 200);
      }),
    );
  };
  await check();
  const polling = (async () => {
    while (!closed) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      if (!closed) await check();
    }
  })();

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    // Ready backends in turn; with none ready, all of them (a load balancer
    // fails open rather than refuse every request).
    const candidates = backends.filter((backend) => ready.get(backend.name));
    const order = candidates.length > 0 ? candidates : [...backends];
    const start = next++;
    const attempt = (index: number) => {
      if (index >= order.length) {
        res.writeHead(502, { "content-type": "text/plain" }).end("no backend could be reached");
        return;
      }
      const backend = order[(start + index) % order.length] as Backend;
      const { hostname, port } = new URL(backend.url);
      const upstream = httpRequest({
        host: hostname,
        port: Number(port),
        method: req.method,
        path: req.url,
        headers: { ...endToEnd(req.headers), "content-length": String(body.length) },
        agent: false,
      });
      let connected = false;
      upstream.on("socket", (socket) => {
        if (!socket.connecting) connected = true;
        else socket.once("connect", () => (connected = true));
      });
      upstream.on("response", (answer) => {
        requests.set(backend.name, (requests.get(backend.name) ?? 0) + 1);
        res.writeHead(answer.statusCode ?? 502, {
          ...endToEnd(answer.headers),
          "x-load-balancer-backend": backend.name,
        });
        res.flushHeaders();
        answer.on("data", (chunk: Buffer) => res.write(chunk));
        answer.on("end", () => res.end());
        // Cut short upstream: cut short here, so the client sees an incomplete response.
        answer.on("close", () => {
          if (!answer.complete) res.destroy();
        });
      });
      upstream.on("error", () => {
        if (!connected) attempt(index + 1);
        else res.destroy();
      });
      res.on("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      upstream.end(body);
    };
    attempt(0);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      closed = true;
      await polling;
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
