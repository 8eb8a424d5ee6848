#!/usr/bin/env bash
# The container image's smoke test (a step of .ci/run):
#   scripts/image-smoke.sh
# builds deploy/Dockerfile with podman on a base image made locally
# (scripts/image-base.sh; no registry needed), then starts migrate, the
# control plane, the demo runtime, the gateway and an agent from it against
# the test Postgres and Redis until a chat completion goes through the gateway,
# and stops them with SIGTERM, each of which must exit 0 (deploy/smoke/).
#
# Installs podman from Debian's packages when it is missing. Where that is
# impossible (not root, no apt-get, no package) it prints why and exits 0:
# the one case it skips. Every other failure fails.
#
# Settings: BASE_IMAGE (use this base instead of building one),
# MODELGATE_IMAGE (the tag to build, default localhost/modelgate:smoke; the
# previous image of that tag is replaced, the last one kept for inspection),
# DATABASE_URL / REDIS_URL (the servers, as for the tests).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
image=${MODELGATE_IMAGE:-localhost/modelgate:smoke}
started=$SECONDS

skip() {
  echo "image smoke: SKIPPED: $*" >&2
  exit 0
}

packages=(podman runc buildah debootstrap)
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" -eq 0 ] || skip "podman is not installed and installing it needs root (apt-get install ${packages[*]})"
  command -v apt-get >/dev/null || skip "podman is not installed and there is no apt-get to install it with"
  echo "image smoke: installing ${packages[*]}" >&2
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null); then
    skip "podman cannot be installed here (apt-get install ${packages[*]} failed)"
  fi
fi

# The engine's settings for this machine and its kind (kept in .tools/):
# runc, because crun refuses kernels with hybrid cgroups; cgroupfs and file
# events, because no systemd runs here; fixed ulimits, because a sandbox may
# not let the runtime raise them to the host's defaults.
conf_dir="$root/.tools/podman"
mkdir -p "$conf_dir"
cat >"$conf_dir/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$conf_dir/containers.conf"
podman info >/dev/null

scripts/services.sh check

phase=$SECONDS
base=${BASE_IMAGE:-$(scripts/image-base.sh)}
echo "image smoke: base $base ($((SECONDS - phase)) s)" >&2

phase=$SECONDS
podman image rm --force "$image" >/dev/null 2>&1 || true
# --format docker keeps HEALTHCHECK (the OCI format has no field for it);
# --layers=false leaves no intermediate images behind on a machine that builds on every run.
podman build --pull=never --format docker --layers=false \
  --build-arg "BASE_IMAGE=$base" -f deploy/Dockerfile -t "$image" . >"$conf_dir/build.log" 2>&1 || {
  tail -n 60 "$conf_dir/build.log" >&2
  echo "image smoke: FAILED: podman build (whole log in $conf_dir/build.log)" >&2
  exit 1
}
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image smoke: built $image, $((size / 1024 / 1024)) MiB ($((SECONDS - phase)) s)" >&2

phase=$SECONDS
scripts/with-node.sh node deploy/smoke/podman.mjs "$image"
echo "image smoke: passed (smoke $((SECONDS - phase)) s, total $((SECONDS - started)) s)" >&2
