#!/usr/bin/env bash
# Palisade vs z4j 1.13, side by side: same machine, same PostgreSQL
# (127.0.0.1:5432, user postgres, trust; one fresh database each), same run.
#
# Sets up both brains on loopback, creates the admin, project and agents
# through their own APIs, runs every scenario against both (Palisade first,
# then z4j, row by row, so box drift hits both alike) and prints one
# Markdown table with the command behind each row. Rows a brain cannot serve
# yet say so (e.g. "n/a: /ws/agent 404"); nothing is estimated.
#
# Usage: loadtest/compare.sh
# Env (defaults in brackets):
#   LOADTEST_PG_URL [postgres://postgres@127.0.0.1:5432]
#   Z4J_VENV [~/.cache/palisade-loadtest/z4j-venv] (created with pip if missing)
#   DURATION [15] seconds per HTTP row and per agents phase
#   AGENTS [50] agents for the events rows, RATE [50] offered events/s (steady)
#   SESSIONS [1000] idle agents for the sessions/RSS row
#   SEED_TASKS [100000] task rows seeded into each brain for the task-list row
#   COMPARE_OUT [loadtest/out/compare-<time>], COMPARE_NO_BUILD=1,
#   KEEP_DBS=1 keeps both databases for inspection (dropped otherwise)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
pg="${LOADTEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
venv="${Z4J_VENV:-$HOME/.cache/palisade-loadtest/z4j-venv}"
duration="${DURATION:-15}"
agents="${AGENTS:-50}"
rate="${RATE:-50}"
sessions="${SESSIONS:-1000}"
seed_tasks="${SEED_TASKS:-100000}"
pport="${PALISADE_PORT:-17720}"
zport="${Z4J_PORT:-17721}"
out="${COMPARE_OUT:-$root/loadtest/out/compare-$(date +%Y%m%d-%H%M%S)}"
email="cmp-admin@loadtest.test"
password="Quartz-Meadow-7391-Lantern!"
lt="$root/target/release/palisade-loadtest"
pdb="palisade_lt_compare"
zdb="z4j_lt_compare"
# shellcheck source=loadtest/lib.sh
. "$root/loadtest/lib.sh"
mkdir -p "$out"
work="$(mktemp -d /tmp/palisade-compare.XXXXXX)"
chmod 711 "$work"

if [ -z "${COMPARE_NO_BUILD:-}" ]; then cargo build --release -p palisade -p palisade-loadtest; fi
if [ ! -x "$venv/bin/z4j" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'z4j[postgres]==1.13.0'
fi
psql "$pg/postgres" -Atqc 'select 1' >/dev/null || { echo "no PostgreSQL at $pg"; exit 2; }

ppid_=""; zpid=""
stop() {
  for p in "$ppid_" "$zpid"; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  sleep 2
  for p in "$ppid_" "$zpid"; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  if [ -z "${KEEP_DBS:-}" ]; then
    for db in "$pdb" "$zdb"; do psql "$pg/postgres" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true; done
  fi
  rm -rf "$work"
}
trap stop EXIT

for db in "$pdb" "$zdb"; do
  psql "$pg/postgres" -qc "drop database if exists $db" >/dev/null
  psql "$pg/postgres" -qc "create database $db" >/dev/null
done
# --- z4j 1.13 (two uvicorn workers, its default on 2 cores) ---------------
mkdir -p "$work/z4jhome"
(
  export HOME="$work/z4jhome"
  export Z4J_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$zdb"
  export Z4J_SECRET="$(lt_secret)" Z4J_SESSION_SECRET="$(lt_secret)" Z4J_AUDIT_CHAIN_SECRET="$(lt_secret)"
  export Z4J_BOOTSTRAP_ADMIN_EMAIL="$email" Z4J_BOOTSTRAP_ADMIN_PASSWORD="$password"
  exec "$venv/bin/z4j" serve --environment dev --host 127.0.0.1 --port "$zport"
) >"$out/z4j.log" 2>&1 &
zpid=$!
z_ready="$(lt_wait_ready "http://127.0.0.1:$zport" "$zpid")"

# --- Palisade (dev mode, same PostgreSQL server) ---------------------------
lt_start_palisade "$pport" "$pg/$pdb" "$work/pdata" "$out/palisade.log"
ppid_=$LT_PID
p_ready="$(lt_wait_ready "http://127.0.0.1:$pport" "$ppid_")"
lt_setup_palisade "http://127.0.0.1:$pport" "$out/palisade.log" "$email" "$password"
echo "ready: palisade ${p_ready}s, z4j ${z_ready}s"

sleep 3
"$lt" probe --url "http://127.0.0.1:$pport" >"$out/palisade-idle.json"
"$lt" probe --url "http://127.0.0.1:$zport" >"$out/z4j-idle.json"

# --- task rows for the task-list row --------------------------------------
# The same distribution (names, queues, 10 % failed, one per second) straight
# into each brain's own tasks table.
psql "$pg/$zdb" -qc "insert into tasks (project_id, engine, task_id, name, queue, state, received_at, started_at, finished_at, runtime_ms, worker_name)
  select p.id, 'rq', 'seed-' || g, (array['app.tasks.send_email','billing.charge','reports.build','etl.load'])[1 + g % 4],
         (array['default','high','low'])[1 + g % 3], (case when g % 10 = 0 then 'failure' else 'success' end)::task_state,
         now() - make_interval(secs => g), now() - make_interval(secs => g) + interval '1 second',
         now() - make_interval(secs => g) + interval '2 seconds', 1000 + g % 500, 'seed@1'
  from projects p, generate_series(1, $seed_tasks) g where p.slug = 'default'" >/dev/null
psql "$pg/$zdb" -qc "analyze tasks" >/dev/null
lt_seed_palisade_tasks "$pg/$pdb" "$seed_tasks"

export LOADTEST_EMAIL="$email" LOADTEST_PASSWORD="$password"
declare -A url=([palisade]="http://127.0.0.1:$pport" [z4j]="http://127.0.0.1:$zport")
run() { # row target args... → writes $out/<row>-<target>/summary.json (or .err)
  local row="$1" target="$2"; shift 2
  local dir="$out/$row-$target"
  echo "== $row / $target" >&2
  if ! "$lt" "$@" --target "$target" --url "${url[$target]}" --out "$dir" --no-progress >"$dir.stdout" 2>"$dir.stderr"; then
    mkdir -p "$dir"; grep -h '^error' "$dir.stderr" | tail -n1 >"$dir/error.txt" || true
  fi
}
declare -A cmd
cmd[auth_me]="http-get --path /api/v1/auth/me --concurrency 16 --duration $duration"
cmd[tasks]="http-get --path /api/v1/projects/default/tasks?limit=50 --concurrency 16 --duration $duration"
cmd[audit]="audit --concurrency 8 --duration $duration"
cmd[logins]="login-storm --attackers 0 --legit-users 100 --legit-interval-ms 3100 --duration $duration"
cmd[events]="agents --agents $agents --rate $rate --steady-secs $duration --max-secs $duration --idle-secs 3 --window 32"
cmd[sessions]="agents --agents $sessions --rate 0 --max-secs 0 --idle-secs 10"
for row in auth_me tasks audit logins events sessions; do
  for target in palisade z4j; do
    # shellcheck disable=SC2086
    run "$row" "$target" ${cmd[$row]}
    sleep 2
  done
done

python3 - "$out" "$p_ready" "$z_ready" "$seed_tasks" \
  "${cmd[auth_me]}" "${cmd[tasks]}" "${cmd[audit]}" "${cmd[logins]}" "${cmd[events]}" "${cmd[sessions]}" <<'PY' | tee "$out/table.md"
import json, os, sys
out, p_ready, z_ready, seed = sys.argv[1:5]
cmds = dict(zip(["auth_me", "tasks", "audit", "logins", "events", "sessions"], sys.argv[5:]))

def load(row, t):
    d = os.path.join(out, f"{row}-{t}")
    try:
        return json.load(open(os.path.join(d, "summary.json"))), None
    except OSError:
        try:
            err = open(os.path.join(d, "error.txt")).read().strip()
        except OSError:
            err = "no result"
        return None, "n/a: " + err.replace("error: ", "")[:90].replace("|", "/")

def route(s, prefix):
    return next((v for k, v in s["http"].items() if k.startswith(prefix)), None)

def fig(row, t, what):
    s, err = load(row, t)
    if s is None:
        return None, err
    if what in ("rps", "p99") and s["counters"].get("http_ok", 0) == 0:
        kinds = ", ".join(sorted(s["errors"])) or "no successful request"
        return None, f"n/a: {kinds}"
    if what == "rps":
        r = route(s, "GET ")
        return (r["rps"], f"{r['rps']:.0f}") if r else (None, "no data")
    if what == "p99":
        r = route(s, "GET ")
        return (r["p99"], f"{r['p99']:.2f} ms") if r else (None, "no data")
    if what == "audit":
        v = s["details"]["audit_appends_per_s"]; return v, f"{v:.0f}"
    if what == "logins":
        d = s["details"]
        if d.get("legit_logins_ok", 0) == 0:
            return None, "n/a: " + (", ".join(f"{k}×{v}" for k, v in d["legit_status"].items()) or "no login")
        v = d["legit_logins_per_s"]
        return v, f"{v:.1f} (offered {d['legit_offered_per_s']:.0f}/s)"
    if what == "events":
        v = s.get("events_committed_per_s") or 0; return v, f"{v:.0f}"
    if what == "lag":
        v = s["lag_ms"]["p99"]; return v, f"{v:.1f} ms"
    if what == "sessions":
        per = s.get("rss_bytes_per_conn")
        txt = f"{s['connections']} held, " + (f"{per/1024:.1f} KiB each" if per is not None else "RSS n/a")
        return s["connections"], txt
    return None, "?"

def idle(t):
    try:
        v = json.load(open(os.path.join(out, f"{t}-idle.json")))["sample"]["rss_bytes"]
        return v, f"{v/1048576:.0f} MiB"
    except (OSError, KeyError):
        return None, "n/a"

rows = [
    ("events committed/s (closed model, acks)", "events", "events", True),
    (f"ingest lag p99 (open model, steady)", "events", "lag", False),
    ("agent sessions held, RSS per session", "sessions", "sessions", True),
    ("GET /auth/me req/s (c=16)", "auth_me", "rps", True),
    ("GET /auth/me p99", "auth_me", "p99", False),
    (f"task list req/s (50 of {int(seed):,} rows, c=16)", "tasks", "rps", True),
    ("task list p99", "tasks", "p99", False),
    ("logins/s (legitimate, from 100 addresses)", "logins", "logins", True),
    ("audit appends/s (c=8)", "audit", "audit", True),
]
import platform, subprocess
def first(path, key):
    try:
        return next(l.split(":", 1)[1].strip() for l in open(path) if l.startswith(key))
    except (OSError, StopIteration):
        return "?"
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"Measured {__import__('datetime').datetime.utcnow():%Y-%m-%d %H:%M} UTC on {os.cpu_count()} × {first('/proc/cpuinfo', 'model name')}, "
      f"{first('/proc/meminfo', 'MemTotal')} RAM, kernel {platform.release()}; Palisade {rev} (release build), "
      f"z4j 1.13.0 (2 uvicorn workers); PostgreSQL at 127.0.0.1:5432 for both; generator on the same box; "
      f"load average at the end {open('/proc/loadavg').read().split()[0]} (the box is shared).")
print()
print("| metric | Palisade | z4j 1.13 | Palisade ÷ z4j | command (`palisade-loadtest … --target <t> --url <u>`) |")
print("|---|---|---|---|---|")
for name, row, what, higher in rows:
    (pv, pt), (zv, zt) = fig(row, "palisade", what), fig(row, "z4j", what)
    ratio = f"{pv / zv:.3g}×" if isinstance(pv, (int, float)) and isinstance(zv, (int, float)) and zv else "–"
    print(f"| {name} | {pt} | {zt} | {ratio} | `{cmds[row]}` |")
(pv, pt), (zv, zt) = idle("palisade"), idle("z4j")
ratio = f"{pv / zv:.2f}×" if pv and zv else "–"
print(f"| idle RSS (all brain processes) | {pt} | {zt} | {ratio} | `palisade-loadtest probe --url <u>` |")
print(f"| start to ready (fresh database) | {p_ready} s | {z_ready} s | – | `loadtest/compare.sh` (time to first 200 on /api/v1/health/ready) |")
PY
echo "full reports: $out"
