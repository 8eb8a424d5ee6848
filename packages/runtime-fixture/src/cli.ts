#!/usr/bin/env node
// Runs the fixture as a process: the zero-config demo runtime, or a stand-in
// runtime for benchmarks. Configured from the environment; empty variables
// count as unset. Prints one line with the URL once listening.
import {
  CHUNK_COUNT_BOUNDS,
  describeBounds,
  type IntegerBounds,
  MILLISECONDS_BOUNDS,
  PORT_BOUNDS,
  parseBoundedInteger,
} from "./bounds.js";
import type { RuntimeFixtureOptions } from "./options.js";
import { startRuntimeFixture } from "./server.js";

class UsageError extends Error {
  override name = "UsageError";
}

function optionsFromEnv(env: NodeJS.ProcessEnv): RuntimeFixtureOptions {
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

async function main(): Promise<void> {
  const fixture = await startRuntimeFixture(optionsFromEnv(process.env));
  process.stdout.write(`runtime fixture listening on ${fixture.url}\n`);
  const stop = () => {
    fixture.close().catch((error: unknown) => {
      console.error("runtime fixture: error while closing", error);
      process.exitCode = 1;
    });
  };
  // Once closed, nothing keeps the event loop alive and the process exits 0.
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((error: unknown) => {
  console.error(
    `runtime fixture: ${error instanceof UsageError || error instanceof RangeError ? error.message : String(error)}`,
  );
  process.exitCode = error instanceof UsageError || error instanceof RangeError ? 2 : 1;
});
