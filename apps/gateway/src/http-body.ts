import type { IncomingMessage } from "node:http";
import { GatewayError } from "./errors.js";

/**
 * Reads the whole request body, refusing more than `limit` bytes as early as
 * possible: by Content-Length before reading, otherwise as soon as the
 * running total passes the limit.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new GatewayError("payload_too_large", `request body exceeds ${limit} bytes`));
  }
  // Plain events rather than `for await`: this runs on every request, and
  // the async iterator costs measurably more per chunk.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Stop reading; the response (413) closes or drains the rest.
        req.pause();
        reject(new GatewayError("payload_too_large", `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onAborted = () => onError(new ClientGoneError());
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
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
  value: string | number;
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

/** A JSON object body, or a 400 that says what is wrong with it. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
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
