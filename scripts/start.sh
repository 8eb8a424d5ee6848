#!/usr/bin/env bash
# `npm start`: builds, then runs all of modelgate in one process tree
# (apps/quickstart): control plane, gateway and one agent on an embedded
# Postgres kept in .data/, serving the demo runtime, or the runtime at
# MODELGATE_RUNTIME_URL. It prints the gateway URL, an API key and examples;
# Ctrl-C stops everything. See apps/quickstart/README.md for the settings, and
# the README for running the apps separately in production.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export TURBO_TELEMETRY_DISABLED=1
npx turbo run build --output-logs=errors-only
exec node apps/quickstart/dist/main.js
