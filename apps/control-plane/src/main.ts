// Composition root of the control plane: reads configuration, builds the
// database client, logger and authenticator, applies migrations, and listens.
import { once } from "node:events";
import { ConfigError, createLogger, generateSecret } from "@modelgate/core";
import { createDatabaseClient, ensureDatabaseExists, migrate } from "@modelgate/db";
import { createApp } from "./app.js";
import { loadConfig, redactConfig } from "./config.js";
import { adminTokenAuthenticator } from "./http/auth.js";
import { VERSION } from "./version.js";

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ name: "control-plane", level: config.logLevel });
  logger.info({ config: redactConfig(config) }, "starting control plane");

  let adminToken = config.adminToken;
  if (!adminToken) {
    // Dev mode only (config refuses this otherwise). Printed on stderr once,
    // outside the JSON log, so log shippers never receive it.
    adminToken = generateSecret("mgadmin_");
    process.stderr.write(`\n  dev mode: generated admin token for this run\n  MODELGATE_ADMIN_TOKEN=${adminToken}\n\n`);
  }

  if (config.dev && (await ensureDatabaseExists(config.databaseUrl))) {
    logger.info("dev mode: created the database");
  }
  if (config.migrateOnStart) {
    const result = await migrate({ databaseUrl: config.databaseUrl });
    logger.info({ applied: result.applied }, "database migrations up to date");
  }

  const db = createDatabaseClient({ databaseUrl: config.databaseUrl, maxConnections: config.dbPoolSize });
  const app = createApp({ db, logger, authenticator: adminTokenAuthenticator(adminToken), version: VERSION });
  const server = app.listen(config.port, config.host);
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  logger.info({ url: `http://${config.host}:${port}` }, "control plane listening");

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.close(() => {
      void db.$disconnect().finally(() => process.exit(0));
    });
    // Keep-alive connections would hold close() open indefinitely.
    server.closeIdleConnections();
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
