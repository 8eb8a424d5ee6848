// The image's HEALTHCHECK: asks the app this container runs whether it is
// ready (apps.mjs says where). One image runs several apps, so the app is found by its
// process (`modelgate.mjs <app>` in some process's command line; always true
// in a container started with the image's entrypoint), or given as the first
// argument. Exit 0: healthy; 1: not.
import { readdirSync, readFileSync } from "node:fs";
import { APPS } from "./apps.mjs";

const TIMEOUT_MS = 2_000;

function runningApp() {
  for (const pid of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(pid) || Number(pid) === process.pid) continue;
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // the process ended while we looked
    }
    const entry = argv.findIndex((arg) => arg.endsWith("/modelgate.mjs"));
    const app = entry === -1 ? undefined : argv[entry + 1];
    if (app !== undefined && Object.hasOwn(APPS, app)) return app;
  }
  return undefined;
}

function fail(message) {
  process.stderr.write(`healthcheck: ${message}\n`);
  process.exit(1);
}

const name = process.argv[2] ?? runningApp();
if (name === undefined || !Object.hasOwn(APPS, name)) fail("no modelgate app runs in this container");
const { health } = APPS[name];
// A one-shot command: its process runs (found above), nothing else to ask.
if (health === undefined) process.exit(0);

const env = (key) => {
  const value = process.env[key]?.trim();
  return value === undefined || value === "" ? undefined : value;
};
const port = env(health.port) ?? health.defaultPort;
if (port === undefined) fail(`${health.port} is not set`);
// A wildcard listen address answers on loopback; a specific one only there.
let host = env(health.host) ?? "127.0.0.1";
if (host === "0.0.0.0") host = "127.0.0.1";
if (host === "::" || host === "[::]") host = "::1";
const url = new URL(`http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}${health.path}`);

try {
  const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  await response.body?.cancel();
  if (!response.ok) fail(`${name}: ${url} answered ${response.status}`);
} catch (error) {
  fail(`${name}: ${url}: ${error.cause?.code ?? error.message}`);
}
