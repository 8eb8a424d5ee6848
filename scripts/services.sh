#!/usr/bin/env bash
# The services the tests talk to: PostgreSQL and Redis on 127.0.0.1.
#   scripts/services.sh check    fail with a hint when one is not answering
#   scripts/services.sh start    start whichever is not answering, installing
#                                it from Debian's packages when it is missing
# DATABASE_URL / REDIS_URL point the tests elsewhere; then nothing is started.
set -euo pipefail
mode=${1:-check}

postgres_up() {
  if [ -n "${DATABASE_URL:-}" ]; then
    pg_isready -q -d "$DATABASE_URL" 2>/dev/null
  else
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null
  fi
}
redis_up() {
  if command -v redis-cli >/dev/null; then
    [ "$(redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379}" ping 2>/dev/null)" = "PONG" ]
  else
    # Without redis-cli, speak the protocol directly.
    exec 3<>/dev/tcp/127.0.0.1/6379 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    local reply
    read -r -t 2 reply <&3 || true
    exec 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
  fi
}

wait_for() {
  local name=$1 check=$2
  for _ in $(seq 1 50); do
    if $check; then return 0; fi
    sleep 0.2
  done
  echo "services: $name did not come up" >&2
  return 1
}

apt_updated=false
apt_install() {
  if [ "$apt_updated" = false ]; then
    apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "services: installing PostgreSQL" >&2
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Tests connect as postgres over TCP without a password, as on the project's machines.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL postgres_up
}

start_redis() {
  if ! command -v redis-server >/dev/null; then
    echo "services: installing Redis" >&2
    apt_install redis-server
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis redis_up
}

case "$mode" in
  check)
    missing=()
    postgres_up || missing+=("PostgreSQL on ${DATABASE_URL:-127.0.0.1:5432}")
    redis_up || missing+=("Redis on ${REDIS_URL:-127.0.0.1:6379}")
    if [ ${#missing[@]} -gt 0 ]; then
      printf 'services: not answering: %s\n' "${missing[@]}" >&2
      echo "services: run 'scripts/services.sh start' (as root) or set DATABASE_URL / REDIS_URL" >&2
      exit 1
    fi
    ;;
  start)
    # The process-level tests drive the API with curl, as the README does.
    command -v curl >/dev/null || apt_install curl
    if [ -n "${DATABASE_URL:-}" ] || postgres_up; then :; else start_postgres; fi
    if [ -n "${REDIS_URL:-}" ] || redis_up; then :; else start_redis; fi
    ;;
  *)
    echo "usage: scripts/services.sh check|start" >&2
    exit 2
    ;;
esac
