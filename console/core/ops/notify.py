"""Tell the team about operations, through the stack's Alertmanager.

Deploys, rollbacks, emergency-limit changes, and any operation that changes
the stack and does not end ``ok``, are posted to Alertmanager's
``/api/v2/alerts`` as an informational alert (``alertname="StackOperation"``,
``severity`` ``info``, or ``warning`` when it failed), with who ran it and
from where. Alertmanager routes it like any alert: the team's webhook, Slack
and e-mail (README, "Monitoring"). The alert ends by itself after
:data:`SHOW_FOR_S`, so a notification is sent once, then its resolution.

On a swarm stack (the operation ran in ``swarm`` mode) the notice goes to
the swarm's Alertmanager instead, published on the host's
``127.0.0.1:SWARM_ALERTMANAGER_PORT``, with the swarm's secret
``monitoring_password`` (:func:`console.core.config.swarm_monitoring`, as the
console's settings find them).

Sending never holds up or fails the operation: it runs in a thread of its
own, with a short timeout, and a failure (Alertmanager away, the secret
unreadable) is only logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from console.core.ops.audit import redact_params
from console.core.stack import monitoring_ports

__all__ = [
    "NOTIFIED_OPS",
    "SHOW_FOR_S",
    "alertmanager_url",
    "notice_target",
    "operation_alert",
    "operation_finished",
]

log = logging.getLogger(__name__)

NOTIFIED_OPS = frozenset({"deploy", "rollback", "emergency-limit"})
"""Notified whatever their result; every other writing operation only when it
does not end ``ok``."""
NOT_NOTIFIED = frozenset({"silence", "silence-expire"})
"""Never notified: they act on Alertmanager itself (which keeps who silenced
what), and their failure is mostly Alertmanager being away."""
SHOW_FOR_S = 300
TIMEOUT_S = 3.0


NOTICE_THREAD = "op-notice"
"""The name of the thread that sends an operation's notice (a quit waits for it)."""


def alertmanager_url(env: Mapping[str, str], http_port: int) -> str:
    """Alertmanager on 127.0.0.1: ``ALERTMANAGER_PORT``, or derived from
    ``HTTP_PORT`` (``console/core/stack.facts``, as scripts/lib.sh)."""
    return f"http://127.0.0.1:{monitoring_ports(env, http_port)['ALERTMANAGER_PORT']}"


def notice_target(ctx: Any, mode: str | None = None) -> tuple[str, tuple[str, str]] | None:
    """Where an operation's notice goes: ``(Alertmanager URL, basic auth)``,
    or None when this stack has no credential to send it with (logged on a
    swarm, where the secret should be there). ``mode``: the operation's
    resolved mode (default ``ctx.mode``)."""
    env: Mapping[str, str] = ctx.env
    user = env.get("MONITORING_USER") or "stackdeck"
    if (mode or getattr(ctx, "mode", "compose")) == "swarm":
        from console.core.config import swarm_monitoring

        found = swarm_monitoring(env, ctx.stack)
        if found.password is None or found.alertmanager_url is None:
            log.warning(
                "operation notice not sent: the swarm's monitoring credential: %s",
                found.error or "SWARM_ALERTMANAGER_PORT is not a port",
            )
            return None
        return found.alertmanager_url, (user, found.password)
    # A compose stack without monitoring (no credential in its .env) has no
    # Alertmanager to tell.
    password = env.get("MONITORING_PASSWORD")
    if not password:
        return None
    return alertmanager_url(env, ctx.http_port), (user, password)


def should_notify(name: str, writes: bool, result: str) -> bool:
    if name in NOT_NOTIFIED:
        return False
    return name in NOTIFIED_OPS or (writes and result != "ok")


def operation_alert(
    *,
    stack: str,
    name: str,
    op_id: str,
    result: str,
    message: str,
    params: Mapping[str, Any],
    operator: Mapping[str, Any],
    secrets: list[str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Alertmanager alert for one finished operation (pure)."""
    now = now or datetime.now(UTC)
    user = str(operator.get("user") or "unknown")
    where = str(operator.get("ssh_client") or "local")
    safe = redact_params(params, secrets)
    detail = ", ".join(f"{k}={v}" for k, v in sorted(safe.items()) if v not in (None, "", False))
    failed = result != "ok"
    why = str(safe.get("reason") or "").strip() if name == "rollback" else ""
    if why:
        message = f"{message} (reason: {why})".strip()
    return {
        "labels": {
            "alertname": "StackOperation",
            "severity": "warning" if failed else "info",
            "service": "stackdeck",
            "stack": stack,
            "op": name,
            "result": result,
            "operator": user,
            "from": where,
            "op_id": op_id,
        },
        "annotations": {
            "summary": f"{name} {'FAILED' if failed else result} by {user} from {where}: {message}".strip(),
            "params": detail,
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(seconds=SHOW_FOR_S)).isoformat(),
    }


def _post(url: str, auth: tuple[str, str], alert: dict[str, Any]) -> None:
    try:
        r = httpx.post(f"{url}/api/v2/alerts", json=[alert], auth=auth, timeout=TIMEOUT_S)
        if r.status_code >= 300:
            log.warning("operation notice: Alertmanager answered %s", r.status_code)
    except httpx.HTTPError as exc:
        log.warning("operation notice not sent (%s)", exc)


def operation_finished(
    ctx: Any,
    name: str,
    writes: bool,
    op_id: str,
    result: str,
    message: str,
    params: Mapping[str, Any],
    mode: str | None = None,
) -> threading.Thread | None:
    """Post the notice of a finished operation in the background; returns the
    thread (not a daemon: a CLI run waits up to TIMEOUT_S for it at exit), or
    None when this operation is not notified. ``mode``: the mode the
    operation ran in (default ``ctx.mode``)."""
    if not should_notify(name, writes, result):
        return None
    try:
        target = notice_target(ctx, mode)
        if target is None:
            return None
        return _start(ctx, target, name, op_id, result, message, params)
    except Exception as exc:  # a notice must never break the operation's ending
        log.warning("operation notice not sent (%s: %s)", type(exc).__name__, exc)
        return None


def _start(
    ctx: Any,
    target: tuple[str, tuple[str, str]],
    name: str,
    op_id: str,
    result: str,
    message: str,
    params: Mapping[str, Any],
) -> threading.Thread:
    alert = operation_alert(
        stack=ctx.stack,
        name=name,
        op_id=op_id,
        result=result,
        message=ctx.redact(message),
        params=params,
        operator=ctx.operator.as_dict(),
        secrets=list(ctx.secrets),
    )
    url, auth = target
    t = threading.Thread(target=_post, args=(url, auth, alert), name=NOTICE_THREAD)
    t.start()
    return t
