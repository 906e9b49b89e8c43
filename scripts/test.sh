#!/usr/bin/env bash
# Run the whole test suite against a real PostgreSQL.
#
# Uses PALISADE_TEST_DATABASE_URL when set, else the server on
# 127.0.0.1:5432 (user postgres, trust auth). When neither answers, it
# starts a throwaway cluster from the installed PostgreSQL binaries in a
# temporary directory, runs the tests against it, and removes it.
# Each test creates (and drops) its own database on that server.
#
# The z4j interop test (tests/interop_z4j.rs) runs the real PyPI agents: it
# needs Redis on 127.0.0.1:6379 (started here with redis-server when nothing
# answers) and the pinned virtualenv built by scripts/interop-venv.sh.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

cleanup() { :; }
trap 'cleanup' EXIT

if [ -z "${PALISADE_TEST_DATABASE_URL:-}" ]; then
  default_url="postgres://postgres@127.0.0.1:5432/postgres"
  if PGCONNECT_TIMEOUT=3 answers "$default_url"; then
    export PALISADE_TEST_DATABASE_URL="$default_url"
  else
    bindir=""
    if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
      bindir="$(dirname "$(command -v initdb)")"
    else
      bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
      echo "no PostgreSQL answers on 127.0.0.1:5432 and no server binaries were found;" >&2
      echo "install the Debian package 'postgresql' or set PALISADE_TEST_DATABASE_URL" >&2
      exit 2
    fi
    tmp="$(mktemp -d /tmp/palisade-testpg.XXXXXX)"
    port="${PALISADE_TEST_PG_PORT:-55432}"
    run=()
    if [ "$(id -u)" = "0" ]; then
      # PostgreSQL refuses to run as root; use the postgres system user.
      chown postgres "$tmp"
      run=(runuser -u postgres --)
    fi
    echo "starting a throwaway PostgreSQL in $tmp on 127.0.0.1:$port" >&2
    "${run[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$tmp/initdb.log" 2>&1
    "${run[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" -w -t 60 \
      -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off" start >/dev/null
    cleanup() {
      "${run[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m fast stop >/dev/null 2>&1 || true
      rm -rf "$tmp"
    }
    export PALISADE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  fi
fi

redis_answers() {
  (
    exec 3<>/dev/tcp/127.0.0.1/6379 || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ "$reply" == "+PONG"* ]]
  ) 2>/dev/null
}
if ! redis_answers; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "no Redis on 127.0.0.1:6379; starting redis-server" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
  fi
  if ! redis_answers; then
    echo "no Redis answers on 127.0.0.1:6379 and redis-server could not start it;" >&2
    echo "install the Debian package 'redis-server'" >&2
    exit 2
  fi
fi
PALISADE_INTEROP_VENV="$(./scripts/interop-venv.sh)"
export PALISADE_INTEROP_VENV

echo "tests use $PALISADE_TEST_DATABASE_URL" >&2
cargo test --workspace --all-targets "$@"
