import type { IncomingMessage, ServerResponse } from "node:http";

/** Request bodies beyond this are refused with 413, like a runtime's own body limit. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType = "text/plain; charset=utf-8",
): void {
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export type BodyResult = { complete: true; text: string } | { complete: false; reason: "too-large" };

/**
 * Reads the whole body as UTF-8, refusing more than `limit` bytes. A body
 * declared too large by Content-Length is refused before reading any of it;
 * one that grows too large is left unread from that point (the 413 then
 * closes the connection). Rejects when the client goes away mid-upload.
 *
 * Events rather than `for await`: leaving an async iterator early destroys
 * the request, and with it the socket the 413 has to be written to.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<BodyResult> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ complete: false, reason: "too-large" });
  return new Promise<BodyResult>((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (part: Buffer) => {
      size += part.length;
      if (size <= limit) {
        parts.push(part);
        return;
      }
      stop();
      req.pause();
      resolve({ complete: false, reason: "too-large" });
    };
    const onEnd = () => {
      stop();
      resolve({ complete: true, text: Buffer.concat(parts).toString("utf8") });
    };
    const onGone = () => {
      stop();
      reject(new Error("the client went away while sending the request body"));
    };
    const stop = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onGone);
    // "close" before "end" means the upload was cut off; after "end" stop() has removed this.
    req.once("close", onGone);
  });
}
