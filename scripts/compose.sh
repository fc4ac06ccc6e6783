#!/usr/bin/env bash
# `docker compose` for the bundled stack, with the project name, both compose
# files and both env files (.env, deploy.env) always passed. Use it instead of
# plain docker compose: `scripts/compose.sh ps`, `scripts/compose.sh logs -f nginx`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -f "$ROOT/.env" ] || die "no .env at $ROOT/.env: run scripts/setup.sh first (or copy .env.example)"
[ -f "$STACKDECK_STATE_DIR/deploy.env" ] || die "no $STACKDECK_STATE_DIR/deploy.env: run scripts/setup.sh first"
compose "$@"
