#!/usr/bin/env node
// The smoke test against the container image, with podman:
//   node deploy/smoke/podman.mjs <image>
// Each app runs as its own container from <image> on the host network (so
// the test's Postgres and Redis on 127.0.0.1 are reachable), with a
// read-only root file system and as the image's user. DATABASE_URL and
// REDIS_URL name the servers (default: the local ones). scripts/image-smoke.sh
// builds the image and calls this.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { runSmoke } from "./run.mjs";

const exec = promisify(execFile);
/** The gateway drains for up to 30 s, then exits; podman kills only after this. */
const STOP_TIMEOUT_S = 45;

async function podman(...args) {
  const { stdout } = await exec("podman", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** podman's answer whatever its exit code: output of a failed command is what we want to show. */
async function podmanOutput(...args) {
  try {
    const { stdout, stderr } = await exec("podman", args, { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    return { code: error.code ?? null, output: `${error.stdout ?? ""}${error.stderr ?? ""}` };
  }
}

/** @returns {import("./run.mjs").Launcher} */
export function podmanLauncher(image) {
  const run = randomBytes(4).toString("hex");
  const common = (env) => [
    "--network=host",
    "--read-only",
    // The image's volume, writable by its user: the gateway's audit spool lives there.
    "--tmpfs=/var/lib/modelgate:rw,mode=0700,U",
    ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
  ];
  return {
    async start(app, env) {
      const name = `mg-smoke-${run}-${app}`;
      await podman("run", "--detach", "--name", name, ...common(env), image, app);
      return {
        app,
        async stop() {
          await podman("stop", "--time", String(STOP_TIMEOUT_S), name);
          const code = Number(await podman("inspect", "--format", "{{.State.ExitCode}}", name));
          await podman("rm", name);
          return code;
        },
        async kill() {
          await podman("rm", "--force", "--time", "0", name);
        },
        async logs() {
          return (await podmanOutput("logs", name)).output;
        },
        async exited() {
          const [running, code] = (
            await podman("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
          ).split(" ");
          return running === "true" ? undefined : Number(code);
        },
      };
    },
    async run(app, env) {
      return podmanOutput("run", "--rm", ...common(env), image, app);
    },
    async healthcheck(running) {
      const name = `mg-smoke-${run}-${running.app}`;
      const { code, output } = await podmanOutput("healthcheck", "run", name);
      if (code !== 0) throw new Error(`the health check of ${running.app} failed (${code}): ${output.trim()}`);
    },
  };
}

if (import.meta.filename === process.argv[1]) {
  const image = process.argv[2];
  if (!image) {
    console.error("usage: podman.mjs <image>");
    process.exit(2);
  }
  const started = Date.now();
  try {
    await runSmoke({
      launcher: podmanLauncher(image),
      databaseUrl: process.env.DATABASE_URL?.trim() || "postgresql://postgres@127.0.0.1:5432/postgres",
      redisUrl: process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379",
      log: (line) => process.stdout.write(`${line} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`),
    });
    process.stdout.write(`smoke: passed in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } catch (error) {
    console.error(`smoke: FAILED: ${error instanceof Error ? error.message : error}`);
    process.exitCode = 1;
  }
}
