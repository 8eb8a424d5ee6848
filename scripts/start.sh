#!/usr/bin/env bash
# `npm start`: builds, then runs the control plane in dev mode on the local
# Postgres (creating the `modelgate` database and printing an admin token).
# Set MODELGATE_DEV=false and the variables in the README for production.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export TURBO_TELEMETRY_DISABLED=1
npx turbo run build --output-logs=errors-only
MODELGATE_DEV=${MODELGATE_DEV:-true} exec node apps/control-plane/dist/main.js
