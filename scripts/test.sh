#!/usr/bin/env bash
# `npm test`: every workspace's Jest tests through turbo (each after its own
# build, which the process-level tests run), against real Postgres and Redis.
# Ends with the line "N passed, N failed" that CI reads, summed over all
# workspaces. Arguments narrow the run:
#   npm test -- apps/control-plane                       one workspace
#   npm test -- packages/identity/test/claims.test.ts    one test file (or several,
#                                                        all in one workspace)
#   npm test -- --filter=@modelgate/control-plane        any other argument goes to turbo
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export TURBO_TELEMETRY_DISABLED=1
# Jest runs the tests as native ES modules (see jest.config.js).
export NODE_OPTIONS="--experimental-vm-modules --no-warnings=ExperimentalWarning ${NODE_OPTIONS:-}"

scripts/services.sh check

workspaces=(packages/* apps/* deploy)
for workspace in "${workspaces[@]}"; do rm -f "$workspace/.jest-results.json"; done

# A path becomes a turbo filter for the workspace holding it; a path below the
# workspace's folder is also handed to that workspace's Jest as a test path
# pattern (relative to the workspace, as Jest runs there).
turbo_args=()
test_files=()
files_workspace=""
expect_value=false
for arg in "$@"; do
  if ! $expect_value && [[ $arg == */* && $arg != -* ]] && [ ! -e "$arg" ]; then
    echo "test: no such file or folder: $arg" >&2
    exit 2
  fi
  if $expect_value || [[ $arg == -* ]] || [ ! -e "$arg" ]; then
    turbo_args+=("$arg")
    expect_value=false
    [[ $arg == --filter || $arg == -F ]] && expect_value=true
    continue
  fi
  relative=$(realpath --relative-to="$root" "$arg")
  workspace=""
  for candidate in "${workspaces[@]}"; do
    if [[ $relative == "$candidate" || $relative == "$candidate"/* ]]; then workspace=$candidate; fi
  done
  if [ -z "$workspace" ]; then
    echo "test: $arg is not inside a workspace (${workspaces[*]})" >&2
    exit 2
  fi
  turbo_args+=("--filter=./$workspace")
  if [ "$relative" != "$workspace" ]; then
    if [ -n "$files_workspace" ] && [ "$files_workspace" != "$workspace" ]; then
      echo "test: test files from several workspaces ($files_workspace, $workspace); run them one workspace at a time" >&2
      exit 2
    fi
    files_workspace=$workspace
    test_files+=("${relative#"$workspace"/}")
  fi
done
if [ "${#test_files[@]}" -gt 0 ]; then turbo_args+=(-- "${test_files[@]}"); fi

status=0
npx turbo run test --continue --output-logs=full "${turbo_args[@]}" || status=$?

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
