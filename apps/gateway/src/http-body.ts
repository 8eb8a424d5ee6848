import type { IncomingMessage } from "node:http";
import { GatewayError } from "./errors.js";

/** How long and how slowly a caller may take to send a body. */
export interface BodyLimits {
  /** Bytes at most; more is refused with 413, by Content-Length before reading when declared. */
  maxBytes: number;
  /** No byte for this long: 408. It is also the grace before the minimum rate applies. */
  idleTimeoutMs: number;
  /**
   * After the grace, the body must keep arriving at this average rate:
   * sending N bytes may take idleTimeoutMs + N / minBytesPerSecond seconds.
   * So a large upload gets time in proportion to its size, and a trickle of
   * a byte every few seconds (which the idle timeout alone would allow for
   * hours) is cut off.
   */
  minBytesPerSecond: number;
}

/**
 * Reads the whole request body within `limits`, refusing as early as
 * possible: 413 by Content-Length before reading, or as soon as the running
 * total passes the limit; 408 when the caller stalls or trickles.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const { maxBytes, idleTimeoutMs, minBytesPerSecond } = limits;
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new GatewayError("payload_too_large", `request body exceeds ${maxBytes} bytes`));
  }
  // The caller may have left while an earlier stage awaited (an OIDC
  // verification): its request is destroyed and will emit nothing more, so
  // waiting for its events would hang the request, holding its places.
  if (req.destroyed || req.readableAborted) return Promise.reject(new ClientGoneError());
  const startedAt = performance.now();
  // Plain events rather than `for await`: this runs on every request, and
  // the async iterator costs measurably more per chunk.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    const fail = (error: Error) => {
      cleanup();
      // Stop reading; the response (413, 408) closes the connection.
      req.pause();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) return fail(new GatewayError("payload_too_large", `request body exceeds ${maxBytes} bytes`));
      // Checked as data arrives: a caller that stops sending is the idle
      // timer's, one that keeps sending too slowly is caught here.
      if (performance.now() - startedAt > idleTimeoutMs + (size / minBytesPerSecond) * 1000) {
        return fail(
          new GatewayError(
            "request_timeout",
            `the request body arrived slower than ${minBytesPerSecond} bytes per second; send it faster or in a smaller request`,
          ),
        );
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      ended = true;
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onAborted = () => onError(new ClientGoneError());
    // Closed before its end: gone, whichever of the events above Node sent.
    const onClose = () => {
      if (!ended) onError(new ClientGoneError());
    };
    // The socket's own idle timer: re-armed by Node on every read, no timer
    // work per chunk here. Listened for on the request, so Node's server
    // leaves the socket open for the 408.
    const onIdle = () =>
      fail(new GatewayError("request_timeout", `no part of the request body arrived for ${idleTimeoutMs} ms`));
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
      req.off("close", onClose);
      req.off("timeout", onIdle);
      req.socket?.setTimeout(0);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
    req.on("close", onClose);
    req.setTimeout(idleTimeoutMs, onIdle);
  });
}

/** The caller left while sending the body: nobody is waiting for an answer. */
export class ClientGoneError extends Error {
  constructor() {
    super("client closed the connection while sending the body");
    this.name = "ClientGoneError";
  }
}

const { rawJSON, isRawJSON } = JSON as unknown as {
  rawJSON?: (text: string) => unknown;
  isRawJSON?: (value: unknown) => boolean;
};
const isRawJson = (value: unknown) => isRawJSON?.(value) === true;

/** One value to set in a JSON document, at a path of object keys. */
export interface JsonEdit {
  path: readonly (string | number)[];
  value: string | number | boolean;
}

/**
 * The same JSON object with some values set (the model the runtime knows, a
 * token cap a policy imposes). Numbers keep their exact source text
 * (`12345678901234567891`, `1.0`): a runtime must receive the caller's
 * parameters, not their float64 approximation. Missing objects on a path
 * are created; a path through a non-object is refused rather than guessed.
 */
export function rewriteJson(body: Buffer, edits: readonly JsonEdit[]): Buffer {
  const json = JSON.parse(body.toString("utf8"), (_key, value, context?: { source?: string }) =>
    typeof value === "number" && rawJSON && context?.source !== undefined ? rawJSON(context.source) : value,
  ) as Record<string, unknown>;
  for (const { path, value } of edits) {
    let parent: Record<string | number, unknown> = json;
    for (const key of path.slice(0, -1)) {
      const child = parent[key] ?? {};
      if (typeof child !== "object" || child === null || Array.isArray(child) || isRawJson(child)) {
        throw new GatewayError("invalid_request", `${path.join(".")} cannot be set: ${String(key)} is not an object`);
      }
      parent[key] = child;
      parent = child as Record<string | number, unknown>;
    }
    parent[path.at(-1) as string | number] = value;
  }
  return Buffer.from(JSON.stringify(json));
}

/** Nesting depth of JSON bodies the gateway reads, unless configured otherwise. */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/**
 * A JSON object body, or a 400 that says what is wrong with it. Nesting
 * deeper than `maxDepth` is refused before parsing: the policy engine,
 * masking and re-serialisation all walk the document recursively, and a
 * body of 100,000 open brackets would otherwise end in a stack overflow.
 */
export function parseJsonObject(body: Buffer, maxDepth = DEFAULT_MAX_JSON_DEPTH): Record<string, unknown> {
  if (jsonDepthExceeds(body, maxDepth)) {
    throw new GatewayError("invalid_request", `request body is nested deeper than ${maxDepth} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw new GatewayError("invalid_request", "request body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new GatewayError("invalid_request", "request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether brackets outside strings nest deeper than `maxDepth`. One pass
 * over the bytes, no allocation: cheap next to the parse it guards. Invalid
 * JSON is left for the parser to refuse.
 */
export function jsonDepthExceeds(body: Buffer, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}
