// `npm start` as a user runs it: the built launcher as a child process with
// no configuration but a data directory and ports of its own, called with
// the real OpenAI client, stopped with Ctrl-C (SIGINT), then started again
// on the same data. Needs a build first (`npx turbo run build`).
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";

const LAUNCHER = fileURLToPath(new URL("../dist/main.js", import.meta.url));
/** initdb alone takes seconds on a busy machine; a hang still fails well within Jest's budget. */
const BANNER_TIMEOUT_MS = 90_000;
const EXIT_TIMEOUT_MS = 15_000;

interface Launched {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: { stdout: string; stderr: string };
  banner: { text: string; gatewayUrl: string; apiKey: string; models: string[] };
}

const launched: Launched[] = [];
let dataDir: string;
let postgresPort: number;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "modelgate-quickstart-"));
  // mkdtemp makes it 0700; as root, Postgres runs as the `postgres` user,
  // who must be able to enter it (the launcher refuses a private folder).
  await chmod(dataDir, 0o755);
  postgresPort = await freePort();
});

afterAll(async () => {
  // Only after a failed assertion is anything left running.
  for (const { child } of launched) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  const pid = await postmasterPid();
  if (pid !== undefined && isAlive(pid)) process.kill(pid, "SIGINT");
  await rm(dataDir, { recursive: true, force: true });
});

let firstRunKey: string;

test("starts with no configuration, answers the OpenAI client through the demo runtime, stops on SIGINT", async () => {
  const run = await launch();
  expect(run.banner.models).toEqual(["demo/demo-chat", "demo/demo-embed"]);
  expect(run.banner.text).toContain("THIS IS A DEMO");
  expect(run.banner.text).toMatch(/embedded Postgres on 127\.0\.0\.1:\d+, created in /);

  const client = new OpenAI({ baseURL: `${run.banner.gatewayUrl}/v1`, apiKey: run.banner.apiKey, maxRetries: 0 });
  const completion = await client.chat.completions.create({
    model: "demo/demo-chat",
    messages: [{ role: "user", content: "Hello" }],
  });
  expect(completion.choices[0]?.message.content).toContain("[demo runtime]");
  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  expect(models).toContain("demo/demo-chat");

  // Probes and metrics on the loopback ops listeners the banner names, each ready.
  const ops = [...run.banner.text.matchAll(/^ {2}(Gateway|Control plane|Agent) +(http:\/\/127\.0\.0\.1:\d+)$/gm)];
  expect(ops.map((match) => match[1])).toEqual(["Gateway", "Control plane", "Agent"]);
  for (const [, , url] of ops) {
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^modelgate_/m);
  }

  // The console the banner names is served, and its admin token signs in to it.
  const consoleUrl = run.banner.text.match(/^ {2}(http:\/\/\S+\/console\/)$/m)?.[1];
  expect(consoleUrl).toBeDefined();
  const page = await fetch(consoleUrl as string);
  expect(page.status).toBe(200);
  expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
  expect(await page.text()).toContain('<div id="root"></div>');
  const adminToken = run.banner.text.match(/Admin token +(\S+)/)?.[1];
  const signIn = await fetch(new URL("/console/auth/token", consoleUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: adminToken }),
  });
  expect(signIn.status).toBe(204);

  const postgresPid = await postmasterPid();
  expect(postgresPid).toBeDefined();
  await stopWithSigint(run);
  // Postgres stopped with it: its lock file is removed and the process is gone.
  expect(await postmasterPid()).toBeUndefined();
  expect(isAlive(postgresPid as number)).toBe(false);
  firstRunKey = run.banner.apiKey;
}, 120_000);

test("starts again on the same data, and the key printed by the first run no longer works", async () => {
  expect(firstRunKey).toBeDefined();
  const run = await launch();
  expect(run.banner.text).toMatch(/embedded Postgres on 127\.0\.0\.1:\d+, data in /);
  expect(run.banner.apiKey).not.toBe(firstRunKey);

  const client = new OpenAI({ baseURL: `${run.banner.gatewayUrl}/v1`, apiKey: run.banner.apiKey, maxRetries: 0 });
  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  expect(models).toEqual(["demo/demo-chat", "demo/demo-embed"]);

  const stale = new OpenAI({ baseURL: `${run.banner.gatewayUrl}/v1`, apiKey: firstRunKey, maxRetries: 0 });
  await expect(
    stale.chat.completions.create({ model: "demo/demo-chat", messages: [{ role: "user", content: "Hello" }] }),
  ).rejects.toMatchObject({ status: 401 });

  await stopWithSigint(run);
  expect(await postmasterPid()).toBeUndefined();
}, 120_000);

async function launch(): Promise<Launched> {
  const child = spawn(process.execPath, [LAUNCHER], {
    // Nothing from the test's environment but PATH (the launcher runs `id`
    // and initdb): the defaults are what is under test.
    env: {
      PATH: process.env.PATH,
      MODELGATE_DATA_DIR: dataDir,
      MODELGATE_EMBEDDED_POSTGRES_PORT: String(postgresPort),
      // Any free port, so the test runs beside a real `npm start` and other tests.
      MODELGATE_GATEWAY_PORT: "0",
      MODELGATE_CONTROL_PLANE_PORT: "0",
      MODELGATE_CONTROL_PLANE_GRPC_PORT: "0",
      MODELGATE_TUNNEL_PORT: "0",
      MODELGATE_GATEWAY_OPS_PORT: "0",
      MODELGATE_CONTROL_PLANE_OPS_PORT: "0",
      MODELGATE_AGENT_OPS_PORT: "0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = { stdout: "", stderr: "" };
  child.stdout?.on("data", (chunk) => {
    output.stdout += String(chunk);
  });
  child.stderr?.on("data", (chunk) => {
    output.stderr += String(chunk);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const run: Launched = { child, exited, output, banner: { text: "", gatewayUrl: "", apiKey: "", models: [] } };
  launched.push(run);

  const deadline = Date.now() + BANNER_TIMEOUT_MS;
  while (!output.stdout.includes("Press Ctrl-C to stop.")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`no banner (exit code ${child.exitCode}); stderr:\n${output.stderr}\nstdout:\n${output.stdout}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const text = output.stdout;
  run.banner = {
    text,
    gatewayUrl: field(text, /Gateway URL\s+(http:\/\/\S+)/),
    apiKey: field(text, /API key\s+(mg_\S+)/),
    models: field(text, /Models\s+(.+)/).split(", "),
  };
  return run;
}

async function stopWithSigint(run: Launched): Promise<void> {
  run.child.kill("SIGINT");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no exit within ${EXIT_TIMEOUT_MS} ms; stderr:\n${run.output.stderr}`)),
      EXIT_TIMEOUT_MS,
    );
  });
  const exit = await Promise.race([run.exited, late]).finally(() => clearTimeout(timer));
  expect({ ...exit, stderr: run.output.stderr }).toEqual({
    code: 0,
    signal: null,
    stderr: expect.not.stringMatching(/"level":"(warn|error|fatal)"/),
  });
}

function field(text: string, pattern: RegExp): string {
  const value = pattern.exec(text)?.[1];
  if (value === undefined) throw new Error(`the banner has no match for ${pattern}:\n${text}`);
  return value.trim();
}

/** The running server's pid from its lock file, or undefined when there is none. */
async function postmasterPid(): Promise<number | undefined> {
  const file = path.join(dataDir, "postgres", "postmaster.pid");
  const exists = await stat(file).then(
    () => true,
    () => false,
  );
  if (!exists) return undefined;
  return Number((await readFile(file, "utf8")).split("\n")[0]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}
