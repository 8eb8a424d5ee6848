// Real processes for tests that stop and start them: the built gateway,
// agent and control plane, a Redis and a Postgres of their own on spare
// loopback ports (the shared ones serve every other test file and must
// never be stopped).

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { chown, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { restartablePort } from "./ports.js";
import { waitFor } from "./stack.js";

const run = promisify(execFile);
const GATEWAY_MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const AGENT_MAIN = fileURLToPath(new URL("../../agent/dist/main.js", import.meta.url));
const CONTROL_PLANE_MAIN = fileURLToPath(new URL("../../control-plane/dist/main.js", import.meta.url));

export interface GatewayProcess {
  url: string;
  tunnel: string;
  /** The ops listener: /livez, /readyz, /metrics. */
  ops: string;
  child: ChildProcess;
  lines: string[];
  /** SIGTERM, then waits for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, as the OOM killer does: no shutdown, no flush. Resolves once it is gone. */
  kill(): Promise<void>;
}

/**
 * The built gateway (dist/main.js) as its own process, configured through
 * the environment like in production. It gets an audit spool directory of
 * its own, removed when it stops, unless `env` names one (a test that
 * restarts a gateway on the same spool).
 */
export async function startGatewayProcess(env: Record<string, string>): Promise<GatewayProcess> {
  const ownSpool = env.MODELGATE_AUDIT_SPOOL_DIR ? undefined : await mkdtemp(path.join(tmpdir(), "modelgate-spool-"));
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    env: {
      PATH: process.env.PATH,
      MODELGATE_GATEWAY_PORT: "0",
      MODELGATE_GATEWAY_OPS_PORT: "0",
      MODELGATE_TUNNEL_PORT: "0",
      // SIGTERM shuts down at once unless a test asks for the delay.
      MODELGATE_SHUTDOWN_DELAY_MS: "0",
      LOG_LEVEL: "info",
      ...(ownSpool ? { MODELGATE_AUDIT_SPOOL_DIR: ownSpool } : {}),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  child.stdout?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  child.stderr?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  let listening: { url: string; tunnel: string; ops: string } | undefined;
  await waitFor(
    () => {
      for (const line of lines) {
        if (!line.includes('"gateway listening"')) continue;
        listening = JSON.parse(line);
      }
      if (child.exitCode !== null) throw new Error(`gateway exited: ${lines.join("\n")}`);
      return listening !== undefined;
    },
    { timeoutMs: 15_000, what: "the gateway process to listen" },
  );
  const { url, tunnel, ops } = listening as { url: string; tunnel: string; ops: string };
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const removeOwnSpool = () => (ownSpool ? rm(ownSpool, { recursive: true, force: true }) : undefined);
  return {
    url,
    tunnel,
    ops,
    child,
    lines,
    async stop() {
      if (gone()) return child.exitCode;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = await exited;
      await removeOwnSpool();
      return code as number | null;
    },
    async kill() {
      if (gone()) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
      await removeOwnSpool();
    },
  };
}

/**
 * A port for a service of these tests. Services here are stopped and
 * started again on their port, so it comes from below the ephemeral range
 * (see ports.ts).
 */
export const freePort = restartablePort;

export interface DedicatedRedis {
  url: string;
  /** Stops it the way an operator's restart does (SHUTDOWN: the append-only file is synced). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A Redis of its own, persisting like production Redis for modelgate must
 * (`appendonly yes`); `persist: false` keeps nothing across a restart, as a
 * misconfigured one would.
 */
export async function startDedicatedRedis({ persist = true } = {}): Promise<DedicatedRedis> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), "modelgate-redis-"));
  let child: ChildProcess | undefined;
  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const server = spawn(
      "redis-server",
      [
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
        "--dir",
        dir,
        "--appendonly",
        persist ? "yes" : "no",
        "--save",
        "",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = server;
    let output = "";
    server.stdout?.on("data", (chunk) => {
      output += String(chunk);
    });
    await waitFor(
      () => {
        if (server.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
        return output.includes("Ready to accept connections");
      },
      { timeoutMs: 10_000, what: "the dedicated redis-server" },
    );
  };
  const stop = async () => {
    const server = child;
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, "exit");
    // SIGTERM makes Redis shut down cleanly: it fsyncs the append-only file.
    server.kill("SIGTERM");
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface DedicatedPostgres {
  /** Connection URL of its `postgres` database. */
  url: string;
  /** Fast shutdown: open connections are dropped, new ones refused. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function postgresBin(): Promise<string> {
  const versions = (await readdir("/usr/lib/postgresql")).sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error("no PostgreSQL binaries under /usr/lib/postgresql");
  return path.join("/usr/lib/postgresql", versions[0], "bin");
}

/**
 * A Postgres cluster of its own (initdb in a temporary directory), so a test
 * can stop it. Postgres refuses to run as root; as root it runs as the
 * `postgres` system user, which the Debian package creates.
 */
export async function startDedicatedPostgres(): Promise<DedicatedPostgres> {
  const bin = await postgresBin();
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), "modelgate-pg-"));
  let runAs: { uid?: number; gid?: number } = {};
  if (process.getuid?.() === 0) {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
      run("id", ["-u", "postgres"]),
      run("id", ["-g", "postgres"]),
    ]);
    runAs = { uid: Number(uid.trim()), gid: Number(gid.trim()) };
    await chown(dir, runAs.uid as number, runAs.gid as number);
  }
  const data = path.join(dir, "data");
  const pgctl = (args: string[]) => run(path.join(bin, "pg_ctl"), args, { ...runAs, cwd: dir });
  await run(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], {
    ...runAs,
    cwd: dir,
  });
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async () => {
    await pgctl(["-D", data, "-o", options, "-l", path.join(dir, "log"), "-w", "start"]);
  };
  const stop = async () => {
    await pgctl(["-D", data, "-m", "fast", "-w", "stop"]);
  };
  await start();
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    async close() {
      await stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A built app (dist/main.js) as a process, its output kept line by line. */
interface AppProcess {
  child: ChildProcess;
  lines: string[];
  /** Resolves with [code, signal] once the process has exited. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  readonly running: boolean;
  /** SIGTERM (drain, then exit), and waits for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, as the OOM killer does: no drain, nothing flushed. */
  kill(): Promise<void>;
}

/**
 * Starts `main` with exactly `env` (and PATH) and waits for the log line
 * whose `msg` is `listening`; returns that line's fields with the process.
 */
async function startApp(
  main: string,
  env: Record<string, string>,
  listening: string,
): Promise<{ app: AppProcess; fields: Record<string, unknown> }> {
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  child.stdout?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  child.stderr?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  let fields: Record<string, unknown> | undefined;
  await waitFor(
    () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${path.basename(path.dirname(path.dirname(main)))} exited: ${lines.join("\n")}`);
      }
      const line = lines.find((candidate) => candidate.includes(`"msg":"${listening}"`));
      fields = line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
      return fields !== undefined;
    },
    { timeoutMs: 20_000, what: `"${listening}" from ${main}` },
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  const app: AppProcess = {
    child,
    lines,
    exited,
    get running() {
      return running();
    },
    async stop() {
      if (running()) child.kill("SIGTERM");
      const [code] = await exited;
      return code;
    },
    async kill() {
      if (running()) child.kill("SIGKILL");
      await exited;
    },
  };
  return { app, fields: fields as Record<string, unknown> };
}

export interface AgentProcess extends AppProcess {
  /** The agent's ops listener: /livez, /readyz, /metrics. */
  ops: string;
}

/** The built agent (apps/agent/dist/main.js), configured through `env` like in production. */
export async function startAgentProcess(env: Record<string, string>): Promise<AgentProcess> {
  const { app, fields } = await startApp(
    AGENT_MAIN,
    { MODELGATE_AGENT_OPS_PORT: "0", LOG_LEVEL: "info", ...env },
    "agent ops listening",
  );
  return Object.assign(app, { ops: fields.ops as string });
}

export interface ControlPlaneProcess extends AppProcess {
  url: string;
  /** `host:port` of the gRPC endpoint gateways dial. */
  grpc: string;
  ops: string;
}

/** The built control plane (apps/control-plane/dist/main.js); it migrates its database at start. */
export async function startControlPlaneProcess(env: Record<string, string>): Promise<ControlPlaneProcess> {
  const { app, fields } = await startApp(
    CONTROL_PLANE_MAIN,
    {
      MODELGATE_CONTROL_PLANE_PORT: "0",
      MODELGATE_CONTROL_PLANE_GRPC_PORT: "0",
      MODELGATE_CONTROL_PLANE_OPS_PORT: "0",
      LOG_LEVEL: "info",
      ...env,
    },
    "control plane listening",
  );
  return Object.assign(app, {
    url: fields.url as string,
    grpc: fields.grpc as string,
    ops: fields.ops as string,
  });
}
