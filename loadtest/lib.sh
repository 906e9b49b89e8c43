# Shared set-up for the load scripts (sourced by compare.sh and goals.sh).

lt_secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }

# lt_wait_ready URL PID → prints seconds to the first 200 on /api/v1/health/ready
lt_wait_ready() {
  local t0 t1
  t0=$(date +%s.%N)
  for _ in $(seq 1 600); do
    if curl -fsS "$1/api/v1/health/ready" >/dev/null 2>&1; then
      t1=$(date +%s.%N); python3 -c "print(round($t1 - $t0, 3))"; return 0
    fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.02
  done
  echo "never"
}

# lt_start_palisade PORT DB_URL DATA_DIR LOG [VAR=VALUE ...] → sets LT_PID
lt_start_palisade() {
  local port="$1" db="$2" data="$3" log="$4"; shift 4
  # One secret per script run: a restart must reuse it (the audit chain and
  # its checkpoints are keyed from it).
  : "${LT_PALISADE_SECRET:=$(lt_secret)}"
  env PALISADE_ENV=dev PALISADE_BIND="127.0.0.1:$port" PALISADE_PUBLIC_URL="http://127.0.0.1:$port" \
    PALISADE_SECRET="$LT_PALISADE_SECRET" PALISADE_DATABASE_URL="$db" PALISADE_DATA_DIR="$data" \
    "$@" "$root/target/release/palisade" serve >>"$log" 2>&1 &
  LT_PID=$!
}

# lt_setup_palisade URL LOG EMAIL PASSWORD: complete first-boot setup
lt_setup_palisade() {
  local token
  token="$(grep -o 'setup?token=[A-Za-z0-9_-]*' "$2" | tail -n1 | cut -d= -f2)"
  curl -fsS -o /dev/null -H 'content-type: application/json' \
    -d "{\"token\":\"$token\",\"email\":\"$3\",\"password\":\"$4\"}" "$1/api/v1/setup/complete"
}

# lt_seed_palisade_tasks DB_URL N: the "default" project (created here, the
# harness would otherwise create it through the API on first use) and N
# finished tasks, one per second back in time, four names, three queues,
# 10 % failed.
lt_seed_palisade_tasks() {
  psql "$1" -qc "insert into projects (id, slug, name, created_at, updated_at)
    values (gen_random_uuid(), 'default', 'default', now(), now()) on conflict do nothing" >/dev/null
  psql "$1" -qc "insert into tasks (project_id, engine, task_id, name, queue, worker, state, received_at, started_at, finished_at, runtime_ms, last_event_at, updated_at)
    select p.id, 'rq', 'seed-' || g, (array['app.tasks.send_email','billing.charge','reports.build','etl.load'])[1 + g % 4],
           (array['default','high','low'])[1 + g % 3], 'seed@1', (case when g % 10 = 0 then 'failed' else 'succeeded' end),
           now() - make_interval(secs => g), now() - make_interval(secs => g) + interval '1 second',
           now() - make_interval(secs => g) + interval '2 seconds', 1000 + g % 500, now() - make_interval(secs => g) + interval '2 seconds', now()
    from projects p, generate_series(1, $2) g where p.slug = 'default'" >/dev/null
  # A bulk load leaves unset hint bits, an unvacuumed visibility map and a
  # checkpoint's worth of dirty pages; a real table has none of these, and
  # paying for them during the run would measure the seed, not the brain.
  psql "$1" -qc "vacuum (freeze, analyze) tasks" >/dev/null
  psql "$1" -qc "checkpoint" >/dev/null
}
