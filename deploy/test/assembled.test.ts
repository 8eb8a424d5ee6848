// The file set the container image ships (deploy/assemble.mjs: each
// workspace's package.json and dist/, the entrypoint, no sources and nothing
// else of the checkout), run as plain processes: every app starts from it and
// a request goes through, with the same checks as the image's smoke test
// (scripts/image-smoke.sh), which needs podman. Dependencies are linked from
// the checkout here; the image has its own pruned copy.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { assemble } from "../assemble.mjs";
import { type Launcher, type RunningApp, runSmoke } from "../smoke/run.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Files under `dir`, relative to it, following no links. */
function filesUnder(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(prefix, entry.name);
    if (entry.isDirectory()) return filesUnder(path.join(dir, entry.name), relative);
    return [relative];
  });
}

function processLauncher(appRoot: string, cwd: string): Launcher {
  const environments = new Map<RunningApp, Record<string, string>>();
  const spawnApp = (app: string, env: Record<string, string>, script = "bin/modelgate.mjs") => {
    const child = spawn(process.execPath, [path.join(appRoot, script), app], {
      cwd,
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (chunk) => (output += chunk));
    child.stderr?.on("data", (chunk) => (output += chunk));
    return { child, output: () => output };
  };
  const exitCode = (child: ChildProcess) =>
    child.exitCode ?? (child.signalCode === null ? undefined : `${child.signalCode}`);
  return {
    async start(app, env): Promise<RunningApp> {
      const { child, output } = spawnApp(app, env);
      const exited = once(child, "exit");
      const running: RunningApp = {
        app,
        async stop() {
          if (exitCode(child) === undefined) child.kill("SIGTERM");
          await exited;
          return child.exitCode;
        },
        async kill() {
          if (exitCode(child) === undefined) child.kill("SIGKILL");
          await exited;
          return child.exitCode;
        },
        logs: async () => output(),
        exited: async () => {
          const code = exitCode(child);
          return code === undefined ? undefined : Number(code) || -1;
        },
      };
      environments.set(running, env);
      return running;
    },
    async run(app, env) {
      const { child, output } = spawnApp(app, env);
      const [code] = (await once(child, "exit")) as [number | null];
      return { code, output: output() };
    },
    // The image's health check with the app's environment; the app is named,
    // as the host's process list holds other apps than this test's.
    async healthcheck(running) {
      const { child, output } = spawnApp(running.app, environments.get(running) ?? {}, "bin/healthcheck.mjs");
      const [code] = (await once(child, "exit")) as [number | null];
      if (code !== 0) throw new Error(`the health check of ${running.app} failed (${code}): ${output()}`);
    },
  };
}

describe("the image's file set (deploy/assemble.mjs)", () => {
  let out: string;
  let cwd: string;

  beforeAll(async () => {
    out = await mkdtemp(path.join(tmpdir(), "mg-assembled-"));
    cwd = await mkdtemp(path.join(tmpdir(), "mg-assembled-cwd-"));
    assemble(out, { linkDependencies: true });
  });
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
    await rm(cwd, { recursive: true, force: true });
  });

  it("holds each shipped workspace's manifest and build output, and what they read at run time", () => {
    const files = ["apps", "packages", "bin"].flatMap((dir) => filesUnder(path.join(out, dir), dir));
    const outsideDist = files.filter(
      (file) =>
        !file.startsWith("bin/") && !/^(apps|packages)\/[^/]+\/(package\.json$|dist\/|node_modules\/)/.test(file),
    );
    expect(outsideDist).toEqual([]);
    expect(files.some((file) => file.startsWith("apps/quickstart/"))).toBe(false);

    // The build's copies of proto/ and prisma/migrations are those folders, file for file.
    const same = (from: string, to: string, extensions: string[]) => {
      const expected = filesUnder(path.join(ROOT, from)).filter((file) => extensions.some((e) => file.endsWith(e)));
      expect(expected.length).toBeGreaterThan(0);
      expect(filesUnder(path.join(out, to)).sort()).toEqual(expected.sort());
      for (const file of expected) {
        expect(readFileSync(path.join(out, to, file))).toEqual(readFileSync(path.join(ROOT, from, file)));
      }
    };
    same("proto", "packages/protocol/dist/proto", [".proto"]);
    same("prisma/migrations", "packages/db/dist/migrations", [".sql", ".toml"]);

    const manifest = JSON.parse(readFileSync(path.join(out, "apps/gateway/package.json"), "utf8"));
    expect(manifest.devDependencies).toBeUndefined();
    expect(manifest.scripts).toBeUndefined();
    expect(statSync(path.join(out, "bin/modelgate.mjs")).isFile()).toBe(true);
  });

  it("starts every app: migrate, control plane, demo runtime, gateway, agent; a request goes through; SIGTERM stops each with 0", async () => {
    const { content } = await runSmoke({
      launcher: processLauncher(out, cwd),
      databaseUrl: process.env.DATABASE_URL?.trim() || "postgresql://postgres@127.0.0.1:5432/postgres",
      redisUrl: process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379",
    });
    expect(content).toContain("modelgate demo runtime");
  }, 180_000);
});
