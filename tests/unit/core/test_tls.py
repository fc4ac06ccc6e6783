"""nginx's certificate: days left, the verdict preflight gives, and reading
the file (cryptography builds the certificates here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from console.core.tls import CertificateError, days_left, expiry_verdict, read_certificate

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def make_cert(path: Path, not_before: datetime, not_after: datetime, cn: str = "edge.test") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (timedelta(days=365), 365),
        (timedelta(days=30), 30),
        (timedelta(days=29, hours=23), 29),
        (timedelta(hours=23), 0),
        (timedelta(seconds=1), 0),
        (timedelta(seconds=-1), -1),
        (timedelta(days=-3), -3),
    ],
)
def test_days_left_counts_whole_days_down(after: timedelta, expected: int) -> None:
    assert days_left(NOW + after, NOW) == expected


@pytest.mark.parametrize(
    ("left", "verdict"), [(365, "ok"), (30, "ok"), (29, "warn"), (0, "warn"), (-1, "expired")]
)
def test_expiry_verdict_warns_under_30_days_and_fails_once_expired(left: int, verdict: str) -> None:
    assert expiry_verdict(left) == verdict


def test_read_certificate_gives_subject_and_validity(tmp_path: Path) -> None:
    path = make_cert(tmp_path / "cert.pem", NOW - timedelta(days=1), NOW + timedelta(days=1))
    info = read_certificate(path)
    assert info.subject == "CN=edge.test"
    assert info.self_signed
    assert info.not_after == NOW + timedelta(days=1)
    assert days_left(info.not_after, NOW) == 1
    assert expiry_verdict(days_left(info.not_after, NOW)) == "warn"


def test_read_certificate_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=r"no certificate at .*scripts/setup\.sh"):
        read_certificate(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match="is not a PEM certificate"):
        read_certificate(junk)


@pytest.mark.parametrize(
    ("left", "shown"),
    [(364, "TLS cert 364 d left"), (0, "TLS cert 0 d left"), (-1, "TLS cert expired")],
)
def test_the_health_panel_title_shows_the_days_left(left: int, shown: str) -> None:
    from console.core.models import HealthSnapshot
    from console.ui.panels.health import HealthPanel

    panel = HealthPanel()
    assert panel.title_detail(HealthSnapshot(taken_at=NOW, tls_days_left=left)) == shown
    assert panel.title_detail(HealthSnapshot(taken_at=NOW)) == ""


def test_reading_a_certificate_leaves_cryptography_out_of_the_console(tmp_path: Path) -> None:
    """The console reads the date in every Health poll's process: importing
    ``cryptography`` for it cost 8 MiB of RSS (docs/PERFORMANCE.md, issue 15)."""
    import subprocess
    import sys

    path = make_cert(tmp_path / "cert.pem", NOW - timedelta(days=1), NOW + timedelta(days=400))
    code = (
        "import sys; from pathlib import Path\n"
        "import console.ui.app, console.core.sources.health\n"
        "from console.core.tls import read_certificate\n"
        f"info = read_certificate(Path({str(path)!r}))\n"
        "print(info.not_after.isoformat(), 'cryptography' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == [(NOW + timedelta(days=400)).isoformat(), "False"]


def test_read_certificate_without_openssl_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_cert(tmp_path / "cert.pem", NOW - timedelta(days=1), NOW + timedelta(days=1))
    monkeypatch.setenv("PATH", str(tmp_path))  # no openssl there
    with pytest.raises(CertificateError, match="install the Debian package openssl"):
        read_certificate(path)
