"""Relay connections as Shopify serves them: sort, opaque cursors, ``first``/``last`` windows.

Pure. A cursor is base64 of ``{"last_id", "last_value"}`` (the sort value and id of its item), so
it stays valid while items are added, removed or re-sorted: ``after`` means "sorting after that
key", not "after that position".
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MAX_PAGE_SIZE = 250

SortKey = tuple[float, int]


class PaginationError(ValueError):
    """Bad connection arguments: no page size, too large a page, an unreadable cursor."""


def encode_cursor(key: SortKey) -> str:
    payload = json.dumps({"last_id": key[1], "last_value": key[0]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        value, ident = raw["last_value"], raw["last_id"]
    except (binascii.Error, ValueError, TypeError, KeyError) as error:
        raise PaginationError(f"Invalid cursor: {cursor!r}") from error
    if not isinstance(value, int | float) or not isinstance(ident, int):
        raise PaginationError(f"Invalid cursor: {cursor!r}")
    return float(value), ident


@dataclass(frozen=True)
class Page(Generic[T]):
    """One window of a sorted list, with what Relay's ``pageInfo`` needs."""

    items: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool

    def as_connection(self) -> dict[str, Any]:
        """``{edges, nodes, pageInfo}`` for the GraphQL default resolvers."""
        return {
            "edges": [
                {"cursor": cursor, "node": item}
                for cursor, item in zip(self.cursors, self.items, strict=True)
            ],
            "nodes": list(self.items),
            "pageInfo": {
                "hasNextPage": self.has_next_page,
                "hasPreviousPage": self.has_previous_page,
                "startCursor": self.cursors[0] if self.cursors else None,
                "endCursor": self.cursors[-1] if self.cursors else None,
            },
        }


def _check_size(name: str, value: int | None) -> None:
    if value is None:
        return
    if value < 0:
        raise PaginationError(f"The {name} argument must be a non-negative integer.")
    if value > MAX_PAGE_SIZE:
        raise PaginationError(
            f"The {name} argument cannot exceed {MAX_PAGE_SIZE}, the maximum page size."
        )


def paginate(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
) -> Page[T]:
    """The page of ``items`` (sorted by ``key``, descending if ``reverse``) the arguments select.

    ``after``/``before`` narrow the list to the keys beyond / before their cursors; then
    ``first`` keeps the head of what is left, ``last`` the tail. ``hasNextPage`` and
    ``hasPreviousPage`` tell whether the full sorted list goes on past the page.
    """
    if first is None and last is None:
        raise PaginationError("you must provide one of first or last")
    _check_size("first", first)
    _check_size("last", last)
    keyed = sorted(((key(item), item) for item in items), key=lambda pair: pair[0])
    if reverse:
        keyed.reverse()

    def beyond(mine: SortKey, mark: SortKey) -> bool:
        return mine < mark if reverse else mine > mark

    start, end = 0, len(keyed)
    if after is not None:
        mark = decode_cursor(after)
        while start < end and not beyond(keyed[start][0], mark):
            start += 1
    if before is not None:
        mark = decode_cursor(before)
        while end > start and not beyond(mark, keyed[end - 1][0]):
            end -= 1
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    window = keyed[start:end]
    return Page(
        items=[item for _, item in window],
        cursors=[encode_cursor(sort_key) for sort_key, _ in window],
        has_next_page=end < len(keyed),
        has_previous_page=start > 0,
    )
