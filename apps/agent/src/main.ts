// The agent process: runs beside a model runtime and dials out to gateways.
import { ConfigError, createLogger } from "@modelgate/core";
import { startAgent } from "./agent.js";
import { loadConfig } from "./config.js";
import { startAgentOps } from "./ops.js";
import { VERSION } from "./version.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ name: "agent", level: config.logLevel });
  logger.info(
    {
      gateways: config.gateways.map((gateway) => gateway.address),
      runtime: new URL(config.runtimeUrl).origin,
      capacity: config.capacity,
      runtimeCredential: config.runtimeCredential ? config.runtimeCredential.kind : "none",
    },
    "starting agent",
  );
  const agent = startAgent({ ...config, version: VERSION, logger });
  const ops = await startAgentOps(agent, { ...config.ops, logger }).catch(async (error: unknown) => {
    // A taken ops port: stop the tunnels, so the process can exit.
    await agent.close();
    throw error;
  });
  logger.info({ ops: ops.url }, "agent ops listening");

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, "draining");
    void agent.drain(config.drainTimeoutMs).then(async (finished) => {
      logger.info({ finished }, finished ? "drained, exiting" : "drain timed out, exiting");
      await ops.close();
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`agent failed to start: ${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(1);
});
