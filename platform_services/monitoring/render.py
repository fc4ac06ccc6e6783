"""Render the monitoring configuration from the environment (``.env``).

Run by the monitoring image's entrypoint before each program starts::

    python3 -m platform_services.monitoring.render prometheus|alertmanager

The committed files under ``compose/monitoring`` (mounted at
``/etc/monitoring/site``) are the source: the rules exactly as the runbook
writes them, Prometheus's scrape configuration. What is rendered into
``/run/monitoring`` is only what must come from ``.env``:

- ``web.yml``: basic auth for the web UI and API, the bcrypt hash of
  ``MONITORING_PASSWORD`` (hashed here, with Debian's python3-bcrypt);
- ``password``: the same password in a file, for Prometheus's own requests
  (its self-scrape and its calls to Alertmanager);
- ``rules/*.yml``: the committed rules with the ``for`` durations named in
  ``ALERT_FOR_OVERRIDES`` (``HighCPUUsage=20s,ContainerHighCPU=15s``) replaced;
  empty (production): a byte-identical copy. Tests use it to see an alert fire
  in seconds without a second, diverging rules file;
- ``alertmanager.yml``: receivers (webhook, Slack-compatible webhook, email)
  from ``ALERT_*`` variables, grouping, repeat interval, inhibition.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SITE = Path(os.environ.get("MONITORING_SITE_DIR", "/etc/monitoring/site"))
OUT = Path(os.environ.get("MONITORING_RUN_DIR", "/run/monitoring"))

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")

DEFAULTS: dict[str, str] = {
    "MONITORING_USER": "stackdeck",
    "ALERT_WEBHOOK_URL": "http://alert_sink:9099/webhook/generic",
    "ALERT_SLACK_WEBHOOK_URL": "http://alert_sink:9099/webhook/slack",
    "ALERT_SLACK_CHANNEL": "#ops",
    "ALERT_EMAIL_TO": "oncall@stackdeck.invalid",
    "ALERT_SMTP_SMARTHOST": "alert_sink:2525",
    "ALERT_SMTP_FROM": "alertmanager@stackdeck.invalid",
    "ALERT_SMTP_USERNAME": "",
    "ALERT_SMTP_PASSWORD": "",
    "ALERT_SMTP_REQUIRE_TLS": "false",
    "ALERT_GROUP_WAIT": "30s",
    "ALERT_GROUP_INTERVAL": "5m",
    "ALERT_REPEAT_INTERVAL": "4h",
    "ALERT_FOR_OVERRIDES": "",
}

# A "down" alert of a service inhibits the latency and error-rate alerts of
# the same service (they are its consequence, not news).
INHIBIT_SOURCES = ["ServiceDown", "ServingColourDown"]
INHIBIT_TARGETS = ["HighAPIResponseTime", "HighAPIErrorRate"]


class ConfigError(ValueError):
    """A value from .env that cannot be used; the message names it."""


def setting(env: Mapping[str, str], key: str) -> str:
    value = env.get(key)
    return DEFAULTS.get(key, "") if value is None else value.strip()


def _duration(env: Mapping[str, str], key: str) -> str:
    value = setting(env, key)
    if not _DURATION.match(value):
        raise ConfigError(f"{key}={value!r} is not a duration (e.g. 30s, 5m, 4h)")
    return value


def parse_for_overrides(text: str) -> dict[str, str]:
    """``"A=20s, B=1m"`` -> ``{"A": "20s", "B": "1m"}``; bad pairs raise."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or not _DURATION.match(value):
            raise ConfigError(
                f"ALERT_FOR_OVERRIDES: {part!r} is not NAME=DURATION (e.g. HighCPUUsage=20s)"
            )
        out[name] = value
    return out


def override_for(
    rule_files: Mapping[str, dict[str, Any]], overrides: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The rule files with the named alerts' ``for`` replaced. An override
    naming no alert of the files is an error (a typo must not leave a test
    waiting for the runbook's five minutes)."""
    seen: set[str] = set()
    out: dict[str, dict[str, Any]] = {}
    for fname, doc in rule_files.items():
        groups = []
        for group in doc.get("groups", []):
            rules = []
            for rule in group.get("rules", []):
                name = rule.get("alert")
                if name in overrides:
                    rule = {**rule, "for": overrides[name]}
                    seen.add(name)
                rules.append(rule)
            groups.append({**group, "rules": rules})
        out[fname] = {**doc, "groups": groups}
    unknown = sorted(set(overrides) - seen)
    if unknown:
        raise ConfigError(f"ALERT_FOR_OVERRIDES names no alert of the rules: {', '.join(unknown)}")
    return out


def alertmanager_config(env: Mapping[str, str]) -> dict[str, Any]:
    """Alertmanager's configuration from ``ALERT_*`` values. An empty URL or
    address turns that channel off; at least one must stay."""
    receiver: dict[str, Any] = {"name": "team"}
    webhook = setting(env, "ALERT_WEBHOOK_URL")
    if webhook:
        receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
    slack = setting(env, "ALERT_SLACK_WEBHOOK_URL")
    if slack:
        receiver["slack_configs"] = [
            {
                "api_url": slack,
                "channel": setting(env, "ALERT_SLACK_CHANNEL"),
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                "text": (
                    "{{ range .Alerts }}{{ .Annotations.summary }}\n"
                    "{{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}\n{{ end }}"
                ),
            }
        ]
    email_to = setting(env, "ALERT_EMAIL_TO")
    if email_to:
        email: dict[str, Any] = {
            "to": email_to,
            "from": setting(env, "ALERT_SMTP_FROM"),
            "smarthost": setting(env, "ALERT_SMTP_SMARTHOST"),
            "require_tls": setting(env, "ALERT_SMTP_REQUIRE_TLS").lower() in ("1", "true", "yes"),
            "send_resolved": True,
            # A plain-text part beside Alertmanager's HTML: every label, readable in any client.
            "text": (
                "{{ range .Alerts }}[{{ .Status }}] {{ .Annotations.summary }}\n"
                "{{ range .Labels.SortedPairs }}  {{ .Name }} = {{ .Value }}\n{{ end }}"
                "  since {{ .StartsAt }}\n  {{ .GeneratorURL }}\n\n{{ end }}"
            ),
        }
        if setting(env, "ALERT_SMTP_USERNAME"):
            email["auth_username"] = setting(env, "ALERT_SMTP_USERNAME")
            email["auth_password"] = setting(env, "ALERT_SMTP_PASSWORD")
        receiver["email_configs"] = [email]
    if len(receiver) == 1:
        raise ConfigError(
            "no alert receiver: set ALERT_WEBHOOK_URL, ALERT_SLACK_WEBHOOK_URL or ALERT_EMAIL_TO"
        )
    return {
        "route": {
            "receiver": "team",
            "group_by": ["alertname", "service", "colour"],
            "group_wait": _duration(env, "ALERT_GROUP_WAIT"),
            "group_interval": _duration(env, "ALERT_GROUP_INTERVAL"),
            "repeat_interval": _duration(env, "ALERT_REPEAT_INTERVAL"),
            # Each operation's notice is a notification of its own, sent after
            # the group wait: batched with the previous deploy's it would wait
            # for the group interval (5 m).
            "routes": [
                {
                    "receiver": "team",
                    "matchers": ['alertname="StackOperation"'],
                    "group_by": ["alertname", "op_id"],
                }
            ],
        },
        "receivers": [receiver],
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname=~"{"|".join(INHIBIT_SOURCES)}"'],
                "target_matchers": [f'alertname=~"{"|".join(INHIBIT_TARGETS)}"'],
                "equal": ["service"],
            },
            # A critical alert inhibits the warning of the same name and service.
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "service"],
            },
        ],
    }


def prometheus_config(site: dict[str, Any], user: str, password_file: str) -> dict[str, Any]:
    """The committed prometheus.yml with the credential for Prometheus's own
    requests (self-scrape, Alertmanager) filled in: every scrape job or
    Alertmanager entry marked ``basic_auth: {}`` gets it."""

    def fill(entry: dict[str, Any]) -> dict[str, Any]:
        if "basic_auth" in entry:
            return {**entry, "basic_auth": {"username": user, "password_file": password_file}}
        return entry

    out = dict(site)
    out["scrape_configs"] = [fill(j) for j in site.get("scrape_configs", [])]
    alerting = dict(site.get("alerting") or {})
    alerting["alertmanagers"] = [fill(a) for a in alerting.get("alertmanagers", [])]
    out["alerting"] = alerting
    return out


def web_config(user: str, password: str) -> dict[str, Any]:
    if not password:
        raise ConfigError("MONITORING_PASSWORD is empty: scripts/setup.sh writes one into .env")
    import bcrypt  # Debian's python3-bcrypt, in the monitoring image

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    return {"basic_auth_users": {user: hashed}}


def _write_yaml(path: Path, doc: Any) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def monitoring_password(env: Mapping[str, str]) -> str:
    """MONITORING_PASSWORD, or on Swarm the file MONITORING_PASSWORD_FILE
    names (a Docker secret)."""
    password = env.get("MONITORING_PASSWORD", "")
    path = env.get("MONITORING_PASSWORD_FILE", "")
    if not password and path:
        try:
            password = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"MONITORING_PASSWORD_FILE={path} cannot be read: {exc}") from exc
    return password


def render(what: str, env: Mapping[str, str]) -> None:
    user = setting(env, "MONITORING_USER")
    password = monitoring_password(env)
    OUT.mkdir(parents=True, exist_ok=True)
    _write_yaml(OUT / "web.yml", web_config(user, password))
    pw = OUT / "password"
    pw.write_text(password, encoding="utf-8")
    pw.chmod(0o600)
    if what == "prometheus":
        site = _load_yaml(SITE / "prometheus.yml")
        _write_yaml(OUT / "prometheus.yml", prometheus_config(site, user, str(pw)))
        files = sorted((SITE / "rules").glob("*.yml"))
        overrides = parse_for_overrides(setting(env, "ALERT_FOR_OVERRIDES"))
        rules_out = OUT / "rules"
        shutil.rmtree(rules_out, ignore_errors=True)
        rules_out.mkdir(parents=True)
        if not overrides:
            for f in files:
                shutil.copyfile(f, rules_out / f.name)
            return
        docs = override_for({f.name: _load_yaml(f) for f in files}, overrides)
        for name, doc in docs.items():
            _write_yaml(rules_out / name, doc)
    elif what == "alertmanager":
        _write_yaml(OUT / "alertmanager.yml", alertmanager_config(env))
    elif what != "web":
        raise ConfigError(f"render what? prometheus, alertmanager or web (got {what!r})")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: python3 -m platform_services.monitoring.render prometheus|alertmanager|web",
            file=sys.stderr,
        )
        return 2
    try:
        render(argv[0], os.environ)
    except Exception as exc:  # a bad value or file: one line, no traceback
        print(f"monitoring config: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
