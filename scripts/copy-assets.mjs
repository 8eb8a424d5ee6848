#!/usr/bin/env node
// Copies the files a package reads at run time into its build output:
//   node ../../scripts/copy-assets.mjs <from> <to> [extension...]
// so that `dist/` works without the repository around it (a container image
// ships only each workspace's package.json and dist/). The target is
// replaced, never merged: a file removed from the source must not live on in
// dist. With extensions, only files ending in one of them are copied.
import { cpSync, rmSync, statSync } from "node:fs";

const [from, to, ...extensions] = process.argv.slice(2);
if (!from || !to) {
  console.error("usage: copy-assets.mjs <from> <to> [extension...]");
  process.exit(2);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, {
  recursive: true,
  filter: (source) =>
    extensions.length === 0 || statSync(source).isDirectory() || extensions.some((e) => source.endsWith(e)),
});
