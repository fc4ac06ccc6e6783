#!/bin/sh
# monitoring-entrypoint prometheus|alertmanager|COMMAND...
# Prometheus and Alertmanager: render their configuration from the
# environment (.env) into /run/monitoring first
# (platform_services/monitoring/render.py), then run them behind basic auth.
# Anything else runs as given (the exporters, the stack exporter, the sink).
set -eu
case "${1:-}" in
  prometheus)
    shift
    python3 -m platform_services.monitoring.render prometheus
    exec prometheus \
      --config.file=/run/monitoring/prometheus.yml \
      --web.config.file=/run/monitoring/web.yml \
      --storage.tsdb.path=/var/lib/monitoring/prometheus \
      --storage.tsdb.retention.time="${PROMETHEUS_RETENTION_TIME:-15d}" \
      --storage.tsdb.retention.size="${PROMETHEUS_RETENTION_SIZE:-2GB}" \
      --web.external-url="${PROMETHEUS_EXTERNAL_URL:-http://127.0.0.1:9090}" \
      --web.listen-address=:9090 "$@"
    ;;
  alertmanager)
    shift
    python3 -m platform_services.monitoring.render alertmanager
    exec prometheus-alertmanager \
      --config.file=/run/monitoring/alertmanager.yml \
      --web.config.file=/run/monitoring/web.yml \
      --storage.path=/var/lib/monitoring/alertmanager \
      --cluster.listen-address= \
      --web.external-url="${ALERTMANAGER_EXTERNAL_URL:-http://127.0.0.1:9093}" \
      --web.listen-address=:9093 "$@"
    ;;
  *) exec "$@" ;;
esac
