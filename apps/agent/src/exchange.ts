// Requests, agent side. Each Exchange stream is a slot that runs one request
// at a time, then waits for the next: the runtime's answer goes back on the
// same stream with its own HTTP/2 flow control. Reusing streams instead of
// opening one per request saves about 1 ms of CPU per request (gRPC call
// setup on both ends, measured), which is most of what a hop may cost.
import { once } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { headersForCaller, type Logger, UnsafePathError } from "@modelgate/core";
import {
  createResponseMasker,
  Masker,
  type MaskingProfile,
  type ResponseMasker,
  sessionMaskerOptions,
} from "@modelgate/masking";
import type {
  AgentFrameInput,
  ErrorCode,
  GatewayFrame,
  RequestHead,
  ResponseHeadInput,
  ResponsePartInput,
} from "@modelgate/protocol";
import type { Tracer } from "@opentelemetry/api";
import { ExchangeTrace, runtimeTraceHeaders, withTraceHeaders } from "./exchange-trace.js";
import type { RuntimeClient } from "./runtime-client.js";
import type { CapacityLimiter } from "./tunnel-client.js";

/** Largest response body piece per gRPC message. */
const MAX_BODY_FRAME_BYTES = 64 * 1024;
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

/** How a request ended on the agent, a bounded set (the agent's requests metric). */
export type ExchangeOutcome =
  | "completed"
  | "draining"
  | "at_capacity"
  | "masking_failed"
  | "invalid_request"
  | "runtime_timeout"
  | "runtime_unavailable"
  /** Cancelled by the client or the gateway, or the stream went away. */
  | "aborted";

export interface SlotContext {
  runtime: RuntimeClient;
  limiter: CapacityLimiter;
  draining: () => boolean;
  logger: Logger;
  /** A request started (true) or finished (false) on this slot. */
  onBusy: (busy: boolean) => void;
  /** The stream is gone (closed by the gateway, broken, or cancelled by us). */
  onClosed: () => void;
  /** A request ended. */
  onOutcome?: (outcome: ExchangeOutcome) => void;
  /** Spans of every exchange (exchange-trace.ts); undefined when the agent does not trace. */
  tracer?: Tracer | undefined;
}

/** Masking failed under `onError: "block"`: the rest of the response is withheld. */
class MaskingFailure extends Error {}

/** The request's masking profile, or undefined when its decision asks for none. Throws when it is unreadable. */
function maskingProfileOf(head: RequestHead): MaskingProfile | undefined {
  const json = head.decision?.maskingJson;
  if (!json) return undefined;
  return JSON.parse(json) as MaskingProfile;
}

/** Maskers by their profile's JSON, for the styles that need no session key. */
const sharedMaskers = new Map<string, Masker>();
const MAX_SHARED_MASKERS = 64;

/**
 * The masker for a request's profile. A Masker is built once per profile
 * and used any number of times (its contract); building one per request
 * (detectors, plan) was a visible part of the agent's work under masked
 * load, for the same few profiles every time (docs/benchmarks.md). The
 * `hash` style gets a masker of its own with a fresh key per request:
 * pseudonyms are stable within one session and unlinkable across sessions.
 */
function maskerFor(profile: MaskingProfile, profileJson: string): Masker {
  if (profile.style === "hash") return new Masker(profile, sessionMaskerOptions(profile));
  let masker = sharedMaskers.get(profileJson);
  if (masker === undefined) {
    masker = new Masker(profile, sessionMaskerOptions(profile));
    // Bounded: past the bound, start again rather than grow with whatever profiles arrive.
    if (sharedMaskers.size >= MAX_SHARED_MASKERS) sharedMaskers.clear();
    sharedMaskers.set(profileJson, masker);
  }
  return masker;
}

/**
 * Masks a response at the source, chunk by chunk. A failure ends the
 * response (fail closed) unless the policy explicitly opted into `pass`, in
 * which case the rest goes out unmasked and the log says so.
 */
class ResponseFilter {
  #masker: ResponseMasker | undefined;
  readonly #profile: MaskingProfile;
  readonly #logger: Logger;
  readonly #requestId: string;
  #counts: Record<string, number> = {};

  constructor(profile: MaskingProfile, masker: Masker, contentType: string, logger: Logger, requestId: string) {
    this.#profile = profile;
    this.#logger = logger;
    this.#requestId = requestId;
    this.#masker = createResponseMasker(masker, { contentType, fields: profile.fields });
  }

  push(chunk: Buffer): Buffer {
    return this.#run(chunk, (masker) => masker.push(chunk));
  }

  end(): Buffer {
    return this.#run(EMPTY, (masker) => masker.end());
  }

  get counts(): Record<string, number> {
    return this.#masker ? { ...this.#counts, ...this.#masker.counts } : this.#counts;
  }

  #run(raw: Buffer, step: (masker: ResponseMasker) => Uint8Array): Buffer {
    const masker = this.#masker;
    if (!masker) return raw;
    try {
      const out = step(masker);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    } catch (error) {
      if (this.#profile.onError !== "pass") {
        this.#logger.warn(
          { err: error, requestId: this.#requestId },
          "masking failed; withholding the rest of the response",
        );
        throw new MaskingFailure(error instanceof Error ? error.message : String(error));
      }
      // Explicit opt-in: from here on the response is not masked. Text the
      // masker was holding back at this moment is not recovered.
      this.#logger.error(
        { err: error, requestId: this.#requestId },
        "masking failed; sending the rest of the response UNMASKED (policy onError: pass)",
      );
      this.#counts = { ...masker.counts };
      this.#masker = undefined;
      return raw;
    }
  }
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
      const trace = context.tracer ? new ExchangeTrace(context.tracer, frame.request) : undefined;
      void runExchange(
        call,
        frame.request,
        context,
        controller.signal,
        () => abortReason,
        () => abort("timeout"),
        trace,
      )
        .then((outcome) => {
          trace?.end(outcome);
          context.onOutcome?.(outcome);
        })
        .finally(() => {
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
  trace: ExchangeTrace | undefined,
): Promise<ExchangeOutcome> {
  const fail = (code: ErrorCode, message: string) => call.write({ error: { code, message } });
  if (draining()) {
    fail("ERROR_CODE_DRAINING", "agent is draining");
    return "draining";
  }
  let profile: MaskingProfile | undefined;
  try {
    profile = maskingProfileOf(head);
  } catch {
    // Never send a response whose masking could not even be read.
    fail("ERROR_CODE_MASKING_FAILED", "the request's masking profile is unreadable");
    return "masking_failed";
  }
  // Another gateway may have filled this agent meanwhile.
  if (!limiter.tryAcquire()) {
    fail("ERROR_CODE_AT_CAPACITY", "agent is at capacity");
    return "at_capacity";
  }

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
    // A compressed answer cannot be masked (it would fail closed): ask the
    // runtime for plain text when masking applies.
    const headers = profile
      ? head.headers.filter((header) => header.name.toLowerCase() !== "accept-encoding")
      : head.headers;
    const traceContext = runtimeTraceHeaders(trace, head, head.method, runtime.origin);
    const response = await runtime.send({
      method: head.method,
      path: head.path,
      headers: traceContext ? withTraceHeaders(headers, traceContext) : headers,
      body: head.body,
      signal,
    });
    trace?.runtimeResponded(response.statusCode);
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
    const contentType = String(response.headers["content-type"] ?? "");
    let filter: ResponseFilter | undefined;
    if (profile) {
      try {
        // A compressed body cannot be masked; the runtime was asked for none.
        const encoding = String(response.headers["content-encoding"] ?? "identity").toLowerCase();
        if (encoding !== "identity") throw new Error(`the runtime answered with content-encoding ${encoding}`);
        trace?.maskingStarted(profile.style);
        filter = new ResponseFilter(
          profile,
          maskerFor(profile, head.decision?.maskingJson ?? ""),
          contentType,
          logger,
          head.requestId,
        );
      } catch (error) {
        // Stop the runtime (and free its connection) before failing closed.
        (response.body as { destroy?: () => void }).destroy?.();
        logger.warn({ err: error, requestId: head.requestId }, "cannot mask this response; refusing it");
        throw new MaskingFailure(error instanceof Error ? error.message : String(error));
      }
    }
    const counts = () => (filter ? { maskedCounts: filter.counts } : {});
    if (isStreamed(contentType)) {
      // Every event leaves as soon as the runtime writes it (and masking
      // releases it).
      await send({ head: takeHead() });
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        for (const piece of frames(filter ? filter.push(chunk) : chunk)) await send({ body: piece });
      }
      const tail = filter?.end() ?? EMPTY;
      trace?.runtimeDone();
      if (filter) trace?.masked(filter.counts);
      for (const piece of frames(tail)) await send({ body: piece });
      ended = true;
      clearTimeout(timer);
      await send({ end: true, ...counts() });
    } else {
      // One piece of lookahead: the last piece travels with the end (and,
      // for a small body, with the head), in one message.
      let pending: Buffer | undefined;
      const forward = async (bytes: Buffer) => {
        for (const piece of frames(bytes)) {
          if (pending) await send({ head: takeHead(), body: pending });
          pending = piece;
        }
      };
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        await forward(filter ? filter.push(chunk) : chunk);
      }
      if (filter) await forward(filter.end());
      trace?.runtimeDone();
      if (filter) trace?.masked(filter.counts);
      ended = true;
      clearTimeout(timer);
      await send({ head: takeHead(), body: pending ?? EMPTY, end: true, ...counts() });
    }
    return "completed";
  } catch (error) {
    const reason = abortReason();
    // After the end part nothing more may be written: the gateway has handed
    // this stream to the next request already.
    if (ended) {
      logger.debug({ requestId: head.requestId, reason }, "stream closed after the end of a request");
      return "completed";
    }
    if (reason === "cancelled" || reason === "gateway_gone") {
      logger.debug({ requestId: head.requestId, reason }, "runtime request aborted");
      return "aborted";
    }
    if (timedOut) {
      fail("ERROR_CODE_RUNTIME_TIMEOUT", "the runtime did not answer in time");
      return "runtime_timeout";
    }
    if (error instanceof MaskingFailure) {
      // Leaving the body's loop closed it, which aborts the runtime request.
      fail("ERROR_CODE_MASKING_FAILED", "the response could not be masked");
      return "masking_failed";
    }
    if (error instanceof UnsafePathError) {
      fail("ERROR_CODE_INVALID_REQUEST", `refused path: ${error.message}`);
      return "invalid_request";
    }
    // The detail names internal hosts; it stays in the agent's log.
    logger.warn({ err: error, requestId: head.requestId }, "runtime request failed");
    fail("ERROR_CODE_RUNTIME_UNAVAILABLE", "the runtime could not be reached or broke the connection");
    return "runtime_unavailable";
  } finally {
    clearTimeout(timer);
    limiter.release();
  }
}
