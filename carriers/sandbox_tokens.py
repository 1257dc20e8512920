"""OAuth access tokens as the carrier sandboxes hand them out and check them."""

from __future__ import annotations

import time

from aiohttp import web


class TokenIssuer:
    """Access tokens an OAuth sandbox hands out, with their expiry; tests can expire them all."""

    def __init__(self, lifetime_seconds: float = 3600.0) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._tokens: dict[str, float] = {}
        self._issued_at: dict[str, float] = {}
        self.issued = 0

    def issue(self) -> str:
        import secrets

        token = "sbx_" + secrets.token_urlsafe(24)
        now = time.monotonic()
        self._tokens[token] = now + self.lifetime_seconds
        self._issued_at[token] = now
        self.issued += 1
        return token

    def valid(self, token: str | None) -> bool:
        expires = self._tokens.get(token or "")
        return expires is not None and time.monotonic() < expires

    def issued_at(self, token: str) -> float | None:
        """``time.monotonic()`` when ``token`` was issued, if this issuer issued it."""
        return self._issued_at.get(token)

    def revoke(self, token: str) -> None:
        """``token`` is refused from now on, whatever its expiry said."""
        self._tokens.pop(token, None)

    def expire_all(self) -> None:
        self._tokens.clear()


TOKENS_KEY = web.AppKey("sandbox_tokens", TokenIssuer)


def bearer(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
