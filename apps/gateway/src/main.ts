// The gateway process.
import { createQueueTransport } from "@modelgate/audit";
import { ConfigError, createLogger } from "@modelgate/core";
import { startTracing, tracingSettings } from "@modelgate/tracing";
import { loadConfig } from "./config.js";
import { startGateway } from "./gateway.js";
import { VERSION } from "./version.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ name: "gateway", level: config.logLevel });
  // Callers' sampling flags are not followed: see startTracing.
  const tracing = await startTracing(tracingSettings(process.env), {
    serviceName: "modelgate-gateway",
    serviceVersion: VERSION,
    remoteSampling: "ignore",
  });
  const gateway = await startGateway({
    ...config,
    controlPlane: {
      address: config.controlPlane.target.address,
      tls: config.controlPlane.target.tls ? { caFile: config.controlPlane.caFile } : undefined,
      token: config.controlPlane.token,
    },
    audit: {
      ...config.audit,
      transport: createQueueTransport({ url: config.redisUrl, prefix: config.audit.queuePrefix }),
    },
    version: VERSION,
    logger,
    tracer: tracing.tracer,
  });
  logger.info(
    { url: gateway.url, tunnel: gateway.tunnelAddress, ops: gateway.opsUrl, tracing: tracing.tracer !== undefined },
    "gateway listening",
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    // SIGTERM comes from an orchestrator whose load balancer needs a moment
    // to see /readyz fail; SIGINT is someone at a terminal, who wants it now.
    const delayMs = signal === "SIGTERM" ? config.shutdownDelayMs : 0;
    logger.info({ signal, delayMs }, "shutting down: finishing in-flight requests");
    void gateway
      .close(30_000, { delayMs })
      // The last requests' spans leave before the process does.
      .then(() => tracing.shutdown())
      .catch((error: unknown) => logger.warn({ err: error }, "could not export the last spans"))
      .then(() => process.exit(0));
    setTimeout(() => process.exit(1), delayMs + 35_000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway failed to start: ${error instanceof ConfigError ? error.message : String(error)}\n`);
  if (!(error instanceof ConfigError) && error instanceof Error && error.stack)
    process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
