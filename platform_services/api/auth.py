"""Passwords (argon2id), JWTs (HS256) and the admin check.

* Passwords are hashed with argon2id (RFC 9106 "low memory" parameters: 19 MiB,
  2 passes, 1 lane) so a burst of logins cannot exhaust the 384 MiB container.
  Unknown users are verified against a dummy hash, so response time does not
  reveal which usernames exist.
* Tokens are HS256 JWTs with ``sub``, ``role``, ``iat``, ``exp`` and ``iss``;
  decoding pins the algorithm and requires every one of those claims.
* Admin endpoints accept a bearer JWT whose role is ``admin``, or the static
  ``ADMIN_TOKEN`` of the environment (the runbook's ``Authorization: Bearer
  $ADMIN_TOKEN``), compared in constant time. Missing or invalid → 401,
  valid but not admin → 403.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHash, VerificationError, VerifyMismatchError
from starlette.requests import Request

from platform_services.settings import Settings

HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)
MIN_SECRET_LENGTH = 16
"""JWT_SECRET and ADMIN_TOKEN shorter than this are refused (treated as unset)."""

_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check; False for a missing user (after hashing anyway)."""
    global _DUMMY_HASH
    if password_hash is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = HASHER.hash("no such user: equalise the timing")
        password_hash = _DUMMY_HASH
        try:
            HASHER.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHash):
            pass
        return False
    try:
        return HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHash):
        return False


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str
    """``jwt`` or ``admin_token``."""


def jwt_secret(settings: Settings) -> str | None:
    secret = settings.jwt_secret.get_secret_value()
    return secret if len(secret) >= MIN_SECRET_LENGTH else None


def issue_token(
    settings: Settings, username: str, role: str, now: datetime | None = None
) -> tuple[str, datetime]:
    secret = jwt_secret(settings)
    if secret is None:
        raise AuthError(503, "token signing is not configured (JWT_SECRET)")
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    expires = issued + timedelta(minutes=settings.jwt_expire_minutes)
    claims = {
        "sub": username,
        "role": role,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "iss": settings.jwt_issuer,
    }
    return jwt.encode(claims, secret, algorithm="HS256"), expires


def decode_token(settings: Settings, token: str) -> Principal:
    secret = jwt_secret(settings)
    if secret is None:
        raise AuthError(401, "invalid token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "role", "exp", "iat", "iss"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token expired") from None
    except jwt.PyJWTError:
        raise AuthError(401, "invalid token") from None
    sub, role = claims.get("sub"), claims.get("role")
    if not isinstance(sub, str) or not isinstance(role, str):
        raise AuthError(401, "invalid token")
    return Principal(name=sub, role=role, via="jwt")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_admin(settings: Settings, authorization: str | None) -> Principal:
    token = bearer_token(authorization)
    if token is None:
        raise AuthError(401, "missing bearer token")
    admin_token = settings.admin_token.get_secret_value()
    if len(admin_token) >= MIN_SECRET_LENGTH and hmac.compare_digest(
        token.encode(), admin_token.encode()
    ):
        return Principal(name="admin-token", role="admin", via="admin_token")
    principal = decode_token(settings, token)
    if principal.role != "admin":
        raise AuthError(403, "admin role required")
    return principal


def client_ip(request: Request) -> str:
    """The client's address as nginx saw it (``X-Real-IP``, set by nginx itself).

    Only nginx reaches the backends, and it overwrites ``X-Real-IP`` with
    ``$remote_addr``; ``X-Forwarded-For``'s first entry is client-controlled.
    """
    real = request.headers.get("x-real-ip", "").strip()
    if real:
        try:
            return str(ipaddress.ip_address(real))
        except ValueError:
            pass
    return request.client.host if request.client else "unknown"
