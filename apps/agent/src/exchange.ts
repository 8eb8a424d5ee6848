// One request, agent side: gateway frame in, runtime request out, runtime
// response streamed back on the same gRPC stream with its flow control.
import { once } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { headersForCaller, type Logger, UnsafePathError } from "@modelgate/core";
import type { AgentFrameInput, ErrorCode, GatewayFrame, RequestHead } from "@modelgate/protocol";
import type { RuntimeClient } from "./runtime-client.js";

import type { CapacityLimiter } from "./tunnel-client.js";

export interface ExchangeContext {
  call: grpc.ClientDuplexStream<AgentFrameInput, GatewayFrame>;
  head: RequestHead;
  runtime: RuntimeClient;
  limiter: CapacityLimiter;
  draining: () => boolean;
  logger: Logger;
}

/** Largest response body piece per gRPC message. */
export const MAX_BODY_FRAME_BYTES = 64 * 1024;

/** Why the runtime request was aborted, so the error frame can say so. */
type AbortReason = "cancelled" | "timeout" | "gateway_gone";

export async function runExchange({ call, head, runtime, limiter, draining, logger }: ExchangeContext): Promise<void> {
  const fail = (code: ErrorCode, message: string) => {
    call.write({ error: { code, message } });
    call.end();
  };
  if (draining()) return fail("ERROR_CODE_DRAINING", "agent is draining");
  // Another gateway may have filled this agent since the stream was parked.
  if (!limiter.tryAcquire()) return fail("ERROR_CODE_AT_CAPACITY", "agent is at capacity");

  const controller = new AbortController();
  let abortReason: AbortReason | undefined;
  const abort = (reason: AbortReason) => {
    if (abortReason) return;
    abortReason = reason;
    controller.abort(new Error(reason));
  };
  call.on("data", (frame: GatewayFrame) => {
    if (frame.cancel) abort("cancelled");
  });
  // The gateway ended the stream (client gone) or the tunnel broke: nobody
  // is left to read the answer, so the runtime must stop generating.
  call.on("error", () => abort("gateway_gone"));
  call.on("status", () => abort("gateway_gone"));
  const timer = head.timeoutMs > 0 ? setTimeout(() => abort("timeout"), head.timeoutMs) : undefined;
  const log = logger.child({ requestId: head.requestId, sessionId: head.decision?.sessionId });

  try {
    call.write({ started: {} });
    const response = await runtime.send({
      method: head.method,
      path: head.path,
      headers: head.headers,
      body: head.body,
      signal: controller.signal,
    });
    call.write({
      head: { status: response.statusCode, headers: headersForCaller(response.headers) },
    });
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      // Frames stay small whatever the runtime's write sizes: flow control
      // works in frames, and the gateway refuses oversized messages.
      for (let offset = 0; offset < chunk.length; offset += MAX_BODY_FRAME_BYTES) {
        const frame = chunk.subarray(offset, offset + MAX_BODY_FRAME_BYTES);
        if (!call.write({ body: frame })) await waitForDrain(call, controller.signal);
      }
    }
    call.write({ end: {} });
    call.end();
  } catch (error) {
    if (abortReason === "cancelled" || abortReason === "gateway_gone") {
      log.debug({ reason: abortReason }, "runtime request aborted");
      call.end();
    } else if (abortReason === "timeout") {
      fail("ERROR_CODE_RUNTIME_TIMEOUT", "the runtime did not answer in time");
    } else if (error instanceof UnsafePathError) {
      fail("ERROR_CODE_INVALID_REQUEST", `refused path: ${error.message}`);
    } else {
      // The detail names internal hosts; it stays in the agent's log.
      log.warn({ err: error }, "runtime request failed");
      fail("ERROR_CODE_RUNTIME_UNAVAILABLE", "the runtime could not be reached or broke the connection");
    }
  } finally {
    clearTimeout(timer);
    limiter.release();
  }
}

async function waitForDrain(call: grpc.ClientDuplexStream<AgentFrameInput, GatewayFrame>, signal: AbortSignal) {
  await once(call, "drain", { signal });
}
