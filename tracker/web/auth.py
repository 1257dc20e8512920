"""Passwords, signed session cookies and CSRF tokens: pure functions of secrets and inputs.

Password hashes are self-describing strings, checked in constant time:

- ``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and key base64), what :func:`hash_password`
  makes (``python -m tracker.web.hash_password`` prints one for a password typed at the
  prompt);
- ``pbkdf2_sha256$<iterations>$<salt>$<key>`` (Django's format, key base64).

A session cookie is ``<payload>.<mac>``: the payload (base64 of ``[id, user, expires]``) signed
with HMAC-SHA256 under a key derived from ``web.auth.session_secret``. The CSRF token of a
session is an HMAC of its id under a second derived key, so it needs no storage and changes
with every new session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAX_N = 2**20
_PBKDF2_MAX_ITERATIONS = 10_000_000


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    text = text.replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(
    password: str,
    *,
    salt: bytes | None = None,
    n: int = SCRYPT_N,
    r: int = SCRYPT_R,
    p: int = SCRYPT_P,
) -> str:
    """``scrypt$n$r$p$salt$key`` for ``password`` with a fresh 16-byte salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = _scrypt(password, salt, n, r, p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; False for a hash this code cannot read."""
    parts = encoded.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            if not (1 < n <= _SCRYPT_MAX_N and n & (n - 1) == 0 and 0 < r <= 64 and 0 < p <= 16):
                return False
            expected = _unb64(parts[5])
            actual = _scrypt(password, _unb64(parts[4]), n, r, p)
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations = int(parts[1])
            if not 0 < iterations <= _PBKDF2_MAX_ITERATIONS:
                return False
            expected = base64.b64decode(parts[3])
            actual = hashlib.pbkdf2_hmac(
                "sha256", password.encode(), parts[2].encode(), iterations, len(expected)
            )
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def same_text(given: str, expected: str) -> bool:
    """Constant-time equality of two strings (of any lengths)."""
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session: a random id, the signed-in user (None: anonymous), expiry."""

    id: str
    user: str | None
    expires: int  # Unix seconds


class SessionSigner:
    """Makes and checks session cookies and their CSRF tokens under one secret."""

    def __init__(self, secret: bytes, lifetime: timedelta) -> None:
        self._session_key = hmac.new(secret, b"tracker session cookie", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"tracker csrf token", hashlib.sha256).digest()
        self.lifetime = lifetime

    def new(self, user: str | None, now: float | None = None) -> Session:
        moment = time.time() if now is None else now
        expires = int(moment + self.lifetime.total_seconds())
        return Session(secrets.token_hex(16), user, expires)

    def dump(self, session: Session) -> str:
        """The cookie value for ``session``."""
        payload = _b64(json.dumps([session.id, session.user, session.expires]).encode())
        return f"{payload}.{self._mac(payload)}"

    def load(self, value: str | None, now: float | None = None) -> Session | None:
        """The session in a cookie value; None when it is absent, forged, malformed or expired."""
        if not value or len(value) > 1000 or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            parts = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if not (
            isinstance(parts, list)
            and len(parts) == 3
            and isinstance(parts[0], str)
            and (parts[1] is None or isinstance(parts[1], str))
            and type(parts[2]) is int
        ):
            return None
        session = Session(parts[0], parts[1], parts[2])
        if session.expires <= (time.time() if now is None else now):
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        """The token forms of ``session`` carry; valid for that session only."""
        return _b64(hmac.new(self._csrf_key, session.id.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._session_key, payload.encode(), hashlib.sha256).digest())
