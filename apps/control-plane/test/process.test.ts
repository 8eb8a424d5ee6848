// Runs the built control plane as a real process (`npm test` builds first),
// the way an operator would, and drives it with curl.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { generateSecret } from "@modelgate/core";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";

const MAIN = path.resolve(import.meta.dirname, "../dist/main.js");
const run = promisify(execFile);

interface Started {
  child: ChildProcessWithoutNullStreams;
  url: string;
  ops: string;
  output: () => string;
}

function start(env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr.on("data", (chunk) => {
    output += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 15 s:\n${output}`)), 15_000);
    const check = () => {
      const match =
        /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^}]*"ops":"(http:\/\/127\.0\.0\.1:\d+)"[^}]*"msg":"control plane listening"/.exec(
          output,
        );
      if (match?.[1] && match[2]) {
        clearTimeout(timer);
        resolve({ child, url: match[1], ops: match[2], output: () => output });
      }
    };
    child.stdout.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening:\n${output}`));
    });
  });
}

async function curl(...args: string[]): Promise<{ status: number; body: unknown }> {
  const { stdout } = await run("curl", ["-sS", "-w", "\n%{http_code}", ...args]);
  const lines = stdout.split("\n");
  const status = Number(lines.pop());
  const text = lines.join("\n");
  return { status, body: text ? JSON.parse(text) : undefined };
}

describe("control-plane process", () => {
  let database: TestDatabase;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run the build first (npm test does)`);
    database = await createTestDatabase({ migrated: false });
  });
  afterAll(() => database?.drop());

  it("migrates an empty database at start, serves curl, and exits cleanly on SIGTERM", async () => {
    const adminToken = generateSecret("mgadmin_");
    const started = await start({
      DATABASE_URL: database.url,
      MODELGATE_ADMIN_TOKEN: adminToken,
      MODELGATE_CONTROL_PLANE_PORT: "0",
      MODELGATE_CONTROL_PLANE_GRPC_PORT: "0",
      MODELGATE_CONTROL_PLANE_OPS_PORT: "0",
      MODELGATE_GATEWAY_TOKEN: generateSecret("mggateway_"),
    });
    try {
      expect(started.output()).toContain("20261125220000_init");
      const auth = ["-H", `authorization: Bearer ${adminToken}`, "-H", "content-type: application/json"];
      const created = await curl(
        "-X",
        "POST",
        `${started.url}/api/v1/connections`,
        ...auth,
        "-d",
        '{"name":"llama","protocol":"openai","models":["llama-3.1-8b-instruct"]}',
      );
      expect(created).toMatchObject({ status: 201, body: { name: "llama" } });
      const agent = await curl(
        "-X",
        "POST",
        `${started.url}/api/v1/connections/llama/agents`,
        ...auth,
        "-d",
        '{"name":"gpu-1"}',
      );
      expect(agent).toMatchObject({
        status: 201,
        body: { connection: "llama", token: expect.stringMatching(/^mgagent_/) },
      });
      const key = await curl(
        "-X",
        "POST",
        `${started.url}/api/v1/api-keys`,
        ...auth,
        "-d",
        '{"name":"ci","groups":["ops"]}',
      );
      expect(key).toMatchObject({ status: 201, body: { key: expect.stringMatching(/^mg_/) } });
      const listed = await curl(`${started.url}/api/v1/connections`, ...auth);
      expect(listed).toMatchObject({ status: 200, body: { items: [{ name: "llama" }], nextCursor: null } });
      const refused = await curl(`${started.url}/api/v1/connections`);
      expect(refused).toMatchObject({ status: 401, body: { code: "unauthenticated" } });
      // Readiness on the ops listener the log line names; not on the API port.
      expect(await curl(`${started.ops}/readyz`)).toMatchObject({
        status: 200,
        body: { status: "ready", checks: { database: "ok", migrations: "ok" } },
      });
      expect(await curl(`${started.url}/readyz`)).toMatchObject({ status: 404, body: { code: "not_found" } });

      const exited = new Promise<number | null>((resolve) => started.child.once("exit", resolve));
      started.child.kill("SIGTERM");
      expect(await exited).toBe(0);

      const output = started.output();
      expect(output).not.toContain(adminToken);
      expect(output).not.toContain((agent.body as { token: string }).token);
      expect(output).not.toContain((key.body as { key: string }).key);
    } finally {
      started.child.kill("SIGKILL");
    }
  });

  it("refuses to start without an admin token outside dev mode, saying why", async () => {
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? "", DATABASE_URL: database.url },
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain(
      "MODELGATE_ADMIN_TOKEN: is required (or MODELGATE_ADMIN_TOKEN_FILE) unless MODELGATE_ADMIN_GROUPS",
    );
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
