"""Clients of the stack's Prometheus and Alertmanager HTTP APIs (async, httpx).

Both listen on 127.0.0.1 only and ask for the monitoring credential of the
stack's ``.env`` (``MONITORING_USER``/``MONITORING_PASSWORD``). Every call is
bounded by ``settings.request_timeout``; a failure raises :class:`PromError`
with an operator-readable reason (refused, timed out, 401, a PromQL error).

Pure helpers (:func:`parse_matrix`, :func:`parse_vector`) turn API answers
into plain tuples so the rest of the console never sees Prometheus' JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from console.core.config import Settings
from console.core.models import Silence

__all__ = [
    "AlertmanagerClient",
    "Labels",
    "PromClient",
    "PromError",
    "RangeSeries",
    "current_silences",
    "monitoring_configured",
    "parse_matrix",
    "parse_time",
    "parse_vector",
    "silence_body",
    "silence_model",
]

Labels = dict[str, str]
RangeSeries = tuple[Labels, list[tuple[float, float]]]
"""One series of a range query: its labels and (unix time, value) points."""


class PromError(Exception):
    """Prometheus or Alertmanager did not answer usefully; ``str()`` says why."""


def monitoring_configured(settings: Settings) -> str | None:
    """None when the console can ask the stack's monitoring; else why not."""
    if not settings.prometheus_url:
        return "no Prometheus configured (prometheus_url is empty)"
    if settings.monitoring_password is None or not settings.monitoring_password.get_secret_value():
        return "no monitoring credential (MONITORING_PASSWORD in .env)"
    return None


def _reason(exc: Exception, what: str) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"{what}: timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"{what}: not reachable (connection refused)"
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        if code == 401:
            return f"{what}: credential refused (MONITORING_PASSWORD in .env)"
        return f"{what}: HTTP {code}"
    return f"{what}: {type(exc).__name__}: {exc}"


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def parse_matrix(data: Mapping[str, Any]) -> list[RangeSeries]:
    """``resultType: matrix`` -> [(labels, [(t, v), ...]), ...]."""
    out: list[RangeSeries] = []
    for item in data.get("result") or []:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        points = [(float(t), _float(v)) for t, v in item.get("values") or []]
        out.append((labels, points))
    return out


def parse_vector(data: Mapping[str, Any]) -> list[tuple[Labels, float]]:
    """``resultType: vector`` (or scalar) -> [(labels, value), ...]."""
    if data.get("resultType") == "scalar":
        _t, v = data.get("result") or (0, "nan")
        return [({}, _float(v))]
    out = []
    for item in data.get("result") or []:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        _t, v = item.get("value") or (0, "nan")
        out.append((labels, _float(v)))
    return out


class _Client:
    what = "monitoring"

    def __init__(self, settings: Settings, base_url: str | None) -> None:
        self.settings = settings
        self.base_url = (base_url or "").rstrip("/")
        password = settings.monitoring_password
        self._auth = (
            (settings.monitoring_user, password.get_secret_value())
            if password is not None
            else None
        )
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                auth=self._auth,
                timeout=self.settings.request_timeout,
                trust_env=False,
            )
        return self._client

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.base_url:
            raise PromError(f"{self.what}: no URL configured")
        try:
            response = await self._http().request(method, path, **kwargs)
            if response.status_code == 400 and self.what == "Prometheus":
                body = _json(response)
                raise PromError(
                    f"Prometheus refused the query: {body.get('error') or response.text[:200]}"
                )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise PromError(_reason(exc, self.what)) from None
        return _json(response) if response.content else None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


class PromClient(_Client):
    """Prometheus' ``/api/v1`` (queries, rules with their alerts)."""

    what = "Prometheus"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.prometheus_url)

    async def _data(self, path: str, params: Mapping[str, Any]) -> Any:
        body = await self._request("GET", path, params=params)
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise PromError(f"Prometheus: {error or 'unexpected answer'}")
        return body.get("data")

    async def query(
        self, expr: str, at: datetime | float | None = None
    ) -> list[tuple[Labels, float]]:
        """An instant query."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = _ts(at)
        return parse_vector(await self._data("/api/v1/query", params))

    async def query_range(
        self, expr: str, start: datetime | float, end: datetime | float, step: float
    ) -> list[RangeSeries]:
        """A range query, ``step`` seconds apart."""
        params = {"query": expr, "start": _ts(start), "end": _ts(end), "step": max(1.0, step)}
        return parse_matrix(await self._data("/api/v1/query_range", params))

    async def rules(self) -> list[dict[str, Any]]:
        """The alerting rules with their active alerts (``/api/v1/rules?type=alert``)."""
        data = await self._data("/api/v1/rules", {"type": "alert"})
        return [
            rule for group in (data or {}).get("groups") or [] for rule in group.get("rules") or []
        ]


class AlertmanagerClient(_Client):
    """Alertmanager's ``/api/v2`` (alerts and silences)."""

    what = "Alertmanager"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.alertmanager_url)

    async def alerts(self) -> list[dict[str, Any]]:
        return list(await self._request("GET", "/api/v2/alerts") or [])

    async def silences(self) -> list[dict[str, Any]]:
        """Every silence Alertmanager knows (active, pending and expired)."""
        return list(await self._request("GET", "/api/v2/silences") or [])

    async def create_silence(
        self,
        matchers: Mapping[str, str | Sequence[str]],
        *,
        ends_at: datetime,
        created_by: str,
        comment: str,
        starts_at: datetime | None = None,
    ) -> str:
        """Silence the alerts whose labels equal ``matchers`` (a list of
        values: any one of them); returns its id."""
        body = silence_body(
            matchers, ends_at=ends_at, created_by=created_by, comment=comment, starts_at=starts_at
        )
        answer = await self._request("POST", "/api/v2/silences", json=body)
        silence_id = (answer or {}).get("silenceID") if isinstance(answer, dict) else None
        if not silence_id:
            raise PromError("Alertmanager: the silence was not created (no id in the answer)")
        return str(silence_id)

    async def expire_silence(self, silence_id: str) -> None:
        await self._request("DELETE", f"/api/v2/silence/{silence_id}")


def silence_body(
    matchers: Mapping[str, str | Sequence[str]],
    *,
    ends_at: datetime,
    created_by: str,
    comment: str,
    starts_at: datetime | None = None,
) -> dict[str, Any]:
    """The body of ``POST /api/v2/silences`` (pure): one equality matcher per
    label; a label given several values matches any one of them (an anchored
    regex of the escaped values, as Alertmanager anchors every regex)."""
    out = []
    for name, value in sorted(matchers.items()):
        if isinstance(value, str):
            out.append({"name": name, "value": value, "isRegex": False, "isEqual": True})
        else:
            values = sorted(set(value))
            if len(values) == 1:
                out.append({"name": name, "value": values[0], "isRegex": False, "isEqual": True})
            else:
                regex = "|".join(re.escape(v) for v in values)
                out.append({"name": name, "value": regex, "isRegex": True, "isEqual": True})
    return {
        "matchers": out,
        "startsAt": (starts_at or datetime.now(UTC)).isoformat(),
        "endsAt": ends_at.isoformat(),
        "createdBy": created_by,
        "comment": comment,
    }


def _ts(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def matchers_text(matchers: Sequence[Mapping[str, Any]]) -> str:
    """``alertname=HighCPUUsage, service=host`` from Alertmanager's matchers."""
    parts = []
    for m in matchers:
        op = (
            ("=~" if m.get("isRegex") else "=")
            if m.get("isEqual", True)
            else ("!~" if m.get("isRegex") else "!=")
        )
        parts.append(f"{m.get('name')}{op}{m.get('value')}")
    return ", ".join(parts)


def parse_time(value: Any) -> datetime | None:
    """Prometheus' and Alertmanager's RFC 3339 times (nanoseconds, ``Z``)."""
    if not value:
        return None
    text = str(value)
    m = re.match(r"^(.*?\.\d{1,6})\d*(.*)$", text)
    if m:
        text = m.group(1) + m.group(2)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def silence_model(item: Mapping[str, Any]) -> Silence | None:
    """One silence of ``GET /api/v2/silences`` as the console's model (None
    when its times cannot be read)."""
    starts, ends = parse_time(item.get("startsAt")), parse_time(item.get("endsAt"))
    if starts is None or ends is None:
        return None
    return Silence(
        id=str(item.get("id") or ""),
        matchers=matchers_text(item.get("matchers") or []),
        starts_at=starts,
        ends_at=ends,
        created_by=str(item.get("createdBy") or ""),
        comment=str(item.get("comment") or ""),
        state=str((item.get("status") or {}).get("state") or ""),
    )


def current_silences(items: Iterable[Mapping[str, Any]]) -> list[Silence]:
    """The active and pending silences, the soonest to end first."""
    models = [silence_model(item) for item in items]
    out = [m for m in models if m is not None and m.state in ("active", "pending")]
    out.sort(key=lambda m: (m.ends_at, m.id))
    return out
