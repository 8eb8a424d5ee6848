#!/usr/bin/env node
// Assembles what the container image ships, from a built checkout:
//   node deploy/assemble.mjs <out> [--link-dependencies]
//
// <out> becomes the image's /app:
//   package.json, package-lock.json   the workspace list, without scripts or dev dependencies
//   <workspace>/package.json, dist/    for each shipped app and package (no src/, no tests)
//   bin/                               the entrypoint and health check (deploy/image/)
//   node_modules/                      production dependencies only (`npm prune --omit=dev`)
//
// Nothing else of the repository goes along, so an app that still read a
// file from the checkout (proto/, prisma/) fails here and in the image's
// smoke test instead of in production.
//
// --link-dependencies (tests): node_modules/ holds symlinks into the
// checkout's dependencies instead of a pruned copy, and the workspace
// packages link to the copies in <out>, so the assembled apps run without
// copying hundreds of megabytes. The image always copies and prunes.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

/** Workspaces the image leaves out, and why. */
export const EXCLUDED_WORKSPACES = {
  "apps/quickstart": "`npm start` only: it brings an embedded Postgres and keeps its data in the checkout",
  deploy: "tests of the deployment files",
};

const readJson = (file) => JSON.parse(readFileSync(file, "utf8"));
const writeJson = (file, value) => writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);

/** The root manifest's workspaces (`dir/*` patterns or plain folders), as folders relative to the root. */
export function listWorkspaces(root = ROOT) {
  const patterns = readJson(path.join(root, "package.json")).workspaces ?? [];
  const folders = patterns.flatMap((pattern) => {
    if (!pattern.endsWith("/*")) return [pattern];
    const parent = pattern.slice(0, -2);
    return readdirSync(path.join(root, parent), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => `${parent}/${entry.name}`);
  });
  return folders.filter((folder) => existsSync(path.join(root, folder, "package.json"))).sort();
}

/** The manifest as installed: what it needs at run time, nothing to build or test it. */
function shippedManifest(manifest) {
  const { devDependencies: _dev, scripts: _scripts, ...rest } = manifest;
  return rest;
}

export function assemble(out, { linkDependencies = false, root = ROOT } = {}) {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${out} exists and is not empty`);
  const workspaces = listWorkspaces(root).filter((folder) => !Object.hasOwn(EXCLUDED_WORKSPACES, folder));
  const manifests = new Map(workspaces.map((folder) => [folder, readJson(path.join(root, folder, "package.json"))]));
  const shippedNames = new Set([...manifests.values()].map((manifest) => manifest.name));

  for (const [folder, manifest] of manifests) {
    if (!existsSync(path.join(root, folder, "dist"))) {
      throw new Error(`${folder} has no dist/: build first (npm run build)`);
    }
    for (const dependency of Object.keys(manifest.dependencies ?? {})) {
      if (dependency.startsWith("@modelgate/") && !shippedNames.has(dependency)) {
        throw new Error(`${folder} needs ${dependency}, which the image leaves out`);
      }
    }
  }

  mkdirSync(out, { recursive: true });
  const rootManifest = shippedManifest(readJson(path.join(root, "package.json")));
  writeJson(path.join(out, "package.json"), { ...rootManifest, workspaces });
  cpSync(path.join(root, "package-lock.json"), path.join(out, "package-lock.json"));

  for (const [folder, manifest] of manifests) {
    mkdirSync(path.join(out, folder), { recursive: true });
    writeJson(path.join(out, folder, "package.json"), shippedManifest(manifest));
    cpSync(path.join(root, folder, "dist"), path.join(out, folder, "dist"), { recursive: true });
  }
  cpSync(path.join(root, "deploy/image"), path.join(out, "bin"), { recursive: true });

  if (linkDependencies) {
    linkModules(path.join(root, "node_modules"), path.join(out, "node_modules"));
    for (const [folder, manifest] of manifests) {
      const link = path.join(out, "node_modules", manifest.name);
      mkdirSync(path.dirname(link), { recursive: true });
      symlinkSync(path.relative(path.dirname(link), path.join(out, folder)), link);
      const nested = path.join(root, folder, "node_modules");
      if (existsSync(nested)) linkModules(nested, path.join(out, folder, "node_modules"));
    }
    return { workspaces };
  }

  // Keep the workspaces' relative links (node_modules/@modelgate/x -> ../../packages/x) as they are.
  cpSync(path.join(root, "node_modules"), path.join(out, "node_modules"), { recursive: true, verbatimSymlinks: true });
  for (const folder of workspaces) {
    const nested = path.join(root, folder, "node_modules");
    if (existsSync(nested)) {
      cpSync(nested, path.join(out, folder, "node_modules"), { recursive: true, verbatimSymlinks: true });
    }
  }
  // The manifests above list no dev dependencies anywhere, so prune also
  // drops build tools that a runtime package names as an optional peer
  // (prisma and typescript, for @prisma/client), which `--omit=dev` alone keeps.
  execFileSync("npm", ["prune", "--omit=dev", "--no-audit", "--no-fund"], { cwd: out, stdio: "inherit" });
  return { workspaces };
}

/** Symlinks every third-party package of `from` into `to` (a scope folder's packages one by one). */
function linkModules(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from)) {
    if (entry === ".bin" || entry.startsWith(".") || entry === "@modelgate") continue;
    if (entry.startsWith("@")) {
      mkdirSync(path.join(to, entry), { recursive: true });
      for (const scoped of readdirSync(path.join(from, entry))) {
        symlinkSync(path.join(from, entry, scoped), path.join(to, entry, scoped));
      }
    } else {
      symlinkSync(path.join(from, entry), path.join(to, entry));
    }
  }
}

if (import.meta.filename === process.argv[1]) {
  const args = process.argv.slice(2);
  const out = args.find((arg) => !arg.startsWith("--"));
  if (!out) {
    console.error("usage: assemble.mjs <out> [--link-dependencies]");
    process.exit(2);
  }
  const { workspaces } = assemble(path.resolve(out), { linkDependencies: args.includes("--link-dependencies") });
  process.stdout.write(`assembled ${workspaces.join(", ")} into ${out}\n`);
}
