#!/usr/bin/env node
// The benchmark's reference: one plain HTTP hop and nothing else. No
// authentication, routing, logging or metrics; request and response bodies
// are piped through as they arrive, over keep-alive connections to the
// upstream. What it costs is what any Node proxy costs, so modelgate's
// numbers can be read against it rather than against zero.
//
// Environment: UPSTREAM_URL (required, e.g. http://127.0.0.1:8000), HOST
// (default 127.0.0.1), PORT (default 0: an ephemeral port, printed).
import http from "node:http";

// Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection, not the
// message: a proxy drops them and lets its own connections set theirs.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function endToEnd(headers) {
  const result = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) result[name] = value;
  }
  return result;
}

export function startBareProxy({ upstreamUrl, host = "127.0.0.1", port = 0 }) {
  const upstream = new URL(upstreamUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, scheduling: "lifo" });

  const server = http.createServer((req, res) => {
    const headers = endToEnd(req.headers);
    headers.host = upstream.host;
    const outbound = http.request(
      { agent, host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (inbound) => {
        res.writeHead(inbound.statusCode ?? 502, endToEnd(inbound.headers));
        // Send the head now, as a streaming client expects the status before the first chunk.
        res.flushHeaders();
        inbound.pipe(res);
        inbound.on("error", () => res.destroy());
      },
    );
    // Small frames must leave at once, not wait for Nagle's algorithm.
    outbound.setNoDelay(true);
    outbound.on("error", () => {
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end("bad gateway\n");
      }
    });
    // A client that leaves mid-answer stops the upstream request too.
    res.on("close", () => {
      if (!res.writableFinished) outbound.destroy();
    });
    req.pipe(outbound);
  });
  // Longer than the benchmark's clients keep idle connections, so the proxy
  // never closes one under a client that is about to reuse it.
  server.keepAliveTimeout = 65_000;

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        url: `http://${address.address}:${address.port}`,
        close: () =>
          new Promise((done) => {
            agent.destroy();
            server.close(() => done());
            server.closeIdleConnections();
          }),
      });
    });
  });
}

if (import.meta.main) {
  const upstreamUrl = process.env.UPSTREAM_URL?.trim();
  if (!upstreamUrl) {
    console.error("bare-proxy: UPSTREAM_URL is required");
    process.exit(2);
  }
  const proxy = await startBareProxy({
    upstreamUrl,
    host: process.env.HOST?.trim() || "127.0.0.1",
    port: Number(process.env.PORT?.trim() || 0),
  });
  process.stdout.write(`bare proxy listening on ${proxy.url}, forwarding to ${upstreamUrl}\n`);
  const stop = () => void proxy.close().then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
