#!/usr/bin/env node
// Runs the fixture as a process: the zero-config demo runtime, or a stand-in
// runtime for benchmarks. Configured from the environment; empty variables
// count as unset. Prints one line with the URL once listening.
import { optionsFromEnv, UsageError } from "./env.js";
import { startRuntimeFixture } from "./server.js";

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
