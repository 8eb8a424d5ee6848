// The two kinds of measurement: requests one at a time on an otherwise idle
// machine (latency and time to first byte, sub-millisecond), and many
// connections at once with autocannon (throughput and latency under load).
import http from "node:http";
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import { summarize } from "./stats.mjs";

/** The chat completion request a workload sends to a target. */
export function buildRequest(target, { streaming, streamChunks, chunkIntervalMs }) {
  const body = JSON.stringify({
    model: target.model,
    messages: [{ role: "user", content: "Say something for the benchmark." }],
    ...(streaming ? { stream: true } : {}),
  });
  const headers = {
    "content-type": "application/json",
    // Sent to every target so requests are the same size; only modelgate checks it.
    authorization: `Bearer ${target.apiKey}`,
    // What a peer gateway needs to find the runtime (Portkey's provider headers).
    ...target.headers,
    ...(streaming
      ? { "x-fixture-chunks": String(streamChunks), "x-fixture-interval-ms": String(chunkIntervalMs) }
      : {}),
  };
  return { url: new URL("/v1/chat/completions", target.url), method: "POST", headers, body };
}

/** One request on a keep-alive agent; times in ms from the request's start. */
function timedRequest(agent, request, { keepBody = false } = {}) {
  return new Promise((resolve, reject) => {
    const { url } = request;
    const start = performance.now();
    let firstByteAt;
    let bytes = 0;
    const chunks = [];
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: request.method,
        headers: { ...request.headers, "content-length": Buffer.byteLength(request.body) },
      },
      (res) => {
        res.on("data", (chunk) => {
          firstByteAt ??= performance.now();
          bytes += chunk.length;
          if (keepBody) chunks.push(chunk);
        });
        res.on("end", () => {
          const endAt = performance.now();
          resolve({
            status: res.statusCode,
            headers: res.headers,
            latencyMs: endAt - start,
            ttfbMs: (firstByteAt ?? endAt) - start,
            bytes,
            body: keepBody ? Buffer.concat(chunks).toString("utf8") : undefined,
          });
        });
        res.on("error", reject);
      },
    );
    req.setNoDelay(true);
    req.on("error", reject);
    req.end(request.body);
  });
}

/**
 * Checks that a target answers the workload's request correctly (a 200 with
 * the fixture's completion, or a complete stream of `streamChunks` chunks, one
 * more when the agent masks it),
 * so a fast error page is never measured as a fast answer.
 */
export async function verifyTarget(target, workload) {
  const agent = new http.Agent({ keepAlive: false });
  try {
    const response = await timedRequest(agent, buildRequest(target, workload), { keepBody: true });
    const fail = (why) => {
      throw new Error(`${target.name}: ${why}; status ${response.status}, body ${response.body.slice(0, 300)}`);
    };
    if (response.status !== 200) fail("not a 200");
    if (workload.streaming) {
      const events = response.body.split("\n\n").filter((event) => event.startsWith("data: "));
      if (events.at(-1) !== "data: [DONE]") fail("the stream does not end with [DONE]");
      const content = events
        .slice(0, -1)
        .map((event) => JSON.parse(event.slice(6)))
        .filter((chunk) => chunk.choices?.[0]?.delta?.content);
      // A masking agent may hold a chunk's tail back until it knows no entity
      // runs across the boundary, and send it as one more event at the end.
      const slack = target.masked ? 1 : 0;
      if (content.length < workload.streamChunks || content.length > workload.streamChunks + slack)
        fail(`${content.length} content chunks, not ${workload.streamChunks}`);
    } else {
      const text = JSON.parse(response.body).choices?.[0]?.message?.content;
      if (typeof text !== "string" || text.length < 500) fail("no completion of the expected size");
    }
    return { status: response.status, bytes: response.bytes };
  } finally {
    agent.destroy();
  }
}

/** `count` requests one after the other on one keep-alive connection. */
export async function runSequential(request, count) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const latencies = [];
  const ttfbs = [];
  let errors = 0;
  try {
    for (let i = 0; i < count; i++) {
      try {
        const response = await timedRequest(agent, request);
        if (response.status === 200) {
          latencies.push(response.latencyMs);
          ttfbs.push(response.ttfbMs);
        } else errors++;
      } catch {
        errors++;
      }
    }
  } finally {
    agent.destroy();
  }
  return { ok: latencies.length, errors, latency: summarize(latencies), ttfb: summarize(ttfbs) };
}

/** `connections` connections sending back to back for `durationS` seconds. */
export async function runLoad(request, { connections, durationS }) {
  const latencies = [];
  const instance = autocannon({
    url: request.url.toString(),
    method: request.method,
    headers: request.headers,
    body: request.body,
    connections,
    duration: durationS,
    pipelining: 1,
    timeout: 30,
  });
  // autocannon's own histogram keeps whole milliseconds; keep the exact times.
  instance.on("response", (_client, statusCode, _bytes, responseTimeMs) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(responseTimeMs);
  });
  const result = await instance;
  return {
    ok: latencies.length,
    errors: result.errors + result.non2xx,
    timeouts: result.timeouts,
    durationS: result.duration,
    requestsPerSecond: latencies.length / result.duration,
    latency: summarize(latencies),
  };
}
