#!/usr/bin/env bash
# The runbook's API smoke test through nginx (health endpoints, a price lookup).
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: api_smoke_test.sh
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" verify --level smoke "$@"
