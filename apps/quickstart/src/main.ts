// `npm start`: runs all of modelgate until Ctrl-C (SIGINT), SIGTERM or a
// closed terminal (SIGHUP), then stops it in order and exits 0. A second
// signal gives up on the orderly shutdown.
import { once } from "node:events";
import { ConfigError } from "@modelgate/core";
import { formatBanner } from "./banner.js";
import { loadConfig, redactConfig } from "./config.js";
import type { RunningQuickstart } from "./quickstart.js";

/** Longer than the agent drain, gateway grace and Postgres stop together; past it something hangs. */
const SHUTDOWN_TIMEOUT_MS = 40_000;
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

async function main(): Promise<void> {
  const config = loadConfig();
  const stopRequested = new AbortController();
  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      if (stopRequested.signal.aborted) {
        process.stderr.write(`${signal} again: exiting without finishing the shutdown\n`);
        process.exit(1);
      }
      process.stderr.write(`\n${signal}: stopping modelgate (press Ctrl-C again to force)\n`);
      stopRequested.abort(new Error(`stopped by ${signal}`));
    });
  }
  if (config.logLevel === "debug" || config.logLevel === "trace") {
    process.stderr.write(`${JSON.stringify({ config: redactConfig(config) })}\n`);
  }

  let running: RunningQuickstart;
  try {
    // Loaded after the handlers are in place: loading takes a moment, and a
    // Ctrl-C during it should end the run like any other.
    const { startQuickstart } = await import("./quickstart.js");
    running = await startQuickstart(config, { signal: stopRequested.signal });
  } catch (error) {
    // Interrupted while starting: what had started is already stopped again.
    if (stopRequested.signal.aborted) process.exit(0);
    throw error;
  }
  process.stdout.write(formatBanner(running));

  if (!stopRequested.signal.aborted) await once(stopRequested.signal, "abort");
  setTimeout(() => {
    process.stderr.write(`shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS} ms; exiting anyway\n`);
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
  await running.close();
  process.stderr.write("modelgate stopped\n");
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`modelgate failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  const verbose = ["debug", "trace"].includes(process.env.LOG_LEVEL ?? "");
  if (!(error instanceof ConfigError) && error instanceof Error && verbose && error.stack) {
    process.stderr.write(`${error.stack}\n`);
  }
  process.exit(1);
});
