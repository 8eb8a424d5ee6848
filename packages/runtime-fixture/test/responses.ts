import { performance } from "node:perf_hooks";

/** One frame of a streamed body and when the test received it. */
export interface ReceivedFrame {
  text: string;
  receivedAt: number;
}

/**
 * Reads a streamed body frame by frame as it arrives, splitting on
 * `separator` ("\n\n" for SSE, "\n" for NDJSON), and notes when each frame
 * was received, so tests can tell a paced stream from a buffered one.
 * `onFrame` may return true to stop reading (the body is then cancelled).
 */
export async function readFrames(
  response: Response,
  separator: string,
  onFrame?: (frame: ReceivedFrame) => boolean | undefined,
): Promise<ReceivedFrame[]> {
  if (response.body === null) throw new Error("response has no body");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const frames: ReceivedFrame[] = [];
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const receivedAt = performance.now();
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf(separator);
    while (end !== -1) {
      const frame = { text: buffer.slice(0, end), receivedAt };
      buffer = buffer.slice(end + separator.length);
      frames.push(frame);
      if (onFrame?.(frame) === true) {
        await reader.cancel();
        return frames;
      }
      end = buffer.indexOf(separator);
    }
  }
  if (buffer !== "") throw new Error(`stream ended inside a frame: ${JSON.stringify(buffer)}`);
  return frames;
}

/** The JSON payloads of SSE `data:` frames, up to (not including) `[DONE]`. */
export function sseData(frames: readonly ReceivedFrame[]): unknown[] {
  const payloads: unknown[] = [];
  for (const { text } of frames) {
    if (!text.startsWith("data:")) throw new Error(`not an SSE data frame: ${text}`);
    const data = text.slice("data:".length).trimStart();
    if (data === "[DONE]") break;
    payloads.push(JSON.parse(data));
  }
  return payloads;
}

/** The parsed JSON body, typed loosely because tests assert on its shape. */
// biome-ignore lint/suspicious/noExplicitAny: tests read parsed JSON of many shapes and assert on it
export async function jsonOf(response: Response): Promise<any> {
  return response.json();
}
