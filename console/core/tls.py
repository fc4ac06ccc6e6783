"""nginx's certificate: whose it is, until when, and how many days are left.

``scripts/tls.sh`` installs it in ``<state_dir>/tls/cert.pem`` (the
operator's, or a self-signed one); ``stackdeck preflight`` warns when fewer
than :data:`WARN_DAYS` days are left and fails once it has expired; the
Health panel shows the days left. Parsing is ``cryptography``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
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


def read_certificate(path: Path) -> CertInfo:
    """The first certificate of a PEM file (the server's own, chain after it)."""
    from cryptography import x509

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"no certificate at {path}: scripts/setup.sh installs one (scripts/tls.sh)"
        ) from None
    except OSError as exc:
        raise CertificateError(f"cannot read the certificate {path}: {exc.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{path} is not a PEM certificate") from None
    return CertInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
