// Requests Node's HTTP parser refuses before they become requests: headers
// over MODELGATE_MAX_HEADER_BYTES, malformed HTTP, a request not received
// within its time. No handler runs for them, so they cannot have an audit
// record; they are answered the way Node would, counted and logged.
import { type ServerResponse, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "@modelgate/core";
import type { GatewayMetrics } from "./metrics.js";

/** Node's own choice of status for each parser failure. */
const STATUS_BY_CODE: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

/**
 * How long the rest of a refused request is read and dropped after the
 * answer: a caller still sending an oversized header gets to read the 431
 * instead of a connection reset, and no caller holds the socket for longer.
 */
const LINGER_MS = 5_000;

export interface ClientErrorContext {
  metrics: Pick<GatewayMetrics, "httpRefused">;
  logger: Logger;
}

/** A `clientError` listener for the gateway's HTTP server. */
export function answerClientError(context: ClientErrorContext) {
  // The parser may report the same connection more than once (the rest of
  // the data, then its end); it is answered and counted once.
  const answered = new WeakSet<Socket>();
  return (error: Error & { code?: string }, socket: Socket): void => {
    if (answered.has(socket)) return;
    answered.add(socket);
    // A caller that went away is not a refusal.
    if (error.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const status = STATUS_BY_CODE[error.code ?? ""] ?? 400;
    context.metrics.httpRefused.inc({ status: String(status) });
    // Never `error.rawPacket`: it holds the request's bytes, credentials included.
    context.logger.info(
      { code: error.code, status, clientIp: socket.remoteAddress },
      "the HTTP parser refused a request; it has no audit record",
    );
    // A response already under way on this connection must not get a
    // second head in the middle of its body (Node's rule as well).
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
    socket.removeAllListeners("data");
    socket.on("data", () => undefined);
    socket.setTimeout(LINGER_MS, () => socket.destroy());
  };
}
