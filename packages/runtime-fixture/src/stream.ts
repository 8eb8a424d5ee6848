import { once } from "node:events";
import type { ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep, setImmediate as yieldToEventLoop } from "node:timers/promises";

/** A streamed answer: what is sent at once, what is paced, and what closes it. */
export interface StreamPlan {
  readonly contentType: string;
  /** Frames written right after the response head (e.g. OpenAI's role chunk). */
  readonly leading?: readonly string[];
  /**
   * Content frames, each written one interval after the previous one (the
   * first one interval after the head: a runtime's time to first token).
   * Pulled lazily, so timestamps inside a frame are the time it was sent.
   */
  readonly timed: Iterable<string>;
  /** Frames written right after the last content frame; built when needed. */
  readonly trailing?: () => readonly string[];
  readonly intervalMs: number;
}

/**
 * Writes a streamed response with a real timer per content frame. Frames are
 * written to the socket as they are produced (headers flushed up front, Nagle
 * off on the socket), so a client sees each one when it is sent.
 *
 * Content frames are scheduled against the stream's start rather than the
 * previous frame, so timer lateness does not add up over thousands of chunks
 * in a benchmark. When `signal` aborts (the client went away) the pending
 * timer is cancelled and nothing more is written, as a runtime stops
 * generating for a cancelled request; the returned promise then rejects with
 * an AbortError.
 */
export async function writeTimedStream(
  res: ServerResponse,
  plan: StreamPlan,
  signal: AbortSignal,
  onContentFrame: () => void,
): Promise<void> {
  signal.throwIfAborted();
  res.writeHead(200, {
    "content-type": plan.contentType,
    "cache-control": "no-cache",
  });
  res.flushHeaders();
  for (const frame of plan.leading ?? []) await writeFrame(res, frame, signal);

  const start = performance.now();
  let index = 0;
  for (const frame of plan.timed) {
    index += 1;
    const wait = start + index * plan.intervalMs - performance.now();
    if (wait > 0) await sleep(Math.ceil(wait), undefined, { signal });
    // Even without a delay, give the event loop a turn per chunk, so a
    // zero-interval stream of 10,000 chunks does not starve other requests.
    else await yieldToEventLoop(undefined, { signal });
    await writeFrame(res, frame, signal);
    onContentFrame();
  }

  for (const frame of plan.trailing?.() ?? []) await writeFrame(res, frame, signal);
  res.end();
}

async function writeFrame(res: ServerResponse, frame: string, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  // Respect backpressure: a slow reader should slow the stream, not grow memory.
  if (!res.write(frame)) await once(res, "drain", { signal });
}

export function sseFrame(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** A named event, as Anthropic's streams (and the Responses API's) send each one. */
export function sseNamedFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function ndjsonLine(data: unknown): string {
  return `${JSON.stringify(data)}\n`;
}
