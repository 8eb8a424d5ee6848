import type { IncomingMessage, ServerResponse } from "node:http";
import type { FixtureSettings } from "./options.js";
import type { Overrides } from "./overrides.js";
import type { Protocol } from "./protocol-errors.js";
import type { RecordedRequest, RequestRecorder } from "./recorder.js";
import { type StreamPlan, writeTimedStream } from "./stream.js";

/** What lives as long as the fixture: settings, the record of requests, health. */
export interface FixtureState {
  readonly settings: FixtureSettings;
  readonly recorder: RequestRecorder;
  /** When the fixture started; models report it as their creation time. */
  readonly startedAt: Date;
  healthy: boolean;
}

/** Everything a route handler needs about one request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly record: RecordedRequest;
  readonly body: string;
  readonly overrides: Overrides;
  /** Aborts when the client goes away before the response finished. */
  readonly signal: AbortSignal;
  readonly fixture: FixtureState;
}

export type RouteHandler = (context: RequestContext) => void | Promise<void>;

export interface Route {
  readonly path: string;
  /** Decides the shape of every error this path answers with. */
  readonly protocol: Protocol;
  /** HEAD is answered by the GET handler (Node drops the body). */
  readonly methods: Readonly<Partial<Record<"GET" | "POST", RouteHandler>>>;
}

/** The number of content chunks and their spacing for this request's stream. */
export function streamShape(context: RequestContext): { chunks: number; intervalMs: number } {
  return {
    chunks: context.overrides.chunks ?? context.fixture.settings.streamChunks,
    intervalMs: context.overrides.intervalMs ?? context.fixture.settings.chunkIntervalMs,
  };
}

/** Streams a planned answer, counting content chunks on the request's record. */
export function respondWithStream(context: RequestContext, plan: Omit<StreamPlan, "intervalMs">): Promise<void> {
  const { intervalMs } = streamShape(context);
  return writeTimedStream(context.res, { ...plan, intervalMs }, context.signal, () =>
    context.fixture.recorder.countChunk(context.record),
  );
}
