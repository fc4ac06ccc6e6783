#!/bin/sh
# Write the active-colour file only when it is missing (first start): after
# that it belongs to the deploy engine, which switches it atomically.
set -eu
active=/etc/nginx/upstream/active.conf
if [ ! -s "$active" ]; then
  colour="${ACTIVE_COLOUR:-blue}"
  case "$colour" in blue|green) ;; *) echo "ACTIVE_COLOUR must be blue or green" >&2; exit 64;; esac
  printf 'set $active_backend backend_%s;\n' "$colour" > "$active.tmp"
  mv "$active.tmp" "$active"
fi
nginx -t -q
exec nginx -g 'daemon off;'
