#!/usr/bin/env bash
# The runbook's WebSocket connectivity test: the price stream through nginx
# (http://127.0.0.1:$HTTP_PORT/api/ws/prices), stage by stage: handshake,
# snapshot, a price made to land (trigger: the symbol's cache entry deleted,
# then one lookup, one provider call within quota), the live update, close.
# Prints `ok [stage] ...` per stage; on the first failure
# `FAIL [stage]: why` and exit 1.
# Usage: websocket_test.sh [--symbol AAPL] [--timeout 30] [--no-trigger]
# The stack: STACK_NAME and HTTP_PORT (environment, then .env), as every script.
set -euo pipefail
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
python="$ROOT/.venv/bin/python"
# The client needs websockets and httpx from .venv (created on first use, as
# scripts/stackdeck does).
if [ ! -x "$python" ] || ! "$python" -c 'import websockets, httpx' 2>/dev/null; then
  log "no console environment with websockets at $ROOT/.venv yet: creating it (scripts/venv.sh)"
  bash "$ROOT/scripts/venv.sh" >&2 || die "could not create $ROOT/.venv (see above); run: bash $ROOT/scripts/venv.sh"
fi
command -v docker >/dev/null 2>&1 || die "docker is not installed: the trigger deletes a cache key with docker exec"
exec "$python" "$ROOT/scripts/websocket_probe.py" \
  --url "ws://127.0.0.1:$HTTP_PORT/api/ws/prices" \
  --api "http://127.0.0.1:$HTTP_PORT" \
  --cache-container "$(container_of redis)" "$@"
