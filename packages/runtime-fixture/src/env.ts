// The fixture's settings from environment variables, as its command line
// (cli.ts) and the container image's `runtime-fixture` read them. Empty
// variables count as unset.
import {
  CHUNK_COUNT_BOUNDS,
  describeBounds,
  type IntegerBounds,
  MILLISECONDS_BOUNDS,
  PORT_BOUNDS,
  parseBoundedInteger,
} from "./bounds.js";
import type { RuntimeFixtureOptions } from "./options.js";

export class UsageError extends Error {
  override name = "UsageError";
}

export function optionsFromEnv(env: Readonly<Record<string, string | undefined>>): RuntimeFixtureOptions {
  const text = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const integer = (name: string, bounds: IntegerBounds) => {
    const raw = text(name);
    if (raw === undefined) return undefined;
    const value = parseBoundedInteger(raw, bounds);
    if (value === undefined) throw new UsageError(`${name} must be ${describeBounds(bounds)}`);
    return value;
  };
  const models = text("MODELS")
    ?.split(",")
    .map((model) => model.trim())
    .filter((model) => model !== "");
  return {
    host: text("HOST"),
    port: integer("PORT", PORT_BOUNDS),
    models: models !== undefined && models.length > 0 ? models : undefined,
    streamChunks: integer("STREAM_CHUNKS", CHUNK_COUNT_BOUNDS),
    chunkIntervalMs: integer("CHUNK_INTERVAL_MS", MILLISECONDS_BOUNDS),
    requiredBearer: text("REQUIRED_BEARER"),
    label: text("LABEL") ?? "demo runtime",
  };
}
