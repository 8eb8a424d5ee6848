// The image's entrypoint: `modelgate <app>` runs one app in this process.
//   docker run modelgate gateway
// The app is imported, not spawned, so the process tini signals is the app
// itself: SIGTERM reaches its handlers directly and it drains as it would
// outside a container.
import { fileURLToPath } from "node:url";
import { APPS, appModuleUrl } from "./apps.mjs";

const name = process.argv[2];

if (name === undefined || !Object.hasOwn(APPS, name)) {
  const width = Math.max(...Object.keys(APPS).map((app) => app.length));
  const usage = [
    "usage: modelgate <app>",
    "",
    ...Object.entries(APPS).map(([app, { summary }]) => `  ${app.padEnd(width)}  ${summary}`),
    "",
    "Each app reads its settings from the environment (see the README and docs/).",
  ].join("\n");
  if (name === "help" || name === "--help") {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  // 64: EX_USAGE. A container started without an app must not look like a clean exit.
  process.stderr.write(
    `${name === undefined ? "modelgate: name the app to run" : `modelgate: unknown app ${JSON.stringify(name)}`}\n\n${usage}\n`,
  );
  process.exit(64);
}

// Apps read only their environment; argv looks as `node <main>` would make
// it. (process.title is left alone: setting it rewrites /proc/<pid>/cmdline,
// where the health check looks for the app.)
const main = appModuleUrl(name);
process.argv.splice(1, 2, fileURLToPath(main));
await import(main.href);
