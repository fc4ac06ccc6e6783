#!/bin/bash
# Initialise the cluster on first start, then run PostgreSQL in the foreground.
set -euo pipefail

# On Swarm the password is a Docker secret: POSTGRES_PASSWORD_FILE names it.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  [ -r "$POSTGRES_PASSWORD_FILE" ] || { echo "db-entrypoint: POSTGRES_PASSWORD_FILE=$POSTGRES_PASSWORD_FILE cannot be read" >&2; exit 78; }
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE")
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) must be set (see .env)}"
: "${POSTGRES_DB:=investment_db}"
SOCKDIR=/var/run/postgresql

mkdir -p "$SOCKDIR" "$PGDATA"
chown postgres:postgres "$SOCKDIR" "$PGDATA"
chmod 2775 "$SOCKDIR"
chmod 0700 "$PGDATA"

as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "db-entrypoint: initialising a new cluster in $PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  as_pg initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"

  cat >> "$PGDATA/postgresql.conf" <<CONF
# --- stackdeck (sized for the runbook's 2-core / 4 GB server) ---
listen_addresses = '*'
unix_socket_directories = '$SOCKDIR'
unix_socket_permissions = 0770
max_connections = 100
shared_buffers = 256MB
effective_cache_size = 768MB
work_mem = 8MB
maintenance_work_mem = 64MB
shared_preload_libraries = 'timescaledb,pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.max = 5000
track_io_timing = on
timescaledb.telemetry_level = off
timescaledb.max_background_workers = 4
log_min_duration_statement = 1000
log_line_prefix = '%m [%p] %u@%d '
password_encryption = scram-sha-256
CONF

  cat > "$PGDATA/pg_ident.conf" <<IDENT
# root and postgres inside the container (docker exec) and root on the host
# (through the bind-mounted socket) may act as the postgres role.
admins  root      postgres
admins  postgres  postgres
IDENT

  cat > "$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE  USER      ADDRESS   METHOD
local   all       postgres            peer map=admins
local   all       all                 scram-sha-256
host    all       all       all       scram-sha-256
HBA

  as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_pg psql -v ON_ERROR_STOP=1 -q -h "$SOCKDIR" -U postgres -d postgres \
    -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
  as_pg psql -v ON_ERROR_STOP=1 -q -h "$SOCKDIR" -U postgres -d "$POSTGRES_DB" \
    -c "CREATE EXTENSION IF NOT EXISTS timescaledb" \
    -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "db-entrypoint: cluster ready"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
