#!/bin/sh
# Chromium headless with its DevTools endpoint on 127.0.0.1:9222, and socat
# exposing it on 9223 (all addresses) for the test that drives it.
# --no-sandbox: the container is the sandbox (no user namespaces for
# Chromium's own inside an unprivileged container). Extra arguments go to
# Chromium.
set -eu
socat TCP-LISTEN:9223,fork,reuseaddr TCP:127.0.0.1:9222 &
exec chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --no-first-run --no-default-browser-check --disable-extensions \
  --disable-background-networking --disable-sync --metrics-recording-only \
  --remote-debugging-port=9222 --remote-allow-origins=* \
  --user-data-dir=/home/browser/profile --window-size=1280,800 \
  "$@" about:blank
