import type { IncomingMessage } from "node:http";
import { GatewayError } from "./errors.js";

/**
 * Reads the whole request body, refusing more than `limit` bytes as early as
 * possible: by Content-Length before reading, otherwise as soon as the
 * running total passes the limit.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    throw new GatewayError("payload_too_large", `request body exceeds ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new GatewayError("payload_too_large", `request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
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
