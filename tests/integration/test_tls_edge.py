"""TLS at nginx, the host-only operator paths and API rate limiting, on the
real stack: HTTPS on 127.0.0.1:HTTPS_PORT with the installed certificate,
modern protocols only, HSTS; a client that is not on the host (a short-lived
container on the stack's network, from the stack's own nginx image) is sent
to HTTPS, refused the operator's paths and throttled with 429 + Retry-After,
while the host keeps plain HTTP, every path, and no limit."""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from console.core.stack import published_ports
from console.core.tls import read_certificate
from tests.integration.ops.ops_helpers import cli_env, run_cli
from tests.unit.core.test_tls import make_cert


def https_port(stack: Any) -> int:
    return published_ports(stack.env, stack.http_port)["HTTPS_PORT"]


def cert_path(stack: Any) -> Path:
    return Path(stack.state_dir) / "tls" / "cert.pem"


def tls_context(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that accepts any certificate and speaks only ``version``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
            if version < ssl.TLSVersion.TLSv1_2:
                # let this client offer the old protocol: the refusal must be the server's
                ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def handshake(stack: Any, ctx: ssl.SSLContext) -> tuple[str | None, bytes | None]:
    with (
        socket.create_connection(("127.0.0.1", https_port(stack)), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version(), tls.getpeercert(binary_form=True)


def from_the_network(stack: Any, script: str, timeout: float = 60) -> str:
    """Run ``script`` (sh) in a throw-away container on the stack's network,
    from the stack's own nginx image (has curl; nothing is pulled)."""
    r = subprocess.run(
        [
            "docker", "run", "--rm", "--network", f"{stack.name}_default",
            "--entrypoint", "sh", f"{stack.image_prefix}-nginx:latest", "-c", script,
        ],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_https_serves_the_installed_certificate(stack: Any) -> None:
    version, der = handshake(stack, tls_context())
    assert version in ("TLSv1.2", "TLSv1.3")
    installed = x509.load_pem_x509_certificate(cert_path(stack).read_bytes())
    assert der == installed.public_bytes(Encoding.DER)
    served = x509.load_der_x509_certificate(der)
    now = datetime.now(UTC)
    assert served.not_valid_before_utc <= now < served.not_valid_after_utc
    info = read_certificate(cert_path(stack))
    assert info.subject == served.subject.rfc4514_string() and info.subject.startswith("CN=")
    if (cert_path(stack).parent / "generated").exists():
        # the self-signed one verifies as itself for localhost and 127.0.0.1
        ctx = ssl.create_default_context(cafile=str(cert_path(stack)))
        assert handshake(stack, ctx)[0] in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_protocols_are_refused_by_the_server(stack: Any, version: str) -> None:
    with pytest.raises(ssl.SSLError) as err:
        handshake(stack, tls_context(ssl.TLSVersion[version]))
    # an alert nginx sent: the client did offer the protocol
    assert err.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", err.value


@pytest.mark.parametrize(("version", "name"), [("TLSv1_2", "TLSv1.2"), ("TLSv1_3", "TLSv1.3")])
def test_modern_protocols_are_accepted(stack: Any, version: str, name: str) -> None:
    assert handshake(stack, tls_context(ssl.TLSVersion[version]))[0] == name


def test_hsts_on_https_only_and_the_host_keeps_plain_http(stack: Any) -> None:
    with httpx.Client(verify=False, timeout=10) as c:
        r = c.get(f"https://127.0.0.1:{https_port(stack)}/api/health")
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        # the host: plain HTTP answers (the runbook's curl lines), every path
        for path in ("/api/health", "/api/health/database", "/direct/blue/api/health",
                     "/metrics", "/openapi.json", "/nginx-health"):  # fmt: skip
            r = c.get(f"{stack.base_url}{path}")
            assert r.status_code == 200, (path, r.status_code)
            assert "strict-transport-security" not in r.headers, path


def test_a_client_off_the_host_is_redirected_and_refused_the_operator_paths(stack: Any) -> None:
    paths = ["/api/health", "/direct/blue/api/health", "/direct/green/api/health", "/metrics",
             "/openapi.json", "/api/docs", "/docs", "/direct/blue/api/ws/prices"]  # fmt: skip
    script = "; ".join(
        f"curl -s -o /dev/null -w '{p} http %{{http_code}} %{{redirect_url}}\\n' http://nginx{p}; "
        f"curl -sk -o /dev/null -w '{p} https %{{http_code}}\\n' https://nginx{p}"
        for p in map(shlex.quote, paths)
    )
    seen = {}
    for line in from_the_network(stack, script).splitlines():
        path, scheme, code, *rest = line.split()
        seen[path, scheme] = (code, rest)
    for p in paths:
        code, location = seen[p, "http"]
        assert code == "301", (p, code)
        assert location == [f"https://nginx:{https_port(stack)}{p}"] or (
            https_port(stack) == 443 and location == [f"https://nginx{p}"]
        ), location
    assert seen["/api/health", "https"][0] == "200"
    for p in paths[1:]:
        assert seen[p, "https"][0] == "403", (p, seen[p, "https"])


def test_the_host_is_not_rate_limited(stack: Any) -> None:
    with httpx.Client(timeout=10) as c:
        codes = [c.get(f"{stack.base_url}/api/health").status_code for _ in range(60)]
    assert codes == [200] * 60


def test_rate_limit_answers_429_with_retry_after_off_the_host(stack: Any) -> None:
    # 60 requests on one connection, as fast as curl sends them: the burst (20)
    # and the rate (10/s) let about 20 through, the rest are 429
    urls = " ".join(["https://nginx/api/health"] * 60)
    out = from_the_network(
        stack, f"curl -sk -w '%{{stderr}}%{{http_code}} %header{{retry-after}}\\n' {urls} 2>&1 >/dev/null"
    )  # fmt: skip
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert len(lines) == 60, out
    limited = [line for line in lines if line[0] == "429"]
    passed = [line for line in lines if line[0] == "200"]
    assert len(limited) + len(passed) == 60, out
    assert 20 <= len(limited) <= 59, out
    assert all(line[1:] == ["1"] for line in limited), limited[:3]


def test_preflight_checks_the_certificate_expiry(stack: Any, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    cases = {
        "installed": (None, "ok"),
        "one-day": (make_cert(tmp_path / "day.pem", now - timedelta(hours=1), now + timedelta(days=1)), "warn"),
        "expired": (make_cert(tmp_path / "old.pem", now - timedelta(days=9), now - timedelta(days=2)), "fail"),
    }  # fmt: skip
    for label, (path, status) in cases.items():
        env = cli_env(stack)
        if path is not None:
            env = {**env, "STACKDECK_TLS_CERT_FILE": str(path)}
        r = run_cli(stack, "preflight", env=env)
        tls = [e for e in r.events if e.get("step") == "tls"]
        assert len(tls) == 1, (label, r.text())
        assert tls[0]["status"] == status, (label, tls[0])
        if label == "one-day":
            assert tls[0]["data"]["days_left"] in (0, 1), tls[0]
            assert "renew" in tls[0]["message"]
        if label == "expired":
            assert r.rc != 0 and "tls" in r.final["message"], r.text()


def test_tls_sh_refuses_bad_operator_files_and_installs_nothing(stack: Any, tmp_path: Path) -> None:
    def pair(name: str) -> tuple[Path, Path]:
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return cert, key

    (a, a_key), (_, b_key) = pair("a"), pair("b")
    before = cert_path(stack).read_bytes()
    cases = [
        (a, b_key, "does not match"),
        (tmp_path / "none.pem", a_key, "no such readable file"),
        (a_key, a_key, "is not a PEM certificate"),
        (a, "", "set both TLS_CERT_FILE and TLS_KEY_FILE"),
    ]
    for cert, key, expected in cases:
        r = subprocess.run(
            ["bash", str(stack.repo / "scripts" / "tls.sh")],
            env=stack.proc_env(TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key)),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 1, (expected, r.stderr)
        assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "PRIVATE KEY" not in r.stdout + r.stderr
    assert cert_path(stack).read_bytes() == before
