#!/usr/bin/env bash
# The runbook's rollback: previous colour, a version, or with the database restored.
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: rollback.sh [--version v1.2.2] [--backup-path PATH --restore-db [--confirm investment_db]] [--force]
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" rollback "$@"
