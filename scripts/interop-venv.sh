#!/usr/bin/env bash
# Build (once) the virtualenv the z4j interop test runs the real agents from,
# and print its path on stdout.
#
# Location: $PALISADE_INTEROP_VENV, else target/interop-venv. The venv holds
# exactly tests/interop/requirements.txt (z4j-core, z4j-bare, z4j-rq and
# z4j-dramatiq 1.13.0 from PyPI, rq, dramatiq[redis], redis, all pinned). It
# is rebuilt only when that file or the interpreter changes: a stamp inside
# the venv records both. The interpreter is $PALISADE_INTEROP_PYTHON, else the
# first of python3.11, python3.12, python3.13, python3 that is 3.11 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
req="$repo/tests/interop/requirements.txt"
venv="${PALISADE_INTEROP_VENV:-$repo/target/interop-venv}"

log() { echo "interop-venv: $*" >&2; }

pick_python() {
  local candidates=()
  if [ -n "${PALISADE_INTEROP_PYTHON:-}" ]; then
    candidates=("$PALISADE_INTEROP_PYTHON")
  else
    candidates=(python3.11 python3.12 python3.13 python3)
  fi
  for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 &&
      "$py" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
      # The real interpreter, not a version-manager shim.
      "$py" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

python="$(pick_python)" || {
  log "no Python 3.11+ with the venv module found (set PALISADE_INTEROP_PYTHON)"
  exit 2
}
version="$("$python" -c 'import sys; print(sys.version.split()[0])')"
want="$(sha256sum "$req" | cut -d' ' -f1) python=$version"

mkdir -p "$(dirname "$venv")"
# Two test runs at once must not build the same venv concurrently.
exec 9>"$venv.lock"
flock 9

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.palisade-stamp" 2>/dev/null || true)" = "$want" ]; then
  echo "$venv"
  exit 0
fi

log "building $venv with $python ($version)"
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --require-virtualenv --no-input -r "$req" >&2
"$venv/bin/python" - >&2 <<'PY'
import importlib.metadata as md
for name in ("z4j-core", "z4j-bare", "z4j-rq", "z4j-dramatiq"):
    assert md.version(name) == "1.13.0", (name, md.version(name))
import dramatiq.brokers.redis, rq, z4j_bare, z4j_dramatiq, z4j_rq  # noqa: F401,E401
PY
test -x "$venv/bin/rq" && test -x "$venv/bin/dramatiq"
echo "$want" >"$venv/.palisade-stamp"
log "ready"
echo "$venv"
