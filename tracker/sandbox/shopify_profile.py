"""What the sandbox shop says about itself besides orders: its plan and the API versions it serves.

Shopify releases a stable Admin API version every quarter (``YYYY-01``, ``-04``, ``-07``,
``-10``) and supports each for at least a year. A request for a version it no longer supports is
not refused: Shopify *falls forward* and answers with the oldest supported version, naming the
version it used in the ``X-Shopify-API-Version`` response header (shopify.dev, "About Shopify API
versioning"). ``publicApiVersions`` lists the supported stable versions, the next quarter's
release candidate and ``unstable`` (those two with ``supported: false``).

Tests set :attr:`ShopProfile.oldest_supported_version` to retire versions; left at None, every
well-formed version is served as asked, because other sandbox tests pin old versions on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from graphql import GraphQLSchema

if TYPE_CHECKING:
    from tracker.sandbox.shopify_schema import Info

SUPPORTED_QUARTERS = 4
"""Stable versions listed as supported when no oldest one is set: the newest and three before."""

UNSTABLE = "unstable"
_STABLE = re.compile(r"^(\d{4})-(01|04|07|10)$")


def _quarter_index(version: str) -> int | None:
    match = _STABLE.match(version)
    if match is None:
        return None
    return int(match.group(1)) * 4 + (int(match.group(2)) - 1) // 3


def _version_of(index: int) -> str:
    year, quarter = divmod(index, 4)
    return f"{year:04d}-{quarter * 3 + 1:02d}"


def stable_version_at(moment: datetime) -> str:
    """The newest stable version released by ``moment`` (releases come on a quarter's first day)."""
    return _version_of(moment.year * 4 + (moment.month - 1) // 3)


@dataclass
class ShopProfile:
    """The shop's plan (``shop.plan``) and which Admin API versions it serves."""

    plan_display_name: str = "Basic"
    partner_development: bool = False
    shopify_plus: bool = False
    oldest_supported_version: str | None = None
    """Stable versions older than this fall forward to it; None: every version is served."""

    def served_version(self, requested: str) -> str:
        """The version Shopify answers a request for ``requested`` with."""
        oldest = _quarter_index(self.oldest_supported_version or "")
        asked = _quarter_index(requested)
        if oldest is not None and asked is not None and asked < oldest:
            return _version_of(oldest)
        return requested

    def plan(self) -> dict[str, Any]:
        return {
            "displayName": self.plan_display_name,
            "partnerDevelopment": self.partner_development,
            "shopifyPlus": self.shopify_plus,
        }

    def public_api_versions(self, now: datetime) -> list[dict[str, Any]]:
        """``publicApiVersions``: supported stable versions oldest first, then RC and unstable."""
        newest = _quarter_index(stable_version_at(now))
        assert newest is not None
        oldest = _quarter_index(self.oldest_supported_version or "")
        if oldest is None:
            oldest = newest - (SUPPORTED_QUARTERS - 1)
        versions = [
            {
                "handle": _version_of(index),
                "displayName": _version_of(index) + (" (Latest)" if index == newest else ""),
                "supported": True,
            }
            for index in range(oldest, newest + 1)
        ]
        candidate = _version_of(newest + 1)
        versions.append(
            {
                "handle": candidate,
                "displayName": f"{candidate} (Release candidate)",
                "supported": False,
            }
        )
        versions.append({"handle": UNSTABLE, "displayName": UNSTABLE, "supported": False})
        return versions


def resolve_public_api_versions(_root: object, info: Info) -> list[dict[str, Any]]:
    store = info.context.store
    return store.profile.public_api_versions(store.now())


def bind_profile_resolvers(schema: GraphQLSchema) -> None:
    """Wire ``publicApiVersions`` into the sandbox schema (``shop.plan`` is in ``resolve_shop``)."""
    query = schema.query_type
    assert query is not None
    query.fields["publicApiVersions"].resolve = resolve_public_api_versions
