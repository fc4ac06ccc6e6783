"""Silences: quiet an alert in the stack's Alertmanager for a while, with why.

Three operations of the table (``stackdeck silence add | expire | list``):

- ``silence`` creates one (``alertname`` plus label matchers, a duration of
  1 minute to 7 days, a comment), ``createdBy`` the operator
  (``user@host``, and the SSH client when there is one);
- ``silence-expire`` ends one now;
- ``silence-list`` shows the active and pending ones, the soonest to end first.

They change Alertmanager, not the stack: no deploy lock, but refused in
read-only mode, and audited (the end line names the matchers, until when,
the comment and the silence's id).

A deploy silences what starting a colour is expected to trip
(:func:`silence_expected`): the alerts of the new colour, for the deploy's
length, expired when it ends. That one never fails or slows the deploy: a
short timeout, a warning, and the deploy goes on.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from console.core.models import OpEvent, Silence
from console.core.ops.context import OpContext
from console.core.ops.errors import BadInput, OpFailed
from console.core.ops.events import Emitter
from console.core.ops.notify import alertmanager_url
from console.core.ops.progress import Progress
from console.core.ops.table import NoParams, SilenceExpireParams, SilenceParams
from console.core.prom import AlertmanagerClient, PromError, current_silences, silence_model

__all__ = [
    "DEPLOY_ALERTS",
    "DeploySilence",
    "created_by",
    "rule_names",
    "run_silence",
    "run_silence_expire",
    "run_silence_list",
    "silence_expected",
    "silence_model",
    "validate_silence",
]

RULES_FILE = Path("compose") / "monitoring" / "rules" / "alerts.yml"
"""The stack's alert rules, relative to the repository."""
CONSOLE_ALERTS = ("StackOperation",)
"""Alerts the console itself posts (console/core/ops/notify.py)."""
DEPLOY_ALERTS = ("ServingColourDown", "HighAPIResponseTime", "HighAPIErrorRate")
"""What a colour that starts, migrates and takes traffic is expected to trip
(compose/monitoring/rules/alerts.yml; each carries the ``colour`` label)."""
DEPLOY_MARGIN_S = 300.0
"""A deploy's silence lasts its health timeout and bake, plus this."""
DEPLOY_TIMEOUT_S = 3.0
"""Upper bound of one Alertmanager call made for a deploy."""

_RULE = re.compile(r"^\s*-\s*alert:\s*['\"]?([A-Za-z_][A-Za-z0-9_:]*)['\"]?\s*$", re.MULTILINE)


def rule_names(repo: Path) -> list[str] | None:
    """The alert rules' names in the stack's rules file (None: no file)."""
    try:
        text = (repo / RULES_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    return _RULE.findall(text)


def created_by(ctx: OpContext) -> str:
    """``alice@host`` (``alice@host from 10.0.0.5`` over SSH)."""
    op = ctx.operator
    who = f"{op.user}@{op.host}"
    return f"{who} from {op.ssh_client}" if op.ssh_client else who


def _url(ctx: OpContext) -> str:
    return (ctx.alertmanager_url or alertmanager_url(ctx.env, ctx.http_port)).rstrip("/")


def _where(ctx: OpContext) -> str:
    parts = urlsplit(_url(ctx))
    return parts.netloc.rpartition("@")[2] or _url(ctx)


def _client(ctx: OpContext, timeout: float) -> AlertmanagerClient:
    """The stack's Alertmanager, with the monitoring credential of its .env;
    :class:`OpFailed` when there is no credential."""
    from console.core.config import Settings

    password = ctx.env.get("MONITORING_PASSWORD")
    if not password:
        raise OpFailed(
            f"Alertmanager at {_where(ctx)}: no monitoring credential "
            "(MONITORING_PASSWORD in .env)",
            step="alertmanager",
        )
    settings = Settings.model_construct(
        alertmanager_url=_url(ctx),
        monitoring_user=ctx.env.get("MONITORING_USER") or "stackdeck",
        monitoring_password=SecretStr(password),
        request_timeout=timeout,
    )
    return AlertmanagerClient(settings)


def _failure(ctx: OpContext, exc: PromError) -> OpFailed:
    reason = str(exc).removeprefix("Alertmanager: ").removeprefix("Alertmanager")
    return OpFailed(ctx.redact(f"Alertmanager at {_where(ctx)} {reason}"), step="alertmanager")


def current(silences: Sequence[Mapping[str, Any]]) -> list[Silence]:
    """The active and pending silences, the soonest to end first."""
    return current_silences(silences)


def _until(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(s: Silence) -> str:
    """One line: matchers, until, by, comment, id."""
    pending = f" from {_until(s.starts_at)}" if s.state == "pending" else ""
    return f"{s.matchers}{pending} until {_until(s.ends_at)} by {s.created_by}: {s.comment} (id {s.id})"


# --- the operations ---------------------------------------------------------------


async def validate_silence(ctx: OpContext, params: SilenceParams) -> SilenceParams:
    """The alert is one of the stack's rules (or the console's own notice)."""
    names = rule_names(ctx.repo)
    if names is not None:
        known = [*names, *CONSOLE_ALERTS]
        if params.alertname not in known:
            raise BadInput(
                f"no alert rule named {params.alertname}; the stack's alerts: {', '.join(known)}",
                field="alertname",
            )
    return params


async def run_silence(
    ctx: OpContext, params: SilenceParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("silence", ctx.redact)
    labels = params.labels()
    shown = ", ".join(f"{k}={v}" for k, v in labels.items())
    ends = datetime.now(UTC) + timedelta(seconds=params.seconds)
    by = created_by(ctx)
    yield ev.start("silence", f"silencing {shown} for {params.duration} in Alertmanager")
    am = _client(ctx, ctx.http_timeout)
    try:
        silence_id = await am.create_silence(
            labels, ends_at=ends, created_by=by, comment=params.comment
        )
    except PromError as exc:
        raise _failure(ctx, exc) from None
    finally:
        await am.aclose()
    yield ev.done(
        f"silenced {shown} until {_until(ends)} by {by}: {params.comment} (id {silence_id})",
        silence_id=silence_id,
        matchers=labels,
        ends_at=ends.isoformat(),
        created_by=by,
        comment=params.comment,
    )


async def run_silence_expire(
    ctx: OpContext, params: SilenceExpireParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("silence-expire", ctx.redact)
    am = _client(ctx, ctx.http_timeout)
    try:
        known = {str(s.get("id")): s for s in await am.silences()}
        raw = known.get(params.silence_id)
        if raw is None:
            raise BadInput(
                f"Alertmanager has no silence {params.silence_id} (stackdeck silence list)",
                field="silence_id",
            )
        silence = silence_model(raw)
        if silence is None:
            raise OpFailed(f"Alertmanager's silence {params.silence_id} has unreadable times")
        if silence.state == "expired":
            yield ev.done(
                f"silence {silence.id} ({silence.matchers}) had already ended at {_until(silence.ends_at)}",
                silence_id=silence.id,
            )
            return
        await am.expire_silence(params.silence_id)
    except PromError as exc:
        raise _failure(ctx, exc) from None
    finally:
        await am.aclose()
    yield ev.done(
        f"expired silence {silence.id} ({silence.matchers}, by {silence.created_by}: "
        f"{silence.comment}); it would have lasted until {_until(silence.ends_at)}",
        silence_id=silence.id,
        matchers=silence.matchers,
    )


async def run_silence_list(
    ctx: OpContext, params: NoParams, *, op_id: str = ""
) -> AsyncIterator[OpEvent]:
    ev = Emitter("silence-list", ctx.redact)
    am = _client(ctx, ctx.http_timeout)
    try:
        silences = current(await am.silences())
    except PromError as exc:
        raise _failure(ctx, exc) from None
    finally:
        await am.aclose()
    for s in silences:
        yield ev.info("silence", describe(s), silence_id=s.id, state=s.state)
    yield ev.done(
        f"{len(silences)} active or pending silence{'s' if len(silences) != 1 else ''}",
        silences=[s.model_dump(mode="json") for s in silences],
    )


# --- a deploy's silence --------------------------------------------------------------


@dataclass
class DeploySilence:
    """The silence a deploy or rollback made for the colour it starts (or
    None: Alertmanager could not be reached, the deploy went on)."""

    ctx: OpContext
    step: str
    silence_id: str | None = None
    matchers: dict[str, str | list[str]] = field(default_factory=dict)
    _ended: bool = False

    async def expire(self, progress: Progress) -> None:
        """End the silence (once; a failure is a warning). Runs when the
        deploy ends however it ends, also when it is cancelled."""
        if self._ended or self.silence_id is None:
            return
        self._ended = True
        try:
            await asyncio.shield(_expire(self.ctx, self.silence_id))
        except (PromError, OpFailed, TimeoutError) as exc:
            progress.warn(
                self.step,
                f"could not expire silence {self.silence_id} ({_reason(self.ctx, exc)}): "
                "it ends by itself",
                silence_id=self.silence_id,
            )
            return
        progress.ok(self.step, f"expired silence {self.silence_id}", silence_id=self.silence_id)


def _reason(ctx: OpContext, exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"Alertmanager at {_where(ctx)} did not answer in {DEPLOY_TIMEOUT_S:g} s"
    if isinstance(exc, PromError):
        return str(_failure(ctx, exc))
    return str(exc)


async def _expire(ctx: OpContext, silence_id: str) -> None:
    am = _client(ctx, DEPLOY_TIMEOUT_S)
    try:
        await asyncio.wait_for(am.expire_silence(silence_id), DEPLOY_TIMEOUT_S + 1)
    finally:
        await am.aclose()


async def silence_expected(
    ctx: OpContext,
    progress: Progress,
    *,
    op: str,
    op_id: str,
    colour: str,
    version: str,
    seconds: float,
    step: str = "silence",
) -> DeploySilence:
    """Silence :data:`DEPLOY_ALERTS` for ``colour=<colour>`` for ``seconds``
    plus :data:`DEPLOY_MARGIN_S`; reports the id (or a warning: the deploy
    goes on without it)."""
    handle = DeploySilence(ctx, step)
    matchers: dict[str, str | list[str]] = {"alertname": list(DEPLOY_ALERTS), "colour": colour}
    handle.matchers = matchers
    ends = datetime.now(UTC) + timedelta(seconds=seconds + DEPLOY_MARGIN_S)
    comment = f"{op} {version} to {colour} (op {op_id})"
    try:
        if not ctx.env.get("MONITORING_PASSWORD"):
            raise OpFailed("no monitoring credential (MONITORING_PASSWORD in .env)")
        am = _client(ctx, DEPLOY_TIMEOUT_S)
        try:
            handle.silence_id = await asyncio.wait_for(
                am.create_silence(
                    matchers, ends_at=ends, created_by=created_by(ctx), comment=comment
                ),
                DEPLOY_TIMEOUT_S + 1,
            )
        finally:
            await am.aclose()
    except (PromError, OpFailed, TimeoutError) as exc:
        progress.warn(
            step,
            f"alerts of {colour} not silenced ({_reason(ctx, exc)}); the {op} goes on",
        )
        return handle
    progress.ok(
        step,
        f"silenced {', '.join(DEPLOY_ALERTS)} for colour={colour} until {_until(ends)} "
        f"(id {handle.silence_id}; expired when the {op} ends)",
        silence_id=handle.silence_id,
        ends_at=ends.isoformat(),
        alerts=list(DEPLOY_ALERTS),
        colour=colour,
    )
    return handle
