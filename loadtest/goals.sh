#!/usr/bin/env bash
# Palisade's own targets, one run: every number the issues ask for that the
# side-by-side table (compare.sh) does not already give, on a fresh database
# of the local PostgreSQL.
#
#   start to ready (fresh database; and again on a migrated one), idle RSS,
#   logins/s at c=1 and c=4 against the Argon2id cost, GET /auth/me at c=64,
#   the task list (50 of SEED_TASKS rows) at c=16 and c=64, audited
#   mutations at c=1/16/64/256, events committed/s (closed model, 1 and 10
#   events per frame), ingest lag at 10,000 events/s, 10,000 idle agent
#   sessions and RSS per session.
#
# Usage: loadtest/goals.sh
# Env (defaults in brackets): LOADTEST_PG_URL [postgres://postgres@127.0.0.1:5432],
#   SEED_TASKS [1000000], DURATION [15], SESSIONS [10000], GOALS_OUT
#   [loadtest/out/goals-<time>], GOALS_NO_BUILD=1, GOALS_SQL (run after seeding),
#   ONLY="row row…" to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
pg="${LOADTEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
seed_tasks="${SEED_TASKS:-1000000}"
duration="${DURATION:-15}"
sessions="${SESSIONS:-10000}"
port="${PALISADE_PORT:-17730}"
out="${GOALS_OUT:-$root/loadtest/out/goals-$(date +%Y%m%d-%H%M%S)}"
email="goals-admin@loadtest.test"
password="Quartz-Meadow-7391-Lantern!"
lt="$root/target/release/palisade-loadtest"
db="palisade_lt_goals"
url="http://127.0.0.1:$port"
# shellcheck source=loadtest/lib.sh
. "$root/loadtest/lib.sh"
mkdir -p "$out"
work="$(mktemp -d /tmp/palisade-goals.XXXXXX)"
chmod 711 "$work"

if [ -z "${GOALS_NO_BUILD:-}" ]; then
  cargo build --release -p palisade -p palisade-loadtest --bins --example login_bench
fi
psql "$pg/postgres" -Atqc 'select 1' >/dev/null || { echo "no PostgreSQL at $pg"; exit 2; }

stop_server() {
  if [ -n "${LT_PID:-}" ] && kill -0 "$LT_PID" 2>/dev/null; then
    kill -TERM "$LT_PID"; for _ in $(seq 1 100); do kill -0 "$LT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LT_PID" 2>/dev/null || true
  fi
  LT_PID=""
}
cleanup() {
  stop_server
  psql "$pg/postgres" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$pg/postgres" -qc "drop database if exists $db with (force)" >/dev/null
psql "$pg/postgres" -qc "create database $db" >/dev/null

# The login benchmark rotates X-Forwarded-For to stay under the per-IP limit.
serve() { lt_start_palisade "$port" "$pg/$db" "$work/data" "$out/palisade.log" PALISADE_TRUSTED_PROXIES=127.0.0.1 ${GOALS_SERVER_ENV:-}; }
serve
ready_fresh="$(lt_wait_ready "$url" "$LT_PID")"
lt_setup_palisade "$url" "$out/palisade.log" "$email" "$password"
stop_server
serve
ready_migrated="$(lt_wait_ready "$url" "$LT_PID")"
sleep 3
"$lt" probe --url "$url" >"$out/idle.json"
echo "ready: fresh ${ready_fresh}s, migrated ${ready_migrated}s" | tee "$out/ready.txt"

lt_seed_palisade_tasks "$pg/$db" "$seed_tasks"
# Experiments: SQL run against the brain's database after seeding.
if [ -n "${GOALS_SQL:-}" ]; then psql "$pg/$db" -qc "$GOALS_SQL" >/dev/null; fi
export LOADTEST_EMAIL="$email" LOADTEST_PASSWORD="$password"

declare -A cmd
cmd[auth_me_64]="http-get --path /api/v1/auth/me --concurrency 64 --duration $duration"
cmd[tasks_16]="http-get --path /api/v1/projects/default/tasks?limit=50 --concurrency 16 --duration $duration"
cmd[tasks_64]="http-get --path /api/v1/projects/default/tasks?limit=50 --concurrency 64 --duration $duration"
cmd[tasks_failed_16]="http-get --path /api/v1/projects/default/tasks?limit=50&state=failed --concurrency 16 --duration $duration"
cmd[audit_1]="audit --concurrency 1 --duration $duration"
cmd[audit_16]="audit --concurrency 16 --duration $duration"
cmd[audit_64]="audit --concurrency 64 --duration $duration"
cmd[audit_256]="audit --concurrency 256 --duration $duration"
cmd[events_1]="agents --agents 100 --rate 0 --max-secs $duration --idle-secs 2 --window 64 --events-per-frame 1"
cmd[events_10]="agents --agents 100 --rate 0 --max-secs $duration --idle-secs 2 --window 64 --events-per-frame 10"
# Lag is the brain's send→commit time, so no forged frames here: each one
# closes its session (4403) and the agent, like z4j's, waits 1.1–1.2 s before
# reconnecting, which would put ~115 events per forgery a second late.
cmd[lag_10k]="agents --agents 100 --rate 10000 --steady-secs $duration --max-secs 0 --idle-secs 2 --window 64 --invalid-share 0"
cmd[lag_5k]="agents --agents 100 --rate 5000 --steady-secs $duration --max-secs 0 --idle-secs 2 --window 64 --invalid-share 0"
cmd[sessions]="agents --agents $sessions --rate 0 --max-secs 0 --idle-secs 30"
rows="auth_me_64 tasks_16 tasks_64 tasks_failed_16 audit_1 audit_16 audit_64 audit_256 events_1 events_10 lag_10k lag_5k sessions"
rows="${ONLY:-$rows}"
for row in $rows; do
  if [ "$row" = logins ]; then continue; fi
  echo "== $row" >&2
  # shellcheck disable=SC2086
  "$lt" ${cmd[$row]} --url "$url" --out "$out/$row" --no-progress >"$out/$row.stdout" 2>"$out/$row.stderr" ||
    echo "   failed: $(grep -h '^error' "$out/$row.stderr" | tail -n1)" >&2
  sleep 2
done
if [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" logins "* ]]; then
  echo "== logins" >&2
  "$root/target/release/examples/login_bench" "$url" "$email" "$password" "$duration" | tee "$out/logins.md"
fi

python3 - "$out" "$seed_tasks" <<'PY' | tee "$out/table.md"
import json, os, sys
out, seed = sys.argv[1], int(sys.argv[2])
def load(row):
    try:
        return json.load(open(os.path.join(out, row, "summary.json")))
    except OSError:
        return None
def route(s):
    return next((v for k, v in s["http"].items() if k.startswith("GET ")), None)
print("| row | result |")
print("|---|---|")
for row in ["auth_me_64", "tasks_16", "tasks_64", "tasks_failed_16"]:
    s = load(row)
    r = route(s) if s else None
    print(f"| {row} | " + (f"{r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, errors {sum(s['errors'].values())}" if r else "n/a") + " |")
for row in ["audit_1", "audit_16", "audit_64", "audit_256"]:
    s = load(row)
    if not s:
        print(f"| {row} | n/a |"); continue
    d = s["details"]
    r = next((v for k, v in s["http"].items() if not k.startswith("GET ")), {})
    print(f"| {row} | {d['audit_appends_per_s']:.0f} appends/s, request p99 {r.get('p99', float('nan')):.2f} ms |")
for row in ["events_1", "events_10", "lag_10k", "lag_5k"]:
    s = load(row)
    if not s:
        print(f"| {row} | n/a |"); continue
    print(f"| {row} | {s.get('events_committed_per_s') or 0:.0f} events/s committed, lag p50 {s['lag_ms']['p50']:.1f} ms p99 {s['lag_ms']['p99']:.1f} ms |")
s = load("sessions")
if s:
    per = s.get("rss_bytes_per_conn")
    print(f"| sessions | {s['connections']} held, " + (f"{per/1024:.1f} KiB each" if per else "RSS n/a") + " |")
try:
    idle = json.load(open(os.path.join(out, "idle.json")))["sample"]["rss_bytes"]
    print(f"| idle RSS | {idle/1048576:.1f} MiB |")
except (OSError, KeyError):
    pass
print(f"| start to ready | {open(os.path.join(out, 'ready.txt')).read().strip()} |")
print(f"\nload average at the end: {open('/proc/loadavg').read().split()[0]}")
PY
echo "full reports: $out"
