#!/usr/bin/env bash
# CI smoke run of the load harness against a freshly started Palisade.
#
# Starts `target/release/palisade serve` in dev mode on a temporary data dir
# (embedded PostgreSQL by default; with LOADTEST_PG_URL=postgres://postgres@127.0.0.1:5432
# it creates a fresh database there and drops it afterwards), completes setup
# through the printed /setup?token=… link, then runs
# `palisade-loadtest smoke`: every scenario with tiny numbers (seconds). A
# scenario whose endpoints the server does not serve yet (e.g. /ws/agent
# answering 404) is reported as SKIPPED with the reason; a supported scenario
# that misbehaves fails the run.
#
# Usage: loadtest/smoke.sh            (from anywhere)
# Env:   SMOKE_PORT (default 17710), LOADTEST_PG_URL (optional server URL),
#        SMOKE_OUT (report dir, default loadtest/out/smoke), SMOKE_NO_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
port="${SMOKE_PORT:-17710}"
out="${SMOKE_OUT:-$root/loadtest/out/smoke}"
work="$(mktemp -d /tmp/palisade-loadtest-smoke.XXXXXX)"
# When we run as root, Palisade's embedded PostgreSQL runs as the `postgres`
# user, which must be able to traverse into the data dir (mktemp makes 0700).
chmod 711 "$work"
email="smoke-admin@loadtest.test"
password="Quartz-Meadow-7391-Lantern!"
db=""

if [ -z "${SMOKE_NO_BUILD:-}" ]; then
  cargo build --release -p palisade -p palisade-loadtest
fi

pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [ -n "$db" ]; then psql "$LOADTEST_PG_URL/postgres" -qc "drop database if exists $db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

env_db=()
if [ -n "${LOADTEST_PG_URL:-}" ]; then
  db="palisade_lt_smoke_$$"
  psql "$LOADTEST_PG_URL/postgres" -qc "create database $db" >/dev/null
  env_db=(PALISADE_DATABASE_URL="$LOADTEST_PG_URL/$db")
fi

log="$work/serve.log"
env PALISADE_ENV=dev PALISADE_BIND="127.0.0.1:$port" PALISADE_PUBLIC_URL="http://127.0.0.1:$port" \
  PALISADE_DATA_DIR="$work/data" "${env_db[@]}" "$root/target/release/palisade" serve >"$log" 2>&1 &
pid=$!

ready=""
for _ in $(seq 1 240); do
  if curl -fsS "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then echo "palisade did not become ready"; cat "$log"; exit 1; fi

token="$(grep -o 'setup?token=[A-Za-z0-9_-]*' "$log" | tail -n1 | cut -d= -f2)"
if [ -z "$token" ]; then echo "no /setup?token= link printed"; cat "$log"; exit 1; fi
status="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  -d "{\"token\":\"$token\",\"email\":\"$email\",\"password\":\"$password\"}" \
  "http://127.0.0.1:$port/api/v1/setup/complete")"
case "$status" in
  200|201) ;;
  *) echo "setup completion answered $status"; cat "$log"; exit 1 ;;
esac

rm -rf "$out"
rc=0
LOADTEST_PASSWORD="$password" "$root/target/release/palisade-loadtest" smoke \
  --target palisade --url "http://127.0.0.1:$port" --email "$email" --out "$out" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "loadtest smoke failed (exit $rc); server log tail:"
  tail -n 40 "$log"
  exit "$rc"
fi
echo "loadtest smoke passed; reports in $out"
