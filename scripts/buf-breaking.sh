#!/usr/bin/env bash
# buf breaking for proto/ against a baseline, which is, in this order:
#   1. BUF_BREAKING_AGAINST, any git ref (to check against something else, or
#      to accept a deliberate break before a release by naming the commit
#      that made it);
#   2. the newest release tag (v*) that HEAD contains: what deployed agents,
#      gateways and control planes speak;
#   3. before the first release, the fork point from main (origin/main, else
#      main): a branch must not break what main speaks, since agents and
#      gateways built from either meet during a rollout. On main itself that
#      fork point is HEAD, so the parent commit is used: the newest commit
#      and uncommitted changes are checked.
# The baseline's proto/ is exported with git archive (buf's own .git input
# cannot read a linked worktree) and checked with this tree's buf.yaml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! git rev-parse --verify --quiet HEAD >/dev/null; then
  echo "buf-breaking: not a git checkout with commits; nothing to compare proto/ against" >&2
  exit 1
fi

if [ -n "${BUF_BREAKING_AGAINST:-}" ]; then
  against=$BUF_BREAKING_AGAINST
  why="BUF_BREAKING_AGAINST"
elif tag=$(git describe --tags --abbrev=0 --match 'v*' HEAD 2>/dev/null); then
  against=$tag
  why="the newest release tag"
else
  main=""
  for candidate in origin/main main; do
    if git rev-parse --verify --quiet "$candidate^{commit}" >/dev/null; then
      main=$candidate
      break
    fi
  done
  if [ -z "$main" ]; then
    echo "buf-breaking: no v* tag and no main branch to compare proto/ against" >&2
    exit 1
  fi
  against=$(git merge-base HEAD "$main") || {
    echo "buf-breaking: HEAD and $main have no common commit here (a shallow clone?); fetch more history or set BUF_BREAKING_AGAINST" >&2
    exit 1
  }
  why="no v* tag yet: the fork point from $main"
  if [ "$against" = "$(git rev-parse HEAD)" ]; then
    if ! against=$(git rev-parse --verify --quiet HEAD^); then
      echo "buf-breaking: proto/ has no earlier commit to compare against (no v* tag, first commit)"
      exit 0
    fi
    why="no v* tag yet, and HEAD is on $main: the parent commit"
  fi
fi

commit=$(git rev-parse --verify --quiet "$against^{commit}") || {
  echo "buf-breaking: $against is not a commit" >&2
  exit 1
}
if [ -z "$(git ls-tree -d "$commit" proto)" ]; then
  echo "buf-breaking: $against has no proto/; nothing to compare against"
  exit 0
fi

baseline=$(mktemp -d)
trap 'rm -rf "$baseline"' EXIT
git archive "$commit" proto | tar -x -C "$baseline"
cp buf.yaml "$baseline/"
echo "buf-breaking: proto/ against $against (${commit:0:12}; $why)"
buf breaking --against "$baseline"
