#!/bin/bash
# Write the runtime config (the password never appears on a command line),
# then run redis-server in the foreground as the redis user.
set -euo pipefail
# On Swarm the password is a Docker secret: REDIS_PASSWORD_FILE names it.
if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
  [ -r "$REDIS_PASSWORD_FILE" ] || { echo "redis-entrypoint: REDIS_PASSWORD_FILE=$REDIS_PASSWORD_FILE cannot be read" >&2; exit 78; }
  REDIS_PASSWORD=$(cat "$REDIS_PASSWORD_FILE")
fi
: "${REDIS_PASSWORD:?REDIS_PASSWORD (or REDIS_PASSWORD_FILE) must be set (see .env)}"
mkdir -p /var/run/redis /data
chown redis:redis /var/run/redis /data
chmod 0770 /var/run/redis
conf=/etc/redis/runtime.conf
umask 077
cat > "$conf" <<CONF
bind 0.0.0.0
port 6379
protected-mode no
requirepass $REDIS_PASSWORD
unixsocket /var/run/redis/redis.sock
unixsocketperm 770
dir /data
appendonly yes
appendfsync everysec
maxmemory ${REDIS_MAXMEMORY:-256mb}
# Quota counters must never be evicted: a full Redis refuses writes instead.
maxmemory-policy noeviction
save ""
CONF
chown redis:redis "$conf"
exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$conf"
