// Child processes of the benchmark: each service runs as its own process so
// its CPU time can be read from /proc, logs to its own file, and is stopped
// (TERM, then KILL) when the benchmark ends however it ends.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Kernel clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
export const CLOCK_TICKS = (() => {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU milliseconds a process has used so far, all its threads included. */
export function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may contain spaces;
  // count fields from after it. Field 3 (state) is index 0, so utime (14)
  // and stime (15) are indexes 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/**
 * User + system CPU milliseconds of every process on the machine whose
 * command name is `name` (`postgres`: postmaster, backends, background
 * workers; `redis-server`), as far as /proc lets this user read them.
 * Processes that exited take their CPU with them, so compare readings taken
 * while the same long-lived connections are open (the control plane's pool).
 * Other work on the same servers counts too: read it on a quiet machine.
 */
export function cpuMsOfProcessesNamed(name) {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) !== name) continue;
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
    } catch {
      // Gone between listing and reading.
    }
  }
  return total;
}

/**
 * Busy CPU milliseconds of the whole machine so far, all cores together
 * (/proc/stat: everything but idle and iowait). Compared with what the
 * benchmark's own processes used, it shows other work competing for the cores.
 */
export function machineBusyMs() {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = ticks.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return ((total - ticks[3] - ticks[4]) * 1000) / CLOCK_TICKS;
}

/** The first port of the kernel's ephemeral range (the ports outgoing connections take). */
function ephemeralStart() {
  try {
    const [start] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    return start > 21_000 ? start : 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1, from below the ephemeral
 * range: the benchmark picks every service's port before starting them, and
 * a port from `listen(0)` is ephemeral, so the control plane's outgoing
 * connections (Postgres, Redis) could take it meanwhile (EADDRINUSE).
 */
export async function freePort() {
  const lowest = 20_000;
  const highest = ephemeralStart();
  for (;;) {
    const port = lowest + Math.floor(Math.random() * (highest - lowest));
    // Ports are picked before their services start: never hand one out twice.
    if (handedOut.has(port)) continue;
    const bound = await new Promise((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (bound) {
      handedOut.add(port);
      return port;
    }
  }
}

const handedOut = new Set();

class ServiceExitedError extends Error {
  name = "ServiceExitedError";
}

export class Services {
  #logDir;
  #running = [];
  #stopping = false;
  #onStop = [];

  constructor(logDir) {
    this.#logDir = logDir;
  }

  /**
   * Starts `node [nodeArgs] script` with only PATH and `env`: a developer's
   * own MODELGATE_* variables must not leak into the benchmark's services.
   */
  start(name, script, env, nodeArgs = [], args = []) {
    if (this.#stopping) throw new Error("stopping: no new services");
    const logFile = path.join(this.#logDir, `${name}.log`);
    const log = openSync(logFile, "a");
    // Logs go straight to a file, as a container runtime would take them,
    // so the benchmark process never spends CPU reading them.
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    const service = { name, child, pid: child.pid, logFile, exit: undefined };
    service.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        service.exit = { code, signal };
        resolve(service.exit);
      });
    });
    this.#running.push(service);
    return service;
  }

  /** Throws when a service has exited while it should be running. */
  check() {
    for (const service of this.#running) {
      if (service.exit && !this.#stopping) {
        const { code, signal } = service.exit;
        throw new ServiceExitedError(
          `${service.name} exited (${signal ?? `code ${code}`}); last log lines:\n${tail(service.logFile, 15)}`,
        );
      }
    }
  }

  /** Runs `close` (a client the benchmark holds, such as a queue connection) before the services stop. */
  onStop(close) {
    this.#onStop.push(close);
  }

  /** Stops services in reverse start order: each gets SIGTERM, then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 5_000) {
    this.#stopping = true;
    for (const close of this.#onStop.splice(0)) await Promise.resolve(close()).catch(() => undefined);
    for (const service of [...this.#running].reverse()) {
      if (service.exit) continue;
      service.child.kill("SIGTERM");
      const stopped = await Promise.race([service.exited, sleep(graceMs, false)]);
      if (stopped === false) {
        service.child.kill("SIGKILL");
        await service.exited;
      }
    }
    this.#running = [];
  }

  /** Last resort from a synchronous 'exit' handler: no waiting possible. */
  killAllNow() {
    for (const service of this.#running) if (!service.exit) service.child.kill("SIGKILL");
  }
}

function tail(file, lines) {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Polls `condition` until it is truthy; fails early when a service dies. */
export async function waitFor(condition, { what, services, timeoutMs = 30_000, intervalMs = 100 }) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    services.check();
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const cause = lastError ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await sleep(intervalMs);
  }
}
