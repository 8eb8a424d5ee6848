#!/usr/bin/env node
// The `modelgate` command. This file is not built, so that npm links it as
// the package's bin at install time, before the build has made dist/.
try {
  await import("../dist/main.js");
} catch (error) {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/main.js")) {
    process.stderr.write("modelgate: the CLI is not built yet; run `npm run build` in the repository first\n");
    process.exit(1);
  }
  throw error;
}
