// The real control plane (apps/control-plane/dist/main.js) on a fresh
// database, storing audit records from its own Redis queue, and the real
// `modelgate` process run against it.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";

const CONTROL_PLANE_MAIN = fileURLToPath(new URL("../../control-plane/dist/main.js", import.meta.url));
const CLI = fileURLToPath(new URL("../bin/modelgate.mjs", import.meta.url));
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export interface ControlPlane {
  url: string;
  adminToken: string;
  auditPrefix: string;
  database: TestDatabase;
  close(): Promise<void>;
}

/** `env`: more of the control plane's settings (OIDC sign-in, the CLI's client id). */
export async function startControlPlane(env: Record<string, string> = {}): Promise<ControlPlane> {
  const database = await createTestDatabase();
  const adminToken = `mgadmin_${randomBytes(24).toString("base64url")}`;
  const auditPrefix = `mgtest-cli-${randomBytes(4).toString("hex")}`;
  const child: ChildProcess = spawn(process.execPath, [CONTROL_PLANE_MAIN], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: database.url,
      MODELGATE_ADMIN_TOKEN: adminToken,
      MODELGATE_GATEWAY_TOKEN: `mggateway_${randomBytes(24).toString("base64url")}`,
      MODELGATE_CONTROL_PLANE_PORT: "0",
      MODELGATE_CONTROL_PLANE_GRPC_PORT: "0",
      MODELGATE_CONTROL_PLANE_OPS_PORT: "0",
      MODELGATE_REDIS_URL: REDIS_URL,
      MODELGATE_AUDIT_QUEUE_PREFIX: auditPrefix,
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  child.stdout?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  child.stderr?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  const exited = once(child, "exit");
  const deadline = Date.now() + 30_000;
  let url: string | undefined;
  while (url === undefined) {
    if (child.exitCode !== null) throw new Error(`the control plane exited:\n${lines.join("\n")}`);
    if (Date.now() > deadline) throw new Error(`the control plane did not start:\n${lines.join("\n")}`);
    const line = lines.find((candidate) => candidate.includes('"msg":"control plane listening"'));
    if (line) url = (JSON.parse(line) as { url: string }).url;
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    adminToken,
    auditPrefix,
    database,
    async close() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      await database.drop();
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Runs `modelgate args…` with exactly `env` (and PATH), feeding `input` to its standard input. */
export async function cli(args: readonly string[], env: Record<string, string>, input = ""): Promise<CliResult> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += String(chunk);
  });
  child.stderr.on("data", (chunk) => {
    stderr += String(chunk);
  });
  child.stdin.end(input);
  // "close": the process exited and its output was read to the end.
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr, elapsedMs: performance.now() - started };
}
