#!/usr/bin/env bash
# The benchmarks of issue 6 in one command, from a clean clone:
#   bash bench/run.sh [python3 -m bench options]      e.g. --quick, --only stats,idle
# 1. tools: tmux, ab (apache2-utils), wrk and the peers glances (+ python3-docker)
#    and pg_activity from Debian when missing (root);
# 2. the console's virtualenv (scripts/venv.sh) plus py-spy for the profile;
# 3. the stack: BENCH_STACK (default sdbench) on 127.0.0.1:BENCH_HTTP_PORT
#    (default 18087), brought up by scripts/setup.sh unless --no-setup;
# 4. python3 -m bench: every benchmark, results in bench/results/<date>.md/.json.
# Extra containers it starts are removed at the end, even on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_STACK="${BENCH_STACK:-sdbench}"
export BENCH_HTTP_PORT="${BENCH_HTTP_PORT:-18087}"

missing=()
command -v tmux >/dev/null || missing+=(tmux)
command -v ab >/dev/null || missing+=(apache2-utils)
command -v wrk >/dev/null || missing+=(wrk)
# the peers measured beside the console (issue 15): glances shows containers
# only with python3-docker; pg_activity watches the stack's database
command -v glances >/dev/null || missing+=(glances python3-docker)
command -v pg_activity >/dev/null || missing+=(pg-activity)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[bench] installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || echo "[bench] could not install ${missing[*]}: the benchmarks that need them report it" >&2
  else
    echo "[bench] missing ${missing[*]}: install them (the benchmarks that need them report it)" >&2
  fi
fi

bash scripts/engine.sh
bash scripts/venv.sh
if [ ! -x .venv/bin/py-spy ] && ! command -v py-spy >/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check py-spy \
    || echo "[bench] py-spy not installed: the profile section will say so" >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
export BENCH_COMMAND="bash bench/run.sh${*:+ $*}"
exec .venv/bin/python -m bench "$@"
