"""The ``query:`` filter of ``QueryRoot.orders``: which search fields mean what for an order.

Fields: ``updated_at``, ``created_at`` (ISO timestamps or dates, quoted or not, all
comparators), ``fulfillment_status`` (shipped, partial, unshipped, unfulfilled, any),
``status`` (open, closed, cancelled, any), ``name`` (``#1001`` or ``1001``), ``id`` (legacy id
or gid, all comparators). Free text matches the name or the e-mail address. Other fields are
ignored, as Shopify ignores them, and reported as warnings.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tracker.sandbox.search_query import Node, Term, evaluate, terms
from tracker.sandbox.shopify_models import ORDER, Order, legacy_id

KNOWN_FIELDS = frozenset(
    {"updated_at", "created_at", "fulfillment_status", "status", "name", "id", "email"}
)

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ":": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

_FULFILLMENT_STATUS = {
    "shipped": {"FULFILLED"},
    "fulfilled": {"FULFILLED"},
    "partial": {"PARTIALLY_FULFILLED"},
    "unshipped": {"UNFULFILLED"},
    "unfulfilled": {"UNFULFILLED", "PARTIALLY_FULFILLED"},
}


def parse_timestamp(value: str) -> datetime | None:
    """An aware UTC datetime from ``2026-01-01``, ``2026-01-01T10:00:00Z`` or with an offset."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _match_time(moment: datetime, term: Term) -> bool | None:
    bound = parse_timestamp(term.value)
    if bound is None:
        return None
    moment = moment.replace(microsecond=0)
    if term.op == ":" and len(term.value.strip()) == 10:  # a bare date: that whole day
        return moment.date() == bound.date()
    return _COMPARE[term.op](moment, bound)


def _match_status(order: Order, value: str) -> bool | None:
    if value == "any":
        return True
    if value == "open":
        return not order.closed and order.cancelled_at is None
    if value == "closed":
        return order.closed
    if value in ("cancelled", "canceled"):
        return order.cancelled_at is not None
    return None


def _match_name(order: Order, term: Term) -> bool | None:
    wanted = term.value.strip().lstrip("#").lower()
    if term.op == ":":
        return order.name.lstrip("#").lower() == wanted
    if not wanted.isdigit():
        return None
    return _COMPARE[term.op](order.number, int(wanted))


def match_order(order: Order, term: Term) -> bool | None:
    """Whether ``order`` satisfies one search term; None when the term is to be ignored."""
    value = term.value.strip().lower()
    if term.field is None:
        return value in order.name.lower() or value in (order.email or "").lower()
    if term.field == "updated_at":
        return _match_time(order.updated_at, term)
    if term.field == "created_at":
        return _match_time(order.created_at, term)
    if term.field == "fulfillment_status":
        if value == "any":
            return True
        wanted = _FULFILLMENT_STATUS.get(value)
        return None if wanted is None else order.display_fulfillment_status in wanted
    if term.field == "status":
        return _match_status(order, value)
    if term.field == "name":
        return _match_name(order, term)
    if term.field == "email":
        return (order.email or "").lower() == value
    if term.field == "id":
        number = legacy_id(term.value, ORDER)
        return None if number is None else _COMPARE[term.op](order.id, number)
    return None


def order_matches(order: Order, query: Node | None) -> bool:
    """Whether ``order`` passes a parsed search query."""
    return evaluate(query, lambda term: match_order(order, term))


def search_warnings(query: Node | None) -> list[dict[str, str]]:
    """Shopify-style warnings for terms on fields the orders search does not know."""
    seen: list[str] = []
    for term in terms(query):
        if term.field is not None and term.field not in KNOWN_FIELDS and term.field not in seen:
            seen.append(term.field)
    return [{"field": name, "message": "Invalid search field for this query."} for name in seen]
