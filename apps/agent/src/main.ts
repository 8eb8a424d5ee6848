// The agent process: runs beside a model runtime and dials out to gateways.
import { ConfigError, createLogger } from "@modelgate/core";
import { startTracing, tracingSettings } from "@modelgate/tracing";
import { startAgent } from "./agent.js";
import { gatewayLabel, loadConfig } from "./config.js";
import { startAgentOps } from "./ops.js";
import { VERSION } from "./version.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ name: "agent", level: config.logLevel });
  logger.info(
    {
      gateways: config.gateways.map(gatewayLabel),
      runtime: new URL(config.runtimeUrl).origin,
      capacity: config.capacity,
      runtimeCredential: config.runtimeCredential ? config.runtimeCredential.kind : "none",
    },
    "starting agent",
  );
  // What keeps this process alive: this handle, until SIGTERM or SIGINT,
  // and nothing else ends it. The agent's own timers are unref'd (it also
  // runs inside other processes), and a gRPC channel holds nothing while
  // its gateway is away: without this, an agent whose gateways all went
  // away would end quietly with status 0, and every model behind it would
  // stay offline until someone restarted it. (The ops listener holds the
  // loop too, but staying up must not hang on a side effect of it.)
  const lifeline = setInterval(() => undefined, 2 ** 30);

  // The gateway decided whether a request is sampled; its agent follows.
  const tracing = await startTracing(tracingSettings(process.env), {
    serviceName: "modelgate-agent",
    serviceVersion: VERSION,
    remoteSampling: "follow",
  });
  const agent = startAgent({
    ...config,
    reconnectBackoff: config.reconnect,
    version: VERSION,
    logger,
    tracer: tracing.tracer,
  });
  const ops = await startAgentOps(agent, { ...config.ops, logger }).catch(async (error: unknown) => {
    // A taken ops port: stop the tunnels, so the process can exit.
    clearInterval(lifeline);
    await agent.close();
    throw error;
  });
  logger.info({ ops: ops.url, tracing: tracing.tracer !== undefined }, "agent ops listening");

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, "draining");
    void agent.drain(config.drainTimeoutMs).then(async (finished) => {
      logger.info({ finished }, finished ? "drained, exiting" : "drain timed out, exiting");
      await ops.close();
      // The last requests' spans leave before the process does.
      await tracing
        .shutdown()
        .catch((error: unknown) => logger.warn({ err: error }, "could not export the last spans"));
      clearInterval(lifeline);
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
