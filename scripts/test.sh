#!/usr/bin/env bash
# `npm test`: builds what the process-level tests run, then runs every Jest
# test against real Postgres and Redis, and ends with the line
# "N passed, N failed" that CI reads. Extra arguments go to Jest
# (e.g. `npm test -- apps/control-plane`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export TURBO_TELEMETRY_DISABLED=1
# Jest runs the tests as native ES modules (see jest.config.js).
export NODE_OPTIONS="--experimental-vm-modules --no-warnings=ExperimentalWarning ${NODE_OPTIONS:-}"

scripts/services.sh check

npx turbo run build --output-logs=errors-only

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
npx jest --json --outputFile="$results" "$@" || status=$?

node -e '
  const fs = require("node:fs");
  const text = fs.readFileSync(process.argv[1], "utf8");
  if (!text) { console.log("0 passed, 1 failed"); process.exit(0); }
  const r = JSON.parse(text);
  // A suite that failed to load has no failed tests of its own; count it.
  const brokenSuites = r.testResults.filter((s) => s.status === "failed" && s.assertionResults.length === 0).length;
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + brokenSuites} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results"
exit "$status"
