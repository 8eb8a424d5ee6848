import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Response } from "express";
import type { ReplayEventView, ReplayFormat, SessionReplayView } from "./schemas.js";

/**
 * Replaying a recorded session to an auditor: the stored chunks re-sent with
 * the gaps they had when the client received them (optionally sped up), so
 * the auditor sees exactly what the client saw, at the pace it saw it.
 */

/** Where the gateway records the response's Content-Type in `details` (when it does). */
const RESPONSE_CONTENT_TYPE_DETAIL = "responseContentType";

/** type/subtype with optional parameters in printable ASCII: what a Content-Type header can carry. */
const MEDIA_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;[\x20-\x7e]*)?$/;

const SSE = "text/event-stream";
const NDJSON = "application/x-ndjson";

/**
 * The response's content type: as recorded by the gateway when it was, else
 * inferred from what was delivered. Runtimes speak two stream framings
 * (OpenAI's SSE `data:` frames, Ollama's JSON lines) and otherwise answer
 * JSON; anything else is sent as text, never as something a browser renders.
 */
export function responseContentType(
  details: Record<string, unknown> | null,
  events: readonly ReplayEventView[],
  body: string | null,
): string | null {
  const recorded = details?.[RESPONSE_CONTENT_TYPE_DETAIL];
  if (typeof recorded === "string" && recorded.length <= 256 && MEDIA_TYPE.test(recorded)) return recorded;
  const first = events[0]?.data ?? body;
  if (first === null || first === undefined) return null;
  if (events.length > 0) {
    if (/^(data|event|id|retry):|^:/.test(first)) return `${SSE}; charset=utf-8`;
    if (first.trimStart().startsWith("{")) return NDJSON;
    return "text/plain; charset=utf-8";
  }
  try {
    JSON.parse(first);
    return "application/json";
  } catch {
    return "text/plain; charset=utf-8";
  }
}

/** A chunk to send and when, relative to the request (ms). */
interface TimedChunk {
  seq: number;
  offsetMs: number;
  data: string;
}

/** The chunks a stream replay sends: the events, or the body as one chunk when the response was not streamed. */
function replayChunks(replay: SessionReplayView): TimedChunk[] {
  if (replay.events.length > 0) return replay.events;
  if (replay.response.body === null) return [];
  return [{ seq: 0, offsetMs: replay.ttfbMs ?? replay.latencyMs ?? 0, data: replay.response.body }];
}

/** Replays in progress in this process: a gauge for tests and metrics, and proof that a disconnect ends one. */
let activeReplays = 0;
export const activeReplayCount = () => activeReplays;

export interface StreamReplayOptions {
  format: Exclude<ReplayFormat, "json">;
  /** Playback speed factor; 0 sends every chunk at once. */
  speed: number;
}

/** The SSE envelope of one chunk: any stream, whatever its native framing, can be watched with an EventSource. */
function sseEvent(chunk: TimedChunk): string {
  return `id: ${chunk.seq}\ndata: ${JSON.stringify({ seq: chunk.seq, offsetMs: chunk.offsetMs, data: chunk.data })}\n\n`;
}

/**
 * Writes the replay. The first chunk goes at once; each next one after the
 * recorded gap to the one before it, divided by the speed. The gap is waited
 * from the previous write, so a busy server may run a replay late but never
 * shortens a pause the client saw. An auditor who disconnects ends the replay
 * at once: the pending wait is cancelled through the abort signal, so no
 * timer stays behind.
 */
export async function streamReplay(
  res: Response,
  replay: SessionReplayView,
  { format, speed }: StreamReplayOptions,
): Promise<void> {
  // The auditor may have gone while the session was read: nothing to start.
  if (!res.socket || res.socket.destroyed) return;
  const chunks = replayChunks(replay);
  const aborted = new AbortController();
  const onClose = () => aborted.abort();
  res.on("close", onClose);
  activeReplays += 1;
  try {
    res.status(200);
    res.setHeader("x-modelgate-replay-speed", String(speed));
    if (replay.response.status !== null) res.setHeader("x-modelgate-response-status", String(replay.response.status));
    // Proxies such as nginx buffer responses unless told not to; a buffered replay loses its timing.
    res.setHeader("x-accel-buffering", "no");
    // A recorded answer is data, whatever its content type says: an HTML one
    // opened in a browser must not run script in the control plane's origin.
    res.setHeader("content-security-policy", "default-src 'none'; sandbox");
    if (format === "sse") {
      res.setHeader("content-type", `${SSE}; charset=utf-8`);
    } else {
      res.setHeader("content-type", replay.response.contentType ?? "application/octet-stream");
    }
    res.flushHeaders();
    let previousOffset = chunks[0]?.offsetMs ?? 0;
    for (const chunk of chunks) {
      const gap = Math.max(0, chunk.offsetMs - previousOffset);
      previousOffset = chunk.offsetMs;
      if (speed > 0 && gap > 0) await sleep(gap / speed, undefined, { signal: aborted.signal });
      if (aborted.signal.aborted) return;
      const written = res.write(format === "sse" ? sseEvent(chunk) : chunk.data);
      // A slow reader: wait for the socket rather than buffer the whole session in memory.
      if (!written) await once(res, "drain", { signal: aborted.signal });
    }
    // The end marker tells an EventSource not to reconnect and replay again.
    if (format === "sse") res.write(`event: end\ndata: ${JSON.stringify({ events: chunks.length })}\n\n`);
    res.end();
  } catch (error) {
    // The auditor went away mid-replay: nothing to answer, nothing to report.
    if (aborted.signal.aborted) return;
    throw error;
  } finally {
    activeReplays -= 1;
    res.off("close", onClose);
    // Cut short after the headers went out: end the connection so the client
    // sees an incomplete response, not a complete but shorter replay. Before
    // them, the error handler still answers with a problem.
    if (!res.writableEnded && res.headersSent) res.destroy();
  }
}
