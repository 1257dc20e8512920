"""The counts behind the status table's tabs and store list, and the filters they answer.

Counts come from ``shipment_counts`` (``migrations/0009_shipment_counts.sql``): shipments
counted by the columns of every tab and list filter, kept by triggers, so a view without a date,
last-scan or search filter is counted without reading its shipments. The same counts tell a page
which urgency ranks its rows can have (:func:`tracker.web.queries.rank_plan`). Deltas the
triggers leave pile up as rows; a count that finds too many folds them (:func:`compact_counts`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from tracker.db import Connection
from tracker.web.selection import (
    SORTS,
    TAB_CONDITIONS,
    TABS,
    Params,
    ShipmentFilter,
    conditions_sql,
)


def counted_part(where: ShipmentFilter) -> ShipmentFilter:
    """``where`` without the filters ``shipment_counts`` cannot answer: shipping dates, last
    scan and search."""
    return replace(
        where, shipped_from=None, shipped_before=None, last_scan_before=None, search=None
    )


_COUNTS = """
SELECT s.shop_id, {tabs}
FROM shipments s
WHERE {conditions}
GROUP BY s.shop_id
"""
# The same from the counts: ``s`` is a group of shipments there, with the columns tabs and
# counted filters look at, and ``n`` shipments.
_GROUP_COUNTS = """
SELECT s.shop_id, {tabs}, (SELECT count(*) FROM shipment_counts) AS deltas
FROM shipment_counts s
WHERE {conditions}
GROUP BY s.shop_id
"""
COMPACT_ABOVE = 2000
"""Rows of ``shipment_counts`` above which a count folds them into one per group."""
_COMPACT_LOCK = 0x636F756E74  # "count": one compaction at a time, across replicas
_GROUPS = (
    "shop_id, status, carrier_state, attention, active, stopped_reason, carrier, retired_reason"
)
_COMPACT = f"""
WITH gone AS (DELETE FROM shipment_counts RETURNING *)
INSERT INTO shipment_counts ({_GROUPS}, n)
SELECT {_GROUPS}, sum(n) FROM gone
GROUP BY {_GROUPS}
HAVING sum(n) <> 0
"""  # noqa: S608 - constant


@dataclass(frozen=True, slots=True)
class Counts:
    """Shipments per tab under a view's other filters, and per store under its tab too."""

    tabs: dict[str, int]
    stores: dict[str, int]
    """Every store by domain (stores without shipments too), in the view's tab."""


TabRows = dict[int, dict[str, int]]
"""Shipments per tab, per shop id."""
LAST_SCAN = SORTS["last_scan"].keys[0]
"""The last scan, spelled as ``shipments_by_last_scan`` indexes it (NULL: before any time)."""


async def _tab_rows(
    conn: Connection, where: ShipmentFilter, *, grouped: bool, scanned_since: datetime | None = None
) -> tuple[TabRows, int]:
    """Per shop, shipments per tab under ``where`` without its tab and store; and the rows of
    ``shipment_counts`` (``grouped``: read from there, else from ``shipments``, with only those
    scanned at or after ``scanned_since`` when given)."""
    param = Params()
    conditions = conditions_sql(where, param, tab=False, store=False)
    if scanned_since is not None:
        conditions += f" AND {LAST_SCAN} >= epoch_us({param(scanned_since, 'timestamptz')})"
    tabs = ", ".join(
        f"COALESCE(sum(s.n) FILTER (WHERE {condition}), 0)::bigint AS {name}"
        if grouped
        else f"count(*) FILTER (WHERE {condition}) AS {name}"
        for name, condition in TAB_CONDITIONS.items()
    )
    query = _GROUP_COUNTS if grouped else _COUNTS
    rows = await conn.fetch(query.format(tabs=tabs, conditions=conditions), *param.values)
    deltas = rows[0]["deltas"] if grouped and rows else 0
    return {row["shop_id"]: {tab: row[tab] for tab in TABS} for row in rows}, deltas


async def fetch_counts(pool: asyncpg.Pool, where: ShipmentFilter) -> Counts:
    """Counts per tab and store (the view's store for tabs) of the matching shipments.

    A view whose filters are all counted in ``shipment_counts`` is read from there. One with a
    last-scan filter besides is those counts less the shipments with a later scan, found by
    their index: fewer than the others when the filter asks for parcels quiet for a while. A
    view with shipping dates or a search is counted from ``shipments``.
    """
    counted = counted_part(where)
    deltas = 0
    if counted == where:
        async with pool.acquire() as conn:
            by_shop, deltas = await _tab_rows(conn, where, grouped=True)
    elif replace(counted, last_scan_before=where.last_scan_before) == where:
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            by_shop, deltas = await _tab_rows(conn, counted, grouped=True)
            later, _ = await _tab_rows(
                conn, counted, grouped=False, scanned_since=where.last_scan_before
            )
        for shop_id, tabs in later.items():
            for tab, n in tabs.items():
                by_shop.setdefault(shop_id, dict.fromkeys(TABS, 0))[tab] -= n
    else:
        async with pool.acquire() as conn:
            by_shop, _ = await _tab_rows(conn, where, grouped=False)
    if deltas > COMPACT_ABOVE:
        await compact_counts(pool)
    shops = {row["id"]: row["domain"] for row in await pool.fetch(SHOPS)}
    stores = dict.fromkeys(sorted(shops.values()), 0)
    totals = dict.fromkeys(TABS, 0)
    for shop_id, tabs in by_shop.items():
        domain = shops.get(shop_id)
        if domain is None:
            continue
        stores[domain] = tabs[where.tab]
        if where.store is None or where.store == domain:
            for tab in TABS:
                totals[tab] += tabs[tab]
    return Counts(totals, stores)


async def compact_counts(pool: asyncpg.Pool) -> bool:
    """Fold ``shipment_counts`` into one row per group; False if another process is at it."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _COMPACT_LOCK):
            return False
        await conn.execute(_COMPACT)
    return True


SHOPS = "SELECT id, domain FROM shops ORDER BY domain"
