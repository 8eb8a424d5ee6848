#!/usr/bin/env bash
# `npm test`: every workspace's Jest tests through turbo (each after its own
# build, which the process-level tests run), against real Postgres and Redis.
# Ends with the line "N passed, N failed" that CI reads, summed over all
# workspaces. Extra arguments go to turbo, e.g.
#   npm test -- --filter=@modelgate/control-plane
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export TURBO_TELEMETRY_DISABLED=1
# Jest runs the tests as native ES modules (see jest.config.js).
export NODE_OPTIONS="--experimental-vm-modules --no-warnings=ExperimentalWarning ${NODE_OPTIONS:-}"

scripts/services.sh check

workspaces=(packages/* apps/* deploy)
for workspace in "${workspaces[@]}"; do rm -f "$workspace/.jest-results.json"; done

status=0
npx turbo run test --continue --output-logs=full "$@" || status=$?

node -e '
  const fs = require("node:fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const workspace of process.argv.slice(1)) {
    const file = `${workspace}/.jest-results.json`;
    if (!fs.existsSync(file)) continue;
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    // A suite that failed to load has no failed tests of its own; count it.
    const brokenSuites = r.testResults.filter((s) => s.status === "failed" && s.assertionResults.length === 0).length;
    passed += r.numPassedTests;
    failed += r.numFailedTests + brokenSuites;
    skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "${workspaces[@]}"
if [ "$status" -ne 0 ]; then
  echo "test: a workspace failed (see above)" >&2
fi
exit "$status"
