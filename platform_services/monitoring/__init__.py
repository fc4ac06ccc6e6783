"""The stack's monitoring side: configuration rendered from ``.env`` for
Prometheus and Alertmanager (render.py), the stack exporter (per-container CPU
and memory, serving colour, last backup: stack_exporter.py) and the local alert
sink standing in for a team's webhook and mailbox (alert_sink.py).

These run in the ``monitoring`` image (compose/images/monitoring), which holds
Debian's Prometheus, Alertmanager and exporters.
"""
