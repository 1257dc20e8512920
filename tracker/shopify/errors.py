"""What Shopify's answers mean when they are not data: the client's errors, read from statuses
and top-level ``errors`` (:mod:`tracker.shopify.client` raises them)."""

from __future__ import annotations

from typing import Any


class ShopifyError(Exception):
    """Base of every error the Shopify client raises."""


class ShopifyAuthError(ShopifyError):
    """401/403: the token is wrong, revoked, or lacks a scope.

    ``paused`` is True when no request was sent: the store refused the token moments ago and
    the client waits before asking again.
    """

    def __init__(self, message: str, *, paused: bool = False) -> None:
        super().__init__(message)
        self.paused = paused


class ShopifyShopClosed(ShopifyAuthError):
    """402/423/SHOP_INACTIVE: the shop is frozen, locked or inactive, whatever the token.

    Callers treat it as a refused token: the store pauses; no request or event is to blame.
    """


class ShopifyUnavailable(ShopifyError):
    """Shopify could not be asked after the retries; the request was not applied."""


class ShopifyOutcomeUnknown(ShopifyError):
    """A mutation was sent but its answer was lost: it may or may not have been applied."""


class GraphQLError(ShopifyError):
    """Shopify answered with top-level ``errors`` (a bad document, a missing permission)."""

    def __init__(self, message: str, errors: list[Any]) -> None:
        super().__init__(message)
        self.errors = errors


def has_code(errors: object, code: str) -> bool:
    """Whether one of Shopify's top-level ``errors`` has ``extensions.code`` ``code``."""
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(e, dict)
        and isinstance(e.get("extensions"), dict)
        and e["extensions"].get("code") == code
        for e in errors
    )


def shop_closed(status: int, errors: object) -> tuple[str, str] | None:
    """``(state, why)`` when the shop refuses every call whatever the token, else None."""
    if status == 402:
        return "frozen", "HTTP 402: the shop is frozen (its owner must pay the outstanding bill)"
    if status == 423:
        return "locked", "HTTP 423: the shop is locked (Shopify locked the account)"
    if has_code(errors, "SHOP_INACTIVE"):
        return "inactive", "SHOP_INACTIVE: the shop is inactive (closed or paused by its owner)"
    return None


def error_text(errors: object) -> str:
    if isinstance(errors, list):
        parts = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
        return "; ".join(parts)[:500]
    return str(errors)[:500]
