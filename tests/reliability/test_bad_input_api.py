"""Bad input to the API through nginx: a bounded schemathesis pass over the
OpenAPI spec, oversized bodies, and SQL-looking text in every parameter.

Each must get a clear 4xx (never a 5xx, never a hang) and change nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Stack
from tests.reliability._harness import REPO, Figure, pg_query, record

pytestmark = [pytest.mark.stack, pytest.mark.destructive]

SQL_PAYLOADS = [
    "' OR '1'='1",
    "AAPL'; DROP TABLE prices; --",
    'AAPL" OR 1=1 --',
    "1; SELECT pg_sleep(10) --",
    "AAPL' UNION SELECT username, password_hash FROM users --",
    "%27%20OR%201%3D1",
    "$$; COPY users TO '/tmp/x'; $$",
]

LEAK_MARKERS = (
    "argon2",
    "syntax error",
    "asyncpg",
    "psycopg",
    "sqlalchemy",
    "traceback",
    "pg_catalog",
)

MAX_EXAMPLES = int(os.environ.get("STACKDECK_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def api(stack: Stack) -> httpx.Client:
    with httpx.Client(base_url=stack.base_url, timeout=20) as client:
        yield client


SPEC_PATHS = ("/openapi.json", "/api/openapi.json")


def _served_spec(api: httpx.Client) -> tuple[str, dict[str, Any]] | None:
    for path in SPEC_PATHS:
        r = api.get(path)
        if r.status_code == 200 and "paths" in r.text:
            return path, dict(r.json())
    return None


@pytest.fixture(scope="module")
def spec_file(api: httpx.Client, stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenAPI spec: the one nginx serves, else the one the API's own code
    generates (same routes, same models), so the fuzz runs either way; whether
    it is served is a test of its own."""
    served = _served_spec(api)
    if served is not None:
        spec = served[1]
    else:
        # generated inside the serving backend container: its libraries, its code
        code = (
            "import json;from platform_services.api.main import create_app;"
            "from platform_services.settings import Settings;"
            "print(json.dumps(create_app(Settings(enable_docs=True)).openapi()))"
        )
        colour = stack.env.get("ACTIVE_COLOUR", "blue")
        out = subprocess.run(
            ["docker", "exec", stack.container(f"backend_{colour}"), "python3", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        spec = json.loads(out.strip().splitlines()[-1])
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def spec(spec_file: Path) -> dict[str, Any]:
    return dict(json.loads(spec_file.read_text(encoding="utf-8")))


def test_openapi_spec_served_through_nginx(api: httpx.Client) -> None:
    served = _served_spec(api)
    assert served is not None and served[0] == "/openapi.json", (
        f"no OpenAPI spec at /openapi.json through nginx (served: {served[0] if served else 'none'})"
    )


# Parameters the API reads that a spec must declare (a fuzzer only tries what is declared).
READ_PARAMETERS = {("get", "/api/stocks/prices"): {"symbols"}}


def test_openapi_documents_every_parameter(spec: dict[str, Any]) -> None:
    missing = {}
    for (method, path), names in READ_PARAMETERS.items():
        op = spec["paths"][path][method]
        declared = {p["name"] for p in op.get("parameters", [])}
        if names - declared:
            missing[f"{method.upper()} {path}"] = sorted(names - declared)
    assert not missing, f"parameters read by the API but absent from the OpenAPI spec: {missing}"


def _fingerprint(stack: Stack) -> dict[str, Any]:
    """What bad input must never change: the tables and the users."""
    tables = pg_query(
        stack.pg_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    users = pg_query(
        stack.pg_dsn, "SELECT username, password_hash, role FROM users ORDER BY username"
    )
    return {"tables": [t["tablename"] for t in tables], "users": [tuple(u) for u in users]}


def _schemathesis(
    stack: Stack, spec_file: Path, report: Path, checks: str
) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(spec_file),
        "--url",
        stack.base_url,
        "--checks",
        checks,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "20250101",
        "--workers",
        "2",
        "--request-timeout",
        "15",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=420, cwd=REPO, env=dict(os.environ)
    )


def _summary(out: str) -> str:
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    keep = [
        ln
        for ln in lines
        if ln.startswith(("❌ ST", "❌ ", "✅", "Test cases:")) or "generated" in ln
    ]
    return "; ".join(keep[-6:])[:300]


def test_schemathesis_fuzz_no_5xx_no_schema_violation(
    stack: Stack, spec_file: Path, tmp_path: Path
) -> None:
    """No 5xx, bodies and content types as the spec says (the anonymous
    admin route is fuzzed too: it must refuse, not fail)."""
    before = _fingerprint(stack)
    proc = _schemathesis(
        stack,
        spec_file,
        tmp_path / "fuzz.xml",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
    )
    out = proc.stdout + proc.stderr
    tail = "\n".join(out.splitlines()[-80:])
    record(
        Figure(
            fault="API fuzz: schemathesis (no 5xx, schema, content type)",
            operator_saw=f"exit {proc.returncode}",
            notes=_summary(out),
            extra={"max_examples": MAX_EXAMPLES, "passed": proc.returncode == 0},
        )
    )
    assert "No module named" not in out, tail
    assert proc.returncode == 0, f"schemathesis found problems (exit {proc.returncode}):\n{tail}"
    assert _fingerprint(stack) == before


def test_schemathesis_every_status_is_documented(
    stack: Stack, spec_file: Path, tmp_path: Path
) -> None:
    """Every status the API answers (401, 422, 429, 503, ...) is in the spec, so
    clients and the fuzzer know the error contract."""
    proc = _schemathesis(stack, spec_file, tmp_path / "status.xml", "status_code_conformance")
    out = proc.stdout + proc.stderr
    record(
        Figure(
            fault="API fuzz: schemathesis (documented status codes)",
            operator_saw=f"exit {proc.returncode}",
            notes=_summary(out),
            extra={"max_examples": MAX_EXAMPLES, "passed": proc.returncode == 0},
        )
    )
    undocumented = sorted(
        {
            ln.strip()
            for ln in out.splitlines()
            if ln.strip().startswith(("Received:", "Documented:"))
        }
        | {ln.strip("_ ").strip() for ln in out.splitlines() if ln.startswith("____")}
    )
    assert proc.returncode == 0, "undocumented status codes:\n" + "\n".join(undocumented)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], bool]]:
    ops = []
    for path, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = list(item.get("parameters", [])) + list(op.get("parameters", []))
            declared = {p.get("name") for p in params}
            for name in sorted(READ_PARAMETERS.get((method, path), set()) - declared):
                params.append({"name": name, "in": "query"})
            has_body = "requestBody" in op
            ops.append((method.upper(), path, params, has_body))
    return ops


def _body_fields(spec: dict[str, Any], path: str, method: str) -> list[str]:
    op = spec["paths"][path][method.lower()]
    content = (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec.get("components", {}).get("schemas", {}).get(name, {})
    return list((schema.get("properties") or {}).keys())


def test_sql_looking_input_in_every_parameter(
    stack: Stack, api: httpx.Client, spec: dict[str, Any]
) -> None:
    before = _fingerprint(stack)
    problems: list[str] = []
    sent = 0
    for method, path, params, has_body in _operations(spec):
        if path == "/api/cache/clear":
            continue  # an admin write; covered anonymously below
        for payload in SQL_PAYLOADS:
            url = path
            query: dict[str, str] = {}
            for p in params:
                if p.get("in") == "path":
                    url = url.replace(
                        "{" + p["name"] + "}", httpx.URL(path="/" + payload).raw_path.decode()[1:]
                    )
                elif p.get("in") == "query":
                    query[p["name"]] = payload
            body = None
            if has_body:
                body = {f: payload for f in _body_fields(spec, path, method)} or {"x": payload}
            if not query and body is None and "{" not in path:
                continue
            r = api.request(method, url, params=query or None, json=body)
            sent += 1
            text = r.text.lower()
            if r.status_code >= 500:
                problems.append(f"{method} {path} {payload!r}: {r.status_code} {r.text[:120]}")
            if any(m in text for m in LEAK_MARKERS):
                problems.append(
                    f"{method} {path} {payload!r}: response leaks internals: {r.text[:160]}"
                )
    r = api.post("/api/cache/clear", json={"prefix": SQL_PAYLOADS[1]})
    assert r.status_code == 401
    assert sent > 0, "the spec has no parameter to try"
    assert not problems, "\n".join(problems)
    assert _fingerprint(stack) == before, "SQL-looking input changed the database"


@pytest.mark.parametrize(
    "what,kwargs",
    [
        (
            "2 MiB JSON login",
            {"content": b'{"username":"' + b"a" * (2 * 1024 * 1024) + b'","password":"x"}'},
        ),
        (
            "60 KiB username (under nginx limit)",
            {"json": {"username": "a" * 60_000, "password": "x"}},
        ),
        (
            "5000 symbols",
            {
                "params": {"symbols": ",".join(["AAPL"] * 5000)},
                "method": "GET",
                "path": "/api/stocks/prices",
            },
        ),
        (
            "60 KB query string",
            {"params": {"symbols": "A" * 60000}, "method": "GET", "path": "/api/stocks/prices"},
        ),
        ("deep JSON", {"content": b"[" * 50_000 + b"]" * 50_000}),
    ],
)
def test_oversized_requests_get_a_clear_4xx(
    api: httpx.Client, stack: Stack, what: str, kwargs: dict[str, Any]
) -> None:
    before = _fingerprint(stack)
    method = kwargs.pop("method", "POST")
    path = kwargs.pop("path", "/api/auth/login")
    headers = {"content-type": "application/json"} if "content" in kwargs else None
    r = api.request(method, path, headers=headers, **kwargs)
    assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text[:200]}"
    assert r.status_code != 404, what
    assert _fingerprint(stack) == before


def test_chunked_oversized_body_refused(api: httpx.Client) -> None:
    def chunks():
        for _ in range(64):
            yield b"x" * 65536

    r = api.post("/api/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.status_code


def test_unicode_and_control_characters_in_symbols(api: httpx.Client) -> None:
    for symbols in ["A\x00APL", "AAPL\r\nX-Injected: 1", "ÄÖÜ", "🚀", "\u202eLPAA", " ", "a" * 300]:
        r = api.get("/api/stocks/prices", params={"symbols": symbols})
        assert 400 <= r.status_code < 500, f"{symbols!r}: {r.status_code} {r.text[:120]}"
        assert "x-injected" not in r.headers
        assert json.loads(r.text), "error body must be JSON"
