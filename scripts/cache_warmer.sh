#!/usr/bin/env bash
# The runbook's cache warming: fetch the watchlist so readers hit the cache.
# A thin wrapper over the stackdeck CLI (the same engine as the console's
# keys: deploy lock, audit log, history). Usage: cache_warmer.sh [--symbols AAPL,MSFT]
# Global options work here too: --stack NAME, --http-port PORT, --json, --read-only.
set -euo pipefail
exec "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/stackdeck" cache warm "$@"
