#!/bin/sh
# Write the active-colour file only when it is missing (first start): after
# that it belongs to the deploy engine, which switches it atomically. Two
# lines: the backend's colour (/api/) and the frontend's (/).
set -eu
active=/etc/nginx/upstream/active.conf
if [ ! -s "$active" ]; then
  colour="${ACTIVE_COLOUR:-blue}"
  case "$colour" in blue|green) ;; *) echo "ACTIVE_COLOUR must be blue or green" >&2; exit 64;; esac
  fcolour="${FRONTEND_COLOUR:-$colour}"
  case "$fcolour" in blue|green) ;; *) echo "FRONTEND_COLOUR must be blue or green" >&2; exit 64;; esac
  printf 'set $active_backend backend_%s;\nset $active_frontend frontend_%s;\n' "$colour" "$fcolour" > "$active.tmp"
  mv "$active.tmp" "$active"
fi

# Backend replicas' pool (console/core/ops/replicas.py writes it): addresses
# taken while those containers ran. At a start (a host reboot, a recreated
# nginx) they may have others, so each member is looked up again by the
# container name its line ends with (Docker's DNS); members that do not
# resolve are dropped, and a colour left with fewer than two loses its pool
# (its compose DNS name serves it, as with one container). `stackdeck scale
# backend=N` rebuilds the pool from what runs healthy.
pool=/etc/nginx/upstream/pool.conf
map=/etc/nginx/upstream/pool.map
if [ -s "$pool" ]; then
  : > "$pool.tmp"
  : > "$map.tmp"
  colour="" members="" n=0
  while IFS= read -r line; do
    case "$line" in
      "upstream backend_"*"_pool {")
        colour=${line#upstream backend_}; colour=${colour%%_pool*}; members="" n=0 ;;
      *"server "*"# "*)
        name=${line##*# }
        # bounded: a name Docker does not know is forwarded to resolvers this
        # host may not reach, and getent would wait for them
        addr=$(timeout 2 getent hosts "$name" | awk '{ print $1; exit }') || addr=""
        if [ -n "$addr" ]; then
          members="$members    server $addr:8000;  # $name
"
          n=$((n + 1))
        else
          echo "nginx-entrypoint: pool member $name does not resolve: dropped" >&2
        fi ;;
      "}")
        if [ -n "$colour" ] && [ "$n" -ge 2 ]; then
          printf 'upstream backend_%s_pool {\n%s}\n' "$colour" "$members" >> "$pool.tmp"
          printf 'backend_%s backend_%s_pool;\n' "$colour" "$colour" >> "$map.tmp"
        fi
        colour="" ;;
    esac
  done < "$pool"
  mv -f "$pool.tmp" "$pool"
  mv -f "$map.tmp" "$map"
fi

# The host, as nginx sees it: the gateway of this container's network (the
# default route in /proc/net/route, little-endian hex), through which a
# published port's traffic arrives. Rewritten at every start (a recreated
# network may have another address).
mkdir -p /etc/nginx/runtime
gw=$(awk '$2 == "00000000" && $3 != "00000000" { print $3; exit }' /proc/net/route)
: > /etc/nginx/runtime/host-clients.geo.tmp
if [ -n "$gw" ]; then
  printf '%d.%d.%d.%d 1;\n' "0x$(echo "$gw" | cut -c7-8)" "0x$(echo "$gw" | cut -c5-6)" \
    "0x$(echo "$gw" | cut -c3-4)" "0x$(echo "$gw" | cut -c1-2)" >> /etc/nginx/runtime/host-clients.geo.tmp
else
  echo "nginx-entrypoint: no default route: only 127.0.0.1 counts as the host" >&2
fi
mv /etc/nginx/runtime/host-clients.geo.tmp /etc/nginx/runtime/host-clients.geo

# Where a client redirected to HTTPS finds it: the published HTTPS port.
port="${HTTPS_PORT:-443}"
case "$port" in ''|*[!0-9]*) echo "HTTPS_PORT must be a port number (got '$port')" >&2; exit 64;; esac
suffix=$([ "$port" = 443 ] || printf ':%s' "$port")
printf 'set $https_port_suffix "%s";\n' "$suffix" > /etc/nginx/runtime/edge.conf

for f in cert.pem key.pem; do
  if [ ! -s "/etc/nginx/tls/$f" ]; then
    echo "nginx-entrypoint: /etc/nginx/tls/$f is missing: scripts/setup.sh installs the certificate in \$STACKDECK_STATE_DIR/tls" >&2
    exit 78
  fi
done
nginx -t -q
exec nginx -g 'daemon off;'
