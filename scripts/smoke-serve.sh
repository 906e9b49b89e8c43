#!/usr/bin/env bash
# Run the README's server command exactly as a newcomer would (dev mode, no
# database configured, so the embedded default), check that it prints the
# one-time setup link and becomes ready, then stop it with SIGTERM and check
# that it exits cleanly and leaves no PostgreSQL behind.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d /tmp/palisade-smoke.XXXXXX)"
# The embedded cluster runs as the postgres user when we are root; it must
# be able to traverse to the data directory.
chmod 711 "$work"
port="${SMOKE_PORT:-17700}"
cargo build --release --bin palisade
log="$work/serve.log"
(
  cd "$work"
  PALISADE_ENV=dev PALISADE_BIND="127.0.0.1:$port" PALISADE_PUBLIC_URL="http://127.0.0.1:$port" \
    exec "$OLDPWD/target/release/palisade" serve
) >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/api/v1/health/ready" >/dev/null
grep -q "/setup?token=" "$log" || { echo "no setup link printed"; cat "$log"; exit 1; }
token="$(grep -o 'setup?token=[A-Za-z0-9_-]*' "$log" | head -n1 | cut -d= -f2)"
status="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  -d "{\"token\":\"$token\",\"email\":\"operator@palisade.test\",\"password\":\"Ember-Lattice-93!\"}" \
  "http://127.0.0.1:$port/api/v1/setup/complete")"
[ "$status" = "201" ] || { echo "setup completion answered $status"; cat "$log"; exit 1; }
kill -TERM "$pid"
wait "$pid"
if pgrep -f "postgres -D $work" >/dev/null; then echo "embedded PostgreSQL left running"; exit 1; fi
echo "smoke: serve printed the setup link, became ready, completed setup and shut down cleanly"
