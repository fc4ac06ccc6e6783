"""nginx's certificate: whose it is, until when, and how many days are left.

``scripts/tls.sh`` installs it in ``<state_dir>/tls/cert.pem`` (the
operator's, or a self-signed one); ``stackdeck preflight`` warns when fewer
than :data:`WARN_DAYS` days are left and fails once it has expired; the
Health panel shows the days left. Parsing is OpenSSL's (``openssl x509``,
the Debian package set-up already needs for ``scripts/tls.sh``), in a child
process: importing ``cryptography`` would keep 8 MiB in every console for a
date read once (docs/PERFORMANCE.md, issue 15).
"""

from __future__ import annotations

import math
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from console.core.errors import StackdeckError

__all__ = [
    "WARN_DAYS",
    "CertInfo",
    "CertificateError",
    "days_left",
    "expiry_verdict",
    "read_certificate",
]

WARN_DAYS = 30
"""Fewer days left than this: preflight warns (a renewal is due)."""

Verdict = Literal["ok", "warn", "expired"]


class CertificateError(StackdeckError):
    """The certificate file is missing, unreadable or not a PEM certificate."""


@dataclass(frozen=True)
class CertInfo:
    """What an operator needs to know of a certificate."""

    path: Path
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after`` (rounded down; negative once expired:
    ``-1`` from the first second after it)."""
    return math.floor((not_after - now).total_seconds() / 86400)


def expiry_verdict(left: int, *, warn_days: int = WARN_DAYS) -> Verdict:
    """``expired`` below 0 days, ``warn`` below ``warn_days``, else ``ok``."""
    if left < 0:
        return "expired"
    if left < warn_days:
        return "warn"
    return "ok"


OPENSSL_TIMEOUT_S = 10.0
"""How long ``openssl x509`` may take to read one certificate."""


def read_certificate(path: Path) -> CertInfo:
    """The first certificate of a PEM file (the server's own, chain after it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"no certificate at {path}: scripts/setup.sh installs one (scripts/tls.sh)"
        ) from None
    except OSError as exc:
        raise CertificateError(f"cannot read the certificate {path}: {exc.strerror}") from None
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError(
            f"cannot read {path}: no openssl command (install the Debian package openssl)"
        )
    try:
        done = subprocess.run(
            [
                openssl,
                "x509",
                "-noout",
                "-nameopt",
                "RFC2253",
                "-subject",
                "-issuer",
                "-startdate",
                "-enddate",
            ],
            input=data,
            capture_output=True,
            timeout=OPENSSL_TIMEOUT_S,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertificateError(f"cannot read {path} with openssl: {exc}") from None
    fields = dict(
        line.split("=", 1)
        for line in done.stdout.decode(errors="replace").splitlines()
        if "=" in line
    )
    try:
        if done.returncode != 0:
            raise ValueError(done.stderr)
        return CertInfo(
            path=path,
            subject=fields["subject"].strip(),
            issuer=fields["issuer"].strip(),
            not_before=_openssl_time(fields["notBefore"]),
            not_after=_openssl_time(fields["notAfter"]),
        )
    except (KeyError, ValueError):
        raise CertificateError(f"{path} is not a PEM certificate") from None


def _openssl_time(text: str) -> datetime:
    """``Dec  7 15:23:21 2027 GMT`` (openssl's and ssl's own format) as UTC."""
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(text.strip()), UTC)
