import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import fc from "fast-check";
import { GatewayError } from "./errors.js";
import { type BodyLimits, ClientGoneError, jsonDepthExceeds, parseJsonObject, readBody } from "./http-body.js";

/** A server whose only handler reads the body with `limits` and reports how that ended. */
async function bodyServer(limits: BodyLimits) {
  const outcomes: (Buffer | Error)[] = [];
  const server: Server = createServer((req, res) => {
    readBody(req, limits).then(
      (body) => {
        outcomes.push(body);
        res.end("ok");
      },
      (error: Error) => {
        outcomes.push(error);
        const status = error instanceof GatewayError ? error.status : 499;
        if (!res.destroyed) res.writeHead(status, { connection: "close" }).end();
      },
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    port,
    outcomes,
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  };
}

/** Writes raw HTTP, a part at a time with pauses, and resolves with the status line the server sent (or "" if none). */
async function rawRequest(port: number, head: string, parts: string[], pauseMs: number): Promise<string> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  let answer = "";
  socket.on("data", (chunk) => {
    answer += String(chunk);
  });
  const closed = once(socket, "close");
  socket.on("error", () => {});
  socket.write(head);
  for (const part of parts) {
    if (socket.destroyed || answer !== "") break;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    if (!socket.destroyed) socket.write(part);
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 3_000)))]);
  clearTimeout(timer);
  socket.destroy();
  return answer.split("\r\n", 1)[0] ?? "";
}

const LIMITS: BodyLimits = { maxBytes: 1024, idleTimeoutMs: 200, minBytesPerSecond: 1_000 };

describe("readBody", () => {
  it("reads a body sent in parts within the limits", async () => {
    const server = await bodyServer(LIMITS);
    const status = await rawRequest(
      server.port,
      "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\nconnection: close\r\n\r\n",
      ["01234", "56789"],
      20,
    );
    expect(status).toBe("HTTP/1.1 200 OK");
    expect(String(server.outcomes[0])).toBe("0123456789");
    await server.close();
  });

  it("refuses a declared length over the limit before reading (413)", async () => {
    const server = await bodyServer(LIMITS);
    const status = await rawRequest(server.port, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n", [], 0);
    expect(status).toBe("HTTP/1.1 413 Payload Too Large");
    await server.close();
  });

  it("refuses a chunked body once it passes the limit (413)", async () => {
    const server = await bodyServer(LIMITS);
    const chunk = `400\r\n${"a".repeat(1024)}\r\n`;
    const status = await rawRequest(
      server.port,
      "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
      [chunk, chunk],
      10,
    );
    expect(status).toBe("HTTP/1.1 413 Payload Too Large");
    await server.close();
  });

  it("refuses a body that stalls for the idle timeout (408)", async () => {
    const server = await bodyServer(LIMITS);
    const status = await rawRequest(server.port, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc", [], 0);
    expect(status).toBe("HTTP/1.1 408 Request Timeout");
    expect((server.outcomes[0] as GatewayError).message).toMatch(/no part of the request body arrived for 200 ms/);
    await server.close();
  });

  it("refuses a body that keeps trickling slower than the minimum rate, though never idle (408)", async () => {
    const server = await bodyServer(LIMITS);
    // A byte every 60 ms never trips the 200 ms idle timer, but needs
    // 60 ms per byte where the rate allows 1 ms after the grace.
    const status = await rawRequest(
      server.port,
      "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n",
      Array.from({ length: 40 }, () => "x"),
      60,
    );
    expect(status).toBe("HTTP/1.1 408 Request Timeout");
    expect((server.outcomes[0] as GatewayError).message).toMatch(/slower than 1000 bytes per second/);
    await server.close();
  });

  it("reports a caller that leaves halfway as gone", async () => {
    const server = await bodyServer(LIMITS);
    const socket = connect(server.port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc");
    await new Promise((resolve) => setTimeout(resolve, 30));
    socket.destroy();
    const deadline = Date.now() + 2_000;
    while (server.outcomes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(server.outcomes[0]).toBeInstanceOf(ClientGoneError);
    await server.close();
  });
});

describe("readBody after an earlier stage awaited", () => {
  it("reports a caller that left while the request waited (an OIDC verification) as gone, never hangs", async () => {
    const outcomes: (Buffer | Error)[] = [];
    const server: Server = createServer(async (req, res) => {
      // What an earlier stage's await gives the client time to do: leave.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await readBody(req, LIMITS).then(
        (body) => outcomes.push(body),
        (error: Error) => outcomes.push(error),
      );
      res.destroy();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    for (const body of ["", "partial"]) {
      const socket = connect(port, "127.0.0.1");
      await once(socket, "connect");
      socket.write(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${body === "" ? 0 : 100}\r\n\r\n${body}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
      socket.destroy();
    }
    const deadline = Date.now() + 2_000;
    while (outcomes.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(outcomes).toHaveLength(2);
    for (const outcome of outcomes) expect(outcome).toBeInstanceOf(ClientGoneError);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
});

/** The nesting depth of a parsed JSON value. */
function depthOf(value: unknown): number {
  if (Array.isArray(value)) return 1 + Math.max(0, ...value.map(depthOf));
  if (typeof value === "object" && value !== null) return 1 + Math.max(0, ...Object.values(value).map(depthOf));
  return 0;
}

describe("JSON nesting depth", () => {
  it("agrees with the depth of the parsed document, for any JSON (strings with brackets, quotes and escapes included)", () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (text, limit) => {
        const depth = depthOf(JSON.parse(text));
        expect(jsonDepthExceeds(Buffer.from(text), limit)).toBe(depth > limit);
      }),
      { numRuns: 500 },
    );
  });

  it("refuses 100,000 levels with 400 invalid_request naming the limit, without a stack overflow", () => {
    const deep = Buffer.from(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
    let refusal: unknown;
    try {
      parseJsonObject(deep, 64);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(GatewayError);
    expect((refusal as GatewayError).code).toBe("invalid_request");
    expect((refusal as GatewayError).message).toBe("request body is nested deeper than 64 levels");
    // At the limit it parses.
    const atLimit = `${"[".repeat(63)}${"]".repeat(63)}`;
    expect(parseJsonObject(Buffer.from(`{"a":${atLimit}}`), 64)).toEqual({ a: JSON.parse(atLimit) });
  });
});
