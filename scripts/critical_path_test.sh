#!/usr/bin/env bash
# The runbook's critical path test: health, login, prices, metrics, containers, schema version.
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: critical_path_test.sh [--expect-version v1.2.3]
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" verify --level full "$@"
