"""What a view selects and in which order: tabs, filters and sorts as SQL fragments.

Statements (:mod:`tracker.web.queries`) are put together from the constant fragments here only:
which fragments depends on which filters a request uses, and every value a request sends is a
``$n`` parameter, never part of the SQL text.

Each sort is a keyset: a tuple of key expressions ending in ``s.id``, all compared in one
direction, each tuple backed by an index of ``migrations/0007_customer.sql`` (spelled exactly as
there), so that a page after any row is an index range scan however deep it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
UNKNOWN_CARRIER = "unknown"
"""The ``carrier`` filter value for shipments whose carrier nobody knows (NULL)."""

# Status groups of the tabs, by lower-case FulfillmentEventStatus.
PRE_TRANSIT = ("label_purchased", "label_printed", "confirmed")
MOVING = ("carrier_picked_up", "in_transit", "delayed")
LAST_MILE = ("out_for_delivery", "attempted_delivery", "ready_for_pickup")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)  # our constants above, never input


# A tab is a named scope with a live count; tracker.web.present.TAB_WORDS says what each means.
TAB_CONDITIONS: dict[str, str] = {
    "all": "true",
    "attention": "s.attention IS NOT NULL",
    "active": "s.active",
    "pre_transit": (
        "s.carrier_state <> 'untracked'"
        f" AND (s.status IS NULL OR s.status IN ({_quoted(PRE_TRANSIT)}))"
    ),
    "in_transit": f"s.status IN ({_quoted(MOVING)})",
    "out_for_delivery": f"s.status IN ({_quoted(LAST_MILE)})",
    "delivered": "s.status = 'delivered'",
    "problems": (
        "(s.status = 'failure' OR s.stopped_reason = 'expired'"
        " OR s.carrier_state IN ('not_found', 'invalid_number'))"
    ),
    "untracked": "s.carrier_state = 'untracked'",
}
TABS = tuple(TAB_CONDITIONS)

_BIG = "9223372036854775807"


@dataclass(frozen=True, slots=True)
class Sort:
    """A sort of the table: its key expressions (before ``s.id``) and how a person reads it.

    ``key_types`` are the SQL types of the keys (``int``, ``bigint`` or ``text``).
    ``reversed`` sorts say "descending" for ascending keys (days in transit: most days first is
    the oldest shipping date first). ``descending`` is the direction a click on the column gives.
    """

    keys: tuple[str, ...]
    key_types: tuple[str, ...]
    descending: bool = False
    reversed: bool = False


SORTS: dict[str, Sort] = {
    "status": Sort(
        (
            "shipment_rank(s.attention, s.carrier_state, s.status)",
            f"COALESCE(-epoch_us(s.status_at), {_BIG})",
        ),
        ("int", "bigint"),
    ),
    "order": Sort(("s.order_name",), ("text",)),
    "last_scan": Sort((f"COALESCE(epoch_us(s.last_scan_at), -{_BIG})",), ("bigint",)),
    "eta": Sort((f"COALESCE(epoch_us(s.estimated_delivery_at), {_BIG})",), ("bigint",)),
    "transit": Sort(
        (f"COALESCE(epoch_us(s.fulfilled_at), -{_BIG})",), ("bigint",), True, reversed=True
    ),
    "shipped": Sort((f"COALESCE(epoch_us(s.fulfilled_at), -{_BIG})",), ("bigint",), True),
}


@dataclass(frozen=True, slots=True)
class ShipmentFilter:
    """Which shipments a view shows. ``statuses`` None: any; ``()`` with ``no_status``: none."""

    tab: str = "all"
    statuses: tuple[str, ...] | None = None
    no_status: bool = False
    carrier: str | None = None
    store: str | None = None
    attention: tuple[str, ...] = ()
    shipped_from: datetime | None = None
    shipped_before: datetime | None = None
    last_scan_before: datetime | None = None
    search: str | None = None
    include_inactive: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in a sort: its keys and id. ``before``: the page ends just before it."""

    keys: tuple[int | str, ...]
    id: int
    before: bool = False


class Params:
    """``$n`` placeholders for values, in the order they are added."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object, sql_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{sql_type}"


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own characters taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions_sql(
    where: ShipmentFilter, param: Params, *, tab: bool = True, store: bool = True
) -> str:
    """The WHERE clause of ``where`` (without its tab or store when asked); values to ``param``."""
    found: list[str] = []
    if not where.include_inactive:
        found.append("s.retired_reason IS NULL")
    if tab and where.tab != "all":
        found.append(TAB_CONDITIONS[where.tab])
    if where.statuses is not None:
        either = ["s.status IS NULL"] if where.no_status else []
        if where.statuses:
            either.append(f"s.status = ANY({param(list(where.statuses), 'text[]')})")
        found.append("(" + " OR ".join(either) + ")")
    if where.carrier == UNKNOWN_CARRIER:
        found.append("s.carrier IS NULL")
    elif where.carrier is not None:
        found.append(f"s.carrier = {param(where.carrier, 'text')}")
    if store and where.store is not None:
        domain = param(where.store, "text")
        found.append(f"s.shop_id = (SELECT id FROM shops WHERE domain = {domain})")  # noqa: S608
    if where.attention:
        found.append(f"s.attention = ANY({param(list(where.attention), 'text[]')})")
    # Shipping dates as shipments_by_shipped indexes them, so that a range is read from there.
    shipped = SORTS["shipped"].keys[0]
    if where.shipped_from is not None:
        found.append(f"{shipped} >= epoch_us({param(where.shipped_from, 'timestamptz')})")
    if where.shipped_before is not None:
        before = param(where.shipped_before, "timestamptz")
        found.append(f"s.fulfilled_at IS NOT NULL AND {shipped} < epoch_us({before})")
    if where.last_scan_before is not None:
        cutoff = param(where.last_scan_before, "timestamptz")
        found.append(f"(s.last_scan_at IS NULL OR s.last_scan_at < {cutoff})")
    if where.search is not None:
        found.append(
            "shipment_search_text(s.order_name, s.tracking_number, s.customer_name,"
            f" s.customer_email) LIKE lower({param(like_pattern(where.search), 'text')})"
        )
    return " AND ".join(found) or "true"
