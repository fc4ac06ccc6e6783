#!/usr/bin/env bash
# From nothing to a healthy stack: engine, Compose v2, .env, images, then the
# stack itself (database and cache first, migrations, then everything), and
# wait until every service reports healthy. Idempotent: a second run builds
# nothing, recreates nothing, and returns in seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
started=$(date +%s)

bash "$ROOT/scripts/engine.sh"
need_cmd python3 python3
need_cmd curl curl

# --- .env: created from .env.example with random secrets, never overwritten.
if [ ! -f "$ROOT/.env" ]; then
  log "creating .env from .env.example with random secrets"
  umask 077
  python3 - "$ROOT/.env.example" "$ROOT/.env" <<'PY'
import secrets, sys
src, dst = sys.argv[1], sys.argv[2]
out = []
for line in open(src, encoding="utf-8"):
    if line.rstrip("\n").endswith("=change-me"):
        line = line.replace("change-me", secrets.token_hex(24))
    out.append(line)
open(dst, "w", encoding="utf-8").writelines(out)
PY
fi
# Keys added to .env.example after a .env was made: appended with a random
# value (the rest of .env is left as it is).
for k in MONITORING_PASSWORD; do
  if [ -z "$(_env_file_value "$k")" ]; then
    log ".env has no $k: adding a random one"
    printf '\n# added by setup.sh: the credential of the Prometheus and Alertmanager UIs\n%s=%s\n' \
      "$k" "$(python3 -c 'import secrets; print(secrets.token_hex(24))')" >> "$ROOT/.env"
  fi
done
for k in POSTGRES_PASSWORD REDIS_PASSWORD JWT_SECRET ADMIN_TOKEN ADMIN_PASSWORD TEST_PASSWORD MONITORING_PASSWORD; do
  v=$(_env_file_value "$k")
  [ -n "$v" ] || die ".env has no $k (compare with .env.example)"
  [ "$v" != change-me ] || die ".env: $k is still 'change-me'; set a real secret"
done

# --- deploy state: which version each colour runs and which colour serves.
mkdir -p "$STACKDECK_STATE_DIR/backups" "$RUN_DIR/postgresql" "$RUN_DIR/redis"
chmod 0750 "$STACKDECK_STATE_DIR" "$RUN_DIR"
if [ ! -f "$STACKDECK_STATE_DIR/deploy.env" ]; then
  log "creating $STACKDECK_STATE_DIR/deploy.env"
  cat > "$STACKDECK_STATE_DIR/deploy.env" <<EOF2
# Written by scripts/setup.sh once, then only by the stackdeck deploy engine.
BLUE_VERSION=${BASE_VERSION:-v1.0.0}
GREEN_VERSION=${BASE_VERSION:-v1.0.0}
WORKER_VERSION=${BASE_VERSION:-v1.0.0}
ACTIVE_COLOUR=blue
FRONTEND_VERSION=${BASE_VERSION:-v1.0.0}
FRONTEND_BLUE_VERSION=${BASE_VERSION:-v1.0.0}
FRONTEND_GREEN_VERSION=${BASE_VERSION:-v1.0.0}
FRONTEND_COLOUR=blue
EOF2
elif ! grep -q '^FRONTEND_\(BLUE\|GREEN\)_VERSION=' "$STACKDECK_STATE_DIR/deploy.env"; then
  # A deploy.env of before the frontend had colours: the one frontend ran
  # FRONTEND_VERSION (compose's default when unset) beside the serving colour.
  _deploy_env="$STACKDECK_STATE_DIR/deploy.env"
  _fe=$(sed -n 's/^FRONTEND_VERSION=//p' "$_deploy_env" | tail -n 1)
  _fe=${_fe:-v1.0.0}
  _active=$(sed -n 's/^ACTIVE_COLOUR=//p' "$_deploy_env" | tail -n 1)
  for _pair in "FRONTEND_VERSION=$_fe" "FRONTEND_BLUE_VERSION=$_fe" "FRONTEND_GREEN_VERSION=$_fe" \
               "FRONTEND_COLOUR=${_active:-blue}"; do
    if ! grep -q "^${_pair%%=*}=" "$_deploy_env"; then
      log "deploy.env: adding $_pair (the frontend's colours are new)"
      echo "$_pair" >> "$_deploy_env"
    fi
  done
fi

# --- nginx's certificate (.env's TLS_CERT_FILE/TLS_KEY_FILE, else self-signed)
bash "$ROOT/scripts/tls.sh"

bash "$ROOT/scripts/images.sh"

# --- the stack. Database and cache first, then the schema, then the rest.
log "starting db and redis (project $STACK_NAME)"
compose up -d --wait --wait-timeout 180 db redis market-sim

# The database volume keeps the password it was initialised with: say so
# plainly when .env now holds another one, instead of failing later.
pw=$(_env_file_value POSTGRES_PASSWORD)
if ! docker exec -e PGPASSWORD="$pw" "$(container_of db)" \
     psql -h 127.0.0.1 -U postgres -d investment_db -tAc 'SELECT 1' >/dev/null 2>&1; then
  die "the database of $STACK_NAME does not accept POSTGRES_PASSWORD from .env: its volume was initialised with another password. Put the old .env back, or start over with: STACK_NAME=$STACK_NAME scripts/compose.sh down -v (destroys the data)"
fi

# Migrations: skipped when the database already reports the newest revision
# shipped in platform_services/db/migrations/versions (ids are ordered: 0001, 0002, ...).
head=$(ls "$ROOT/platform_services/db/migrations/versions" | sed -n 's/^\([0-9]\{4\}\)_.*\.py$/\1/p' | sort | tail -n 1)
current=$(docker exec "$(container_of db)" psql -U postgres -d investment_db -tAc \
  "SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1" 2>/dev/null || true)
if [ -n "$head" ] && [ "$current" = "$head" ]; then
  log "schema at $current (head): no migration"
else
  log "migrating the schema (alembic upgrade head; database at ${current:-nothing})"
  compose run --rm --no-deps -T backend_blue python3 -m alembic upgrade head >&2 \
    || die "alembic upgrade head failed (output above)"
  compose run --rm --no-deps -T backend_blue python3 -m alembic current 2>/dev/null | grep -q '(head)' \
    || die "migrations did not reach head; see: scripts/compose.sh run --rm backend_blue python3 -m alembic current"
fi

# The idle colour stays stopped when a deploy left it so (kept for rollback);
# the same for the frontend's idle colour. The frontend's serving colour is
# FRONTEND_COLOUR (a deploy.env from before the frontend had colours has
# none: the backend's, which is what nginx then serves).
services=(nginx worker)
active=$(sed -n 's/^ACTIVE_COLOUR=//p' "$STACKDECK_STATE_DIR/deploy.env")
factive=$(sed -n 's/^FRONTEND_COLOUR=//p' "$STACKDECK_STATE_DIR/deploy.env")
factive=${factive:-${active:-blue}}
for part in backend:${active:-blue} frontend:$factive; do
  name=${part%%:*} colour=${part#*:}
  idle=$([ "$colour" = green ] && echo blue || echo green)
  services+=("${name}_$colour")
  idle_state=$(docker inspect -f '{{.State.Status}}' "$(container_of "${name}_$idle")" 2>/dev/null || echo missing)
  if [ "$idle_state" = exited ]; then
    log "${name}_$idle is stopped (kept for rollback): leaving it so"
  else
    services+=("${name}_$idle")
  fi
done
log "starting ${services[*]}"
compose up -d --wait --wait-timeout 180 "${services[@]}"

# nginx reads its site configuration from the checkout (compose/nginx/conf,
# mounted): a running nginx keeps the one it loaded. When the checkout's
# differs from the one last loaded, test it and reload (graceful: requests in
# flight finish on the old workers); a configuration nginx refuses stops here.
nginx_hash=$(cd "$ROOT" && find compose/nginx/conf -type f -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)
nginx_loaded="$STACKDECK_STATE_DIR/nginx-config.sha"
if [ "$(cat "$nginx_loaded" 2>/dev/null)" != "$nginx_hash" ]; then
  docker exec "$(container_of nginx)" nginx -t -q \
    || die "nginx refuses the configuration in compose/nginx/conf (its message above); nothing was reloaded"
  docker exec "$(container_of nginx)" nginx -s reload >/dev/null
  echo "$nginx_hash" > "$nginx_loaded"
  log "nginx: site configuration loaded ($nginx_hash)"
fi

# The single frontend container of before the colours (compose service
# `frontend`, gone from the compose file): removed once nginx, reloaded
# above, sends / to the colours.
if docker inspect "$(container_of frontend)" >/dev/null 2>&1; then
  docker rm -f "$(container_of frontend)" >/dev/null
  log "removed $(container_of frontend): frontend_blue / frontend_green replace it"
fi

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/api/health" || true)
[ "$code" = 200 ] || die "stack is up but http://127.0.0.1:$HTTP_PORT/api/health answered $code"

# Monitoring last: it watches the rest (compose/monitoring, README "Monitoring").
MONITORING_CONFIG_HASH=$(cd "$ROOT" && find compose/monitoring -type f -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)
export MONITORING_CONFIG_HASH
monitoring=(prometheus alertmanager alert_sink node_exporter postgres_exporter redis_exporter nginx_exporter stack_exporter)
log "starting monitoring: ${monitoring[*]}"
compose up -d --wait --wait-timeout 180 "${monitoring[@]}"
log "Prometheus on http://127.0.0.1:$PROMETHEUS_PORT, Alertmanager on http://127.0.0.1:$ALERTMANAGER_PORT, alert sink on http://127.0.0.1:$ALERT_SINK_PORT/messages (user $(_env_file_value MONITORING_USER | grep . || echo stackdeck), password MONITORING_PASSWORD in .env)"
log "stack $STACK_NAME healthy on http://127.0.0.1:$HTTP_PORT and https://127.0.0.1:$HTTPS_PORT in $(( $(date +%s) - started )) s"

# The configuration's schedule ([[schedule]]: the off-peak scale-down), into
# the host's cron, so it runs whether or not a console is open.
config="${STACKDECK_CONFIG:-${XDG_CONFIG_HOME:-${HOME:-/root}/.config}/stackdeck/config.toml}"  # (HOME may be unset under cloud-init)
if [ -f "$config" ] && grep -q '^[[:space:]]*\[\[schedule\]\]' "$config"; then
  log "installing the schedule of $config into cron"
  bash "$ROOT/scripts/schedule.sh" || die "the schedule in $config was not installed (the reason above)"
fi
