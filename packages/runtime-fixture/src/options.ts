import {
  CHUNK_COUNT_BOUNDS,
  describeBounds,
  type IntegerBounds,
  isWithin,
  MILLISECONDS_BOUNDS,
  PORT_BOUNDS,
} from "./bounds.js";
import { demoText } from "./demo-text.js";

export interface RuntimeFixtureOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Port to listen on; default 0, an ephemeral port (read the fixture's `url`). */
  port?: number;
  /** Model names served by every protocol; default ["demo-chat", "demo-embed"]. */
  models?: string[];
  /** Number of content chunks in a streamed answer; default 20. */
  streamChunks?: number;
  /** Delay between streamed content chunks in milliseconds; default 5. */
  chunkIntervalMs?: number;
  /** The answer text, streamed or not; default a clearly labelled demo text. */
  completionText?: string;
  /** When set, every request must carry `Authorization: Bearer <it>` or gets 401. */
  requiredBearer?: string;
  /** Prefixes the default demo text, e.g. "demo runtime". */
  label?: string;
}

/** Options with defaults applied and values checked, fixed for the fixture's life. */
export interface FixtureSettings {
  readonly host: string;
  readonly port: number;
  readonly models: readonly string[];
  readonly streamChunks: number;
  readonly chunkIntervalMs: number;
  readonly completionText: string;
  readonly requiredBearer: string | undefined;
}

const DEFAULT_MODELS: readonly string[] = ["demo-chat", "demo-embed"];

/** Applies defaults and rejects values a test could only have meant by mistake. */
export function resolveOptions(options: RuntimeFixtureOptions = {}): FixtureSettings {
  const models = options.models ?? [...DEFAULT_MODELS];
  if (models.length === 0) throw new RangeError("runtime fixture: models must name at least one model");
  for (const model of models) {
    if (typeof model !== "string" || model.trim() === "") {
      throw new RangeError("runtime fixture: every model name must be a non-empty string");
    }
  }
  if (options.requiredBearer !== undefined && options.requiredBearer === "") {
    // An empty token would make "Authorization: Bearer " pass, which is never intended.
    throw new RangeError("runtime fixture: requiredBearer must not be empty");
  }
  return {
    host: options.host ?? "127.0.0.1",
    port: checked("port", options.port ?? 0, PORT_BOUNDS),
    models: [...new Set(models)],
    streamChunks: checked("streamChunks", options.streamChunks ?? 20, CHUNK_COUNT_BOUNDS),
    chunkIntervalMs: checked("chunkIntervalMs", options.chunkIntervalMs ?? 5, MILLISECONDS_BOUNDS),
    completionText: options.completionText ?? demoText(options.label),
    requiredBearer: options.requiredBearer,
  };
}

function checked(name: string, value: number, bounds: IntegerBounds): number {
  if (!isWithin(value, bounds)) throw new RangeError(`runtime fixture: ${name} must be ${describeBounds(bounds)}`);
  return value;
}
