#!/usr/bin/env bash
# A real PostgreSQL for the store's PostgreSQL tests (contrib-store/tests/it/: postgres.rs,
# the contract suites, workers.rs) and the CLI's queue tests: Debian's PostgreSQL 15, a throwaway cluster on a loopback port, owned by the
# `postgres` OS user, data in a temp dir.
#
#   scripts/peer-postgres.sh [start]  install PostgreSQL if needed (apt-get as root or with
#                                     sudo; the major version pinned, 15 = Debian 12's, override
#                                     with EXECUTUS_PG_VERSION; the .deb files cached under
#                                     ~/.cache/executus-postgres/apt), initdb a
#                                     fresh cluster, start it on a free 127.0.0.1 port and print,
#                                     on stdout, the one line
#                                       EXECUTUS_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/peer-postgres.sh stop     stop the cluster this checkout started and delete its data
#
# Progress and notices go to stderr; stdout carries only that line. When PostgreSQL cannot be
# installed or started the script says why and exits 1 (scripts/test.sh then fails under
# CI=true; outside CI the tests print a loud notice that they did not run).
#
# The cluster trusts local connections (it listens on 127.0.0.1 only, and lives only as long
# as the test run). Tests create one database each and drop it when they are done.
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
STATE=$ROOT/target/peer-postgres
VERSION=${EXECUTUS_PG_VERSION:-15}
BIN=/usr/lib/postgresql/$VERSION/bin
# The downloaded packages, kept so that a reinstall (a fresh container with this cache
# mounted, or after an apt-get clean) does not download them again.
CACHE=${EXECUTUS_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/executus-postgres/apt}

note() { echo "peer-postgres: $*" >&2; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    # runuser keeps this script's environment out of the server's; no password, no tty.
    runuser -u postgres -- "$@"
  else
    # Not root: the cluster belongs to whoever runs the tests (initdb refuses only root).
    "$@"
  fi
}

install() {
  if [ -x "$BIN/pg_ctl" ] && [ -x "$BIN/initdb" ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      note "PostgreSQL $VERSION is not installed and installing it needs root or sudo (apt-get install postgresql-$VERSION)"
      return 1
    fi
  fi
  note "installing PostgreSQL $VERSION (apt-get install postgresql-$VERSION; packages cached in $CACHE)"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$CACHE/partial"
  # The package lists only when the pinned package is not known yet (a fresh machine).
  if ! apt-cache policy "postgresql-$VERSION" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq >&2 || note "apt-get update failed; trying the install anyway"
  fi
  # Debian's postgresql-common creates and starts a default cluster on install: we do not use
  # it, and it must not hold port 5432 or run in the background, so it is stopped at once.
  $sudo apt-get install -y -qq --no-install-recommends -o "Dir::Cache::archives=$CACHE" \
    "postgresql-$VERSION" >&2 || { note "apt-get install postgresql-$VERSION failed"; return 1; }
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    $sudo pg_ctlcluster "$VERSION" main stop >/dev/null 2>&1 || true
  fi
  [ -x "$BIN/pg_ctl" ] || { note "the install did not provide $BIN/pg_ctl"; return 1; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres >/dev/null 2>&1; }

start() {
  install || return 1
  if [ -f "$STATE/port" ] && ready "$(cat "$STATE/port")"; then
    note "already running on port $(cat "$STATE/port")"
    echo "EXECUTUS_TEST_PG_URL=postgres://postgres@127.0.0.1:$(cat "$STATE/port")/postgres"
    return 0
  fi
  stop_cluster quiet
  local dir port
  dir=$(mktemp -d /tmp/executus-pg.XXXXXX)
  chmod 755 "$dir"
  chown postgres:postgres "$dir" 2>/dev/null || true
  as_postgres "$BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
    note "initdb failed:"; cat "$dir/initdb.log" >&2; return 1
  }
  for _ in 1 2 3; do
    port=$(free_port)
    # fsync off: a throwaway cluster for tests (durability across power loss is not under
    # test; process kills are, and those need no fsync). Enough connections for three
    # workers, their lease connections and listeners, and the tests' own pools.
    if as_postgres "$BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB" \
      start >/dev/null 2>&1 && ready "$port"; then
      mkdir -p "$STATE"
      echo "$dir" > "$STATE/dir"
      echo "$port" > "$STATE/port"
      note "PostgreSQL $VERSION serving on 127.0.0.1:$port (data in $dir)"
      echo "EXECUTUS_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/postgres"
      return 0
    fi
    as_postgres "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  done
  note "PostgreSQL did not start; its log:"
  tail -20 "$dir/log" >&2 || true
  return 1
}

stop_cluster() {
  [ -f "$STATE/dir" ] || { [ "${1:-}" = quiet ] || note "no cluster started by this checkout"; return 0; }
  local dir
  dir=$(cat "$STATE/dir")
  if [ -d "$dir/data" ]; then
    as_postgres "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
      || as_postgres "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir" "$STATE"
  [ "${1:-}" = quiet ] || note "stopped the cluster and deleted $dir"
}

case "${1:-start}" in
  start) start ;;
  stop) stop_cluster ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
