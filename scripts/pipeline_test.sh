#!/usr/bin/env bash
# The runbook's data pipeline verification, end to end, one watchlist symbol:
#   ingest      the worker is alive and one ingestion cycle (its own code,
#               `worker --once`, through the quota ledger) fetches the symbol,
#               whose cache entry was deleted first (cache: keys are
#               disposable); no provider is past its quota afterwards
#   hypertable  a row for the symbol, written by that cycle, in the prices
#               hypertable
#   api         GET /api/stocks/prices through nginx serves that price
#   cache       cache:price:<SYMBOL> in Redis holds it, with a TTL
# Prints `ok [stage] ...` per stage; on the first failure `FAIL [stage]: why`
# and exit 1. Costs one provider call (and the cycle's news call).
# Usage: pipeline_test.sh [--symbol AAPL]   (default: the worker's first watchlist symbol)
# The stack: STACK_NAME and HTTP_PORT (environment, then .env), as every script.
set -euo pipefail
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

symbol=""
while [ $# -gt 0 ]; do
  case "$1" in
    --symbol) [ $# -ge 2 ] || { echo "usage: $0 [--symbol SYMBOL]" >&2; exit 2; }; symbol=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--symbol SYMBOL]" >&2; exit 2 ;;
  esac
done

case "$symbol" in
  '') ;;
  [A-Z]*) [[ "$symbol" =~ ^[A-Z][A-Z0-9.-]{0,9}$ ]] || { echo "invalid symbol '$symbol' (A-Z first, then A-Z, 0-9, '.' or '-')" >&2; exit 2; } ;;
  *) echo "invalid symbol '$symbol' (A-Z first, then A-Z, 0-9, '.' or '-')" >&2; exit 2 ;;
esac
PREFIX="[pipeline_test]"
ok() { printf '%s ok [%s] %s\n' "$PREFIX" "$1" "$2"; }
fail() { printf '%s FAIL [%s]: %s\n' "$PREFIX" "$1" "$2" >&2; exit 1; }
need_cmd curl curl
need_cmd python3 python3
command -v docker >/dev/null 2>&1 || fail ingest "docker is not installed (this test reaches the containers with docker exec)"

# json_field JSON PATH: a field of a JSON document (dotted path, list index
# allowed); empty when absent or not JSON. Never a traceback.
json_field() {
  python3 -c '
import json, sys
try:
    value = json.loads(sys.argv[1])
    for part in sys.argv[2].split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
except Exception:
    sys.exit(0)
print(json.dumps(value) if isinstance(value, (dict, list, bool)) or value is None else value)
' "$1" "$2"
}
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
psql_val() { docker exec "$db" psql -U postgres -d investment_db -v ON_ERROR_STOP=1 -tAc "$1" 2>&1; }

worker=$(container_of worker)
db=$(container_of db)
cache=$(container_of redis)
api="http://127.0.0.1:$HTTP_PORT"

# --- ingest ------------------------------------------------------------------------------
running "$worker" || fail ingest "the worker container $worker is not running ($(docker inspect -f '{{.State.Status}}' "$worker" 2>/dev/null || echo missing)); start it: scripts/compose.sh start worker"
check=$(docker exec "$worker" python3 -m platform_services.worker --check 2>&1) \
  || fail ingest "the worker's heartbeat is not fresh: ${check//$'\n'/ } (logs: scripts/compose.sh logs worker)"
if [ -z "$symbol" ]; then
  watchlist=$(docker exec "$worker" printenv WATCHLIST 2>/dev/null || true)
  symbol=${watchlist%%,*}
  symbol=${symbol:-AAPL}
fi
running "$db" || fail hypertable "the database container $db is not running"
running "$cache" || fail ingest "the cache container $cache is not running"
t0=$(psql_val "SELECT now()") || fail hypertable "psql in $db: $t0"
docker exec "$cache" redis-cli DEL "cache:price:$symbol" >/dev/null \
  || fail ingest "could not delete cache:price:$symbol in $cache"
# One cycle of the worker's own code. The running worker may hold the cycle
# lock for a few seconds: retried while it says so (bounded).
summary=""
deadline=$(( $(date +%s) + 90 ))
while :; do
  out=$(docker exec "$worker" python3 -m platform_services.worker --once 2>&1) \
    || fail ingest "worker --once failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  summary=$(tail -n 1 <<<"$out")
  [ -n "$(json_field "$summary" skipped)" ] || break
  [ "$(date +%s)" -lt "$deadline" ] || fail ingest "the worker's cycle lock was never free within 90 s ($(json_field "$summary" skipped))"
  sleep 1
done
[ "$(json_field "$summary" emergency_rate_limit)" != true ] \
  || fail ingest "the emergency rate limit is on: the worker makes no provider call (redis-cli DEL emergency_rate_limit to lift it)"
case "$(json_field "$summary" unknown)" in
  *"\"$symbol\""*) fail ingest "no provider knows $symbol (pick a watchlist symbol: --symbol)" ;;
esac
# The provider calls made for the symbol since the cache entry went (the
# ledger admitted each: within quota). A cycle that got no quote still
# "succeeds" with the last stored price, so its summary cannot tell.
calls=$(psql_val "SELECT coalesce(string_agg(provider || ' ' || outcome, ', ' ORDER BY id), '') FROM api_calls WHERE symbol = '$symbol' AND operation = 'quote' AND time >= '$t0'") \
  || fail hypertable "psql in $db: $calls"
case ", $calls," in
  *" ok,"*) ;;
  ", ,") fail ingest "the worker's cycle made no provider call for $symbol (quotas exhausted or the ledger refused: see /api/metrics/api-usage). Cycle: $summary" ;;
  *) fail ingest "the worker's cycle got no quote for $symbol: $calls (providers down? see /api/health/external-apis)" ;;
esac
fetched=$(json_field "$summary" fetched)
usage=$(curl -s --max-time 10 "$api/api/metrics/api-usage" || true)
over=$(python3 -c '
import json, sys
try:
    providers = json.loads(sys.argv[1])["providers"]
except Exception:
    print("?"); sys.exit(0)
print(" ".join(f"{n}:{p['"'"'used'"'"']}/{p['"'"'limit'"'"']}" for n, p in providers.items() if p["used"] > p["limit"]))
' "$usage")
[ "$over" != "?" ] || fail ingest "GET $api/api/metrics/api-usage did not answer the quota ledger: ${usage:0:200}"
[ -z "$over" ] || fail ingest "providers past their quota: $over"
ok ingest "worker cycle: $fetched quote(s) fetched for $(json_field "$summary" symbols) watchlist symbol(s); $symbol by: $calls; every provider within quota"

# --- hypertable --------------------------------------------------------------------------
row=$(psql_val "SELECT price || '|' || provider || '|' || to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM prices WHERE symbol = '$symbol' AND time >= '$t0' ORDER BY time DESC LIMIT 1") \
  || fail hypertable "psql in $db: $row"
[ -n "$row" ] || fail hypertable "no row for $symbol in prices since $t0 (the cycle fetched but did not store: database errors in scripts/compose.sh logs worker?)"
hyper=$(psql_val "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'prices'") \
  || fail hypertable "psql in $db: $hyper"
[ "$hyper" = 1 ] || fail hypertable "prices is not a TimescaleDB hypertable"
db_price=${row%%|*}
ok hypertable "prices (hypertable) has $symbol $db_price from $(cut -d'|' -f2 <<<"$row") at $(cut -d'|' -f3 <<<"$row")Z"

# --- api ---------------------------------------------------------------------------------
body=$(curl -s --max-time 15 -w '\n%{http_code}' "$api/api/stocks/prices?symbols=$symbol" || true)
code=$(tail -n 1 <<<"$body")
body=$(sed '$d' <<<"$body")
[ "$code" = 200 ] || fail api "GET $api/api/stocks/prices?symbols=$symbol answered ${code:-nothing}: ${body:0:300}"
api_price=$(json_field "$body" prices.0.price)
api_source=$(json_field "$body" prices.0.source)
python3 -c 'import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 1e-9)' "${api_price:-0}" "$db_price" 2>/dev/null \
  || fail api "the API serves $symbol ${api_price:-?} (source ${api_source:-?}), the hypertable's latest is $db_price"
ok api "GET /api/stocks/prices serves $symbol $api_price (source $api_source)"

# --- cache -------------------------------------------------------------------------------
cached=$(docker exec "$cache" redis-cli GET "cache:price:$symbol" 2>&1) || fail cache "redis-cli in $cache: $cached"
[ -n "$cached" ] || fail cache "cache:price:$symbol is empty (a cache flush since the cycle, or the cache refuses writes: maxmemory?)"
cache_price=$(json_field "$cached" price)
python3 -c 'import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 1e-9)' "${cache_price:-0}" "$db_price" 2>/dev/null \
  || fail cache "cache:price:$symbol holds ${cache_price:-?}, the hypertable's latest is $db_price"
ttl=$(docker exec "$cache" redis-cli TTL "cache:price:$symbol" 2>/dev/null || echo -2)
[ "${ttl:--2}" -gt 0 ] 2>/dev/null || fail cache "cache:price:$symbol has no expiry (TTL $ttl)"
ok cache "cache:price:$symbol holds $cache_price (expires in $ttl s)"
printf '%s all stages passed\n' "$PREFIX"
