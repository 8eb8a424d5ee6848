// Composition root of the control plane process: reads configuration,
// prepares the database, starts the servers and handles signals.
import { ConfigError, createLogger, generateSecret } from "@modelgate/core";
import { ensureDatabaseExists, migrate } from "@modelgate/db";
import { loadConfig, redactConfig } from "./config.js";
import { startControlPlane } from "./server.js";
import { VERSION } from "./version.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ name: "control-plane", level: config.logLevel });
  logger.info({ config: redactConfig(config) }, "starting control plane");

  // Dev mode only (config refuses this otherwise). Printed on stderr once,
  // outside the JSON log, so log shippers never receive them.
  let { adminToken, gatewayToken } = config;
  if (!adminToken && config.dev) {
    adminToken = generateSecret("mgadmin_");
    process.stderr.write(`\n  dev mode: generated admin token for this run\n  MODELGATE_ADMIN_TOKEN=${adminToken}\n`);
  }
  if (!gatewayToken) {
    gatewayToken = generateSecret("mggateway_");
    process.stderr.write(`  dev mode: generated gateway token\n  MODELGATE_GATEWAY_TOKEN=${gatewayToken}\n\n`);
  }

  if (config.dev && (await ensureDatabaseExists(config.databaseUrl))) {
    logger.info("dev mode: created the database");
  }
  if (config.migrateOnStart) {
    const result = await migrate({ databaseUrl: config.databaseUrl });
    logger.info({ applied: result.applied }, "database migrations up to date");
  }

  const controlPlane = await startControlPlane({ ...config, adminToken, gatewayToken, version: VERSION, logger });
  logger.info(
    { url: controlPlane.url, grpc: controlPlane.grpcAddress, ops: controlPlane.opsUrl },
    "control plane listening",
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    void controlPlane.close().then(() => process.exit(0));
    setTimeout(() => process.exit(1), 10_000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `control plane failed to start: ${error instanceof ConfigError ? error.message : String(error)}\n`,
  );
  if (!(error instanceof ConfigError) && error instanceof Error && error.stack)
    process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
