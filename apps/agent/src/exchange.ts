// Requests, agent side. Each Exchange stream is a slot that runs one request
// at a time, then waits for the next: the runtime's answer goes back on the
// same stream with its own HTTP/2 flow control. Reusing streams instead of
// opening one per request saves about 1 ms of CPU per request (gRPC call
// setup on both ends, measured), which is most of what a hop may cost.
import { once } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { headersForCaller, type Logger, UnsafePathError } from "@modelgate/core";
import type {
  AgentFrameInput,
  ErrorCode,
  GatewayFrame,
  RequestHead,
  ResponseHeadInput,
  ResponsePartInput,
} from "@modelgate/protocol";
import type { RuntimeClient } from "./runtime-client.js";
import type { CapacityLimiter } from "./tunnel-client.js";

/** Largest response body piece per gRPC message. */
export const MAX_BODY_FRAME_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** Bodies whose chunks are meaningful one by one (SSE, NDJSON). */
function isStreamed(contentType: string | string[] | undefined): boolean {
  const type = String(contentType ?? "").toLowerCase();
  return type.startsWith("text/event-stream") || type.includes("ndjson") || type.includes("jsonl");
}

/**
 * Splits a chunk into pieces of at most MAX_BODY_FRAME_BYTES: flow control
 * works in messages, and the gateway refuses oversized ones.
 */
function* frames(chunk: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < chunk.length; offset += MAX_BODY_FRAME_BYTES) {
    yield chunk.subarray(offset, offset + MAX_BODY_FRAME_BYTES);
  }
}

export type SlotCall = grpc.ClientDuplexStream<AgentFrameInput, GatewayFrame>;

export interface SlotContext {
  runtime: RuntimeClient;
  limiter: CapacityLimiter;
  draining: () => boolean;
  logger: Logger;
  /** A request started (true) or finished (false) on this slot. */
  onBusy: (busy: boolean) => void;
  /** The stream is gone (closed by the gateway, broken, or cancelled by us). */
  onClosed: () => void;
}

/** Why a runtime request was aborted. */
type AbortReason = "cancelled" | "timeout" | "gateway_gone";

export interface Slot {
  readonly busy: boolean;
  /** Closes the stream; a running request is aborted with it. */
  close(): void;
  /**
   * Half-closes the stream after what was written (a finished request's end
   * part must still arrive); the gateway then ends it. Used when draining.
   */
  finish(): void;
}

export function runSlot(call: SlotCall, context: SlotContext): Slot {
  let current: { abort(reason: AbortReason): void } | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    // Nobody is left to read the answer: the runtime must stop generating.
    current?.abort("gateway_gone");
    context.onClosed();
  };

  let finishing = false;
  call.on("data", (frame: GatewayFrame) => {
    if (frame.request) {
      // A request racing with our half-close: the gateway retries it
      // elsewhere when the stream ends without a Started.
      if (finishing) return;
      if (current) {
        // The gateway never sends a second request before the first ended.
        context.logger.error("gateway sent a request on a busy stream; closing it");
        call.cancel();
        return;
      }
      const controller = new AbortController();
      let abortReason: AbortReason | undefined;
      const abort = (reason: AbortReason) => {
        if (abortReason) return;
        abortReason = reason;
        controller.abort();
      };
      current = { abort };
      context.onBusy(true);
      void runExchange(
        call,
        frame.request,
        context,
        controller.signal,
        () => abortReason,
        () => abort("timeout"),
      ).finally(() => {
        current = undefined;
        context.onBusy(false);
      });
    } else if (frame.cancel) {
      current?.abort("cancelled");
    }
  });
  call.on("error", close);
  call.on("status", close);

  return {
    get busy() {
      return current !== undefined;
    },
    close() {
      call.cancel();
      close();
    },
    finish() {
      if (finishing || closed) return;
      finishing = true;
      call.end();
    },
  };
}

async function runExchange(
  call: SlotCall,
  head: RequestHead,
  { runtime, limiter, draining, logger }: SlotContext,
  signal: AbortSignal,
  abortReason: () => AbortReason | undefined,
  abortSelf: () => void,
): Promise<void> {
  const fail = (code: ErrorCode, message: string) => call.write({ error: { code, message } });
  if (draining()) return void fail("ERROR_CODE_DRAINING", "agent is draining");
  // Another gateway may have filled this agent meanwhile.
  if (!limiter.tryAcquire()) return void fail("ERROR_CODE_AT_CAPACITY", "agent is at capacity");

  // The gateway's deadline, enforced here too; one timer, no composite signal.
  let timedOut = false;
  let ended = false;
  const timer =
    head.timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          abortSelf();
        }, head.timeoutMs)
      : undefined;
  try {
    call.write({ started: {} });
    const response = await runtime.send({
      method: head.method,
      path: head.path,
      headers: head.headers,
      body: head.body,
      signal,
    });
    // Sent with the first part, whichever that is.
    let responseHead: ResponseHeadInput | undefined = {
      status: response.statusCode,
      headers: headersForCaller(response.headers),
    };
    const takeHead = () => {
      const first = responseHead;
      responseHead = undefined;
      return first;
    };
    const send = async (part: ResponsePartInput) => {
      if (!call.write({ part })) await once(call, "drain", { signal });
    };
    if (isStreamed(response.headers["content-type"])) {
      // Every event leaves as soon as the runtime writes it.
      await send({ head: takeHead() });
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        for (const piece of frames(chunk)) await send({ body: piece });
      }
      ended = true;
      clearTimeout(timer);
      await send({ end: true });
    } else {
      // One piece of lookahead: the last piece travels with the end (and,
      // for a small body, with the head), in one message.
      let pending: Buffer | undefined;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        for (const piece of frames(chunk)) {
          if (pending) await send({ head: takeHead(), body: pending });
          pending = piece;
        }
      }
      ended = true;
      clearTimeout(timer);
      await send({ head: takeHead(), body: pending ?? EMPTY, end: true });
    }
  } catch (error) {
    const reason = abortReason();
    // After the end part nothing more may be written: the gateway has handed
    // this stream to the next request already.
    if (ended) {
      logger.debug({ requestId: head.requestId, reason }, "stream closed after the end of a request");
    } else if (reason === "cancelled" || reason === "gateway_gone") {
      logger.debug({ requestId: head.requestId, reason }, "runtime request aborted");
    } else if (timedOut) {
      fail("ERROR_CODE_RUNTIME_TIMEOUT", "the runtime did not answer in time");
    } else if (error instanceof UnsafePathError) {
      fail("ERROR_CODE_INVALID_REQUEST", `refused path: ${error.message}`);
    } else {
      // The detail names internal hosts; it stays in the agent's log.
      logger.warn({ err: error, requestId: head.requestId }, "runtime request failed");
      fail("ERROR_CODE_RUNTIME_UNAVAILABLE", "the runtime could not be reached or broke the connection");
    }
  } finally {
    clearTimeout(timer);
    limiter.release();
  }
}
