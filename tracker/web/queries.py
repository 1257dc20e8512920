"""The SQL behind the status table, the shipment page, the CSV export and the JSON API.

A page is the ``limit`` rows after (or before) the sort keys of a row of the previous page
(:mod:`tracker.web.selection`), so page 1,000 costs what page 1 does, and rows inserted
meanwhile neither repeat nor vanish.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from tracker.db import Connection
from tracker.web.selection import (
    SORTS,
    TAB_CONDITIONS,
    TABS,
    Params,
    Position,
    ShipmentFilter,
    conditions_sql,
)

# What the table, the export and the API show of a shipment. The last event: last_event_id
# when it is one of the shipment's events, else the newest by happened_at. Write-back counts:
# sending counts as pending (not written yet).
_COLUMNS = """
       s.id, sh.domain AS shop, s.order_id, s.order_name, s.fulfillment_id, s.tracking_number,
       s.tracking_company, s.tracking_url, s.carrier, s.carrier_source, s.customer_name,
       s.customer_email, s.fulfilled_at, s.status, s.status_at, s.carrier_state,
       s.carrier_message, s.attention, s.attention_since, s.estimated_delivery_at, s.first_eta,
       s.last_scan_at, s.active, s.retired_reason, s.stopped_reason, s.last_polled_at,
       ev.id AS ev_id, ev.status AS ev_status, ev.message AS ev_message, ev.city AS ev_city,
       ev.province AS ev_province, ev.country AS ev_country, ev.zip AS ev_zip,
       ev.happened_at AS ev_happened_at, ev.carrier_code AS ev_carrier_code,
       wb.written AS wb_written, wb.pending AS wb_pending, wb.failed AS wb_failed"""

_JOINS = """
JOIN shops sh ON sh.id = s.shop_id
LEFT JOIN LATERAL (
    SELECT e.*
    FROM tracking_events e
    WHERE e.shipment_id = s.id
    ORDER BY (e.id IS NOT DISTINCT FROM s.last_event_id) DESC, e.happened_at DESC, e.id DESC
    LIMIT 1
) ev ON true
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE e.writeback_state = 'written') AS written,
           count(*) FILTER (WHERE e.writeback_state IN ('pending', 'sending')) AS pending,
           count(*) FILTER (WHERE e.writeback_state = 'failed') AS failed
    FROM tracking_events e
    WHERE e.shipment_id = s.id
) wb"""


def _order_by(exprs: list[str], descending: bool) -> str:
    return ", ".join(expr + (" DESC" if descending else "") for expr in exprs)


def page_statement(
    where: ShipmentFilter,
    sort: str,
    descending: bool,
    after: Position | None,
    limit: int,
) -> tuple[str, list[object]]:
    """SQL and arguments for up to ``limit`` + 1 rows from ``after``, in reading order.

    ``descending`` is the direction the reader asked for. Each row carries its sort keys as
    ``k0``, ``k1``, ... (see :func:`position_of`). With ``after.before`` the rows are those
    just before ``after``; the extra row, when there is one, is then the first, else the last.
    """
    spec = SORTS[sort]
    param = Params()
    conditions = conditions_sql(where, param)
    keys = [*spec.keys, "s.id"]
    reading_desc = descending != spec.reversed
    scan_desc = reading_desc != (after is not None and after.before)
    if after is not None:
        bounds = [
            param(value, sql_type)
            for value, sql_type in zip(
                (*after.keys, after.id), (*spec.key_types, "bigint"), strict=True
            )
        ]
        operator = "<" if scan_desc else ">"
        conditions += f" AND ({', '.join(keys)}) {operator} ({', '.join(bounds)})"
    named = ", ".join(f"{expr} AS k{n}" for n, expr in enumerate(spec.keys))
    page_keys = [f"page.k{n}" for n in range(len(spec.keys))] + ["page.id"]
    sql = f"""
WITH page AS (
    SELECT s.id, {named}
    FROM shipments s
    WHERE {conditions}
    ORDER BY {_order_by(keys, scan_desc)}
    LIMIT {param(limit + 1, "int")}
)
SELECT {", ".join(page_keys[:-1])},{_COLUMNS}
FROM page
JOIN shipments s ON s.id = page.id{_JOINS}
ORDER BY {_order_by(page_keys, reading_desc)}
"""  # noqa: S608 - constant fragments and $n placeholders only
    return sql, param.values


def export_statement(
    where: ShipmentFilter, sort: str, descending: bool
) -> tuple[str, list[object]]:
    """SQL and arguments for every row of the view, in reading order (for a cursor)."""
    spec = SORTS[sort]
    param = Params()
    conditions = conditions_sql(where, param)
    order = _order_by([*spec.keys, "s.id"], descending != spec.reversed)
    sql = f"""/* CSV export */
SELECT{_COLUMNS}
FROM shipments s{_JOINS}
WHERE {conditions}
ORDER BY {order}
"""
    return sql, param.values


def position_of(row: asyncpg.Record, sort: str, *, before: bool = False) -> Position:
    """Where ``row`` (of :func:`page_statement`) sits in ``sort``."""
    count = len(SORTS[sort].keys)
    return Position(tuple(row[f"k{n}"] for n in range(count)), row["id"], before)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[asyncpg.Record]
    next: Position | None
    previous: Position | None


async def fetch_page(
    pool: asyncpg.Pool,
    where: ShipmentFilter,
    sort: str,
    descending: bool,
    after: Position | None,
    limit: int,
) -> Page:
    """The rows of one page and the positions of the pages beside it (None: there is none)."""
    sql, args = page_statement(where, sort, descending, after, limit)
    rows = await pool.fetch(sql, *args)
    more = len(rows) > limit
    if after is not None and after.before:
        rows = rows[1:] if more else rows
        has_previous, has_next = more, True
    else:
        rows = rows[:limit]
        has_previous, has_next = after is not None, more
    if not rows:
        return Page(rows, None, None)
    return Page(
        rows,
        position_of(rows[-1], sort) if has_next else None,
        position_of(rows[0], sort, before=True) if has_previous else None,
    )


async def stream_rows(
    conn: Connection, where: ShipmentFilter, sort: str, descending: bool, batch: int
) -> AsyncIterator[asyncpg.Record]:
    """Every row of the view through a server-side cursor, ``batch`` rows per fetch.

    Run it inside a transaction on ``conn``: the cursor lives only as long as that.
    """
    sql, args = export_statement(where, sort, descending)
    async for row in conn.cursor(sql, *args, prefetch=batch):
        yield row


_COUNTS = """
SELECT s.shop_id, {tabs}
FROM shipments s
WHERE {conditions}
GROUP BY s.shop_id
"""


@dataclass(frozen=True, slots=True)
class Counts:
    """Shipments per tab under a view's other filters, and per store under its tab too."""

    tabs: dict[str, int]
    stores: dict[str, int]
    """Every store by domain (stores without shipments too), in the view's tab."""


async def fetch_counts(pool: asyncpg.Pool, where: ShipmentFilter) -> Counts:
    """One read of the matching shipments: counts per tab and store (the view's store for tabs)."""
    param = Params()
    conditions = conditions_sql(where, param, tab=False, store=False)
    tabs = ", ".join(
        f"count(*) FILTER (WHERE {condition}) AS {name}"
        for name, condition in TAB_CONDITIONS.items()
    )
    rows = await pool.fetch(_COUNTS.format(tabs=tabs, conditions=conditions), *param.values)
    shops = {row["id"]: row["domain"] for row in await pool.fetch(SHOPS)}
    stores = dict.fromkeys(sorted(shops.values()), 0)
    totals = dict.fromkeys(TABS, 0)
    for row in rows:
        domain = shops.get(row["shop_id"])
        if domain is None:
            continue
        stores[domain] = row[where.tab]
        if where.store is None or where.store == domain:
            for tab in TABS:
                totals[tab] += row[tab]
    return Counts(totals, stores)


SHOPS = "SELECT id, domain FROM shops ORDER BY domain"

SHIPMENT_BY_ID = f"SELECT{_COLUMNS}\nFROM shipments s{_JOINS}\nWHERE s.id = $1::bigint\n"

EVENTS_OF_SHIPMENT = """
SELECT id, status, happened_at, time_source, carrier_code, message, city, province, country,
       zip, estimated_delivery_at, discovered_at, writeback_state, writeback_attempts,
       writeback_error, shopify_event_id, written_at
FROM tracking_events
WHERE shipment_id = $1::bigint
ORDER BY happened_at, id
"""

STORE_PROBLEMS = """
SELECT domain, last_sync_error, notice FROM shops
WHERE last_sync_error IS NOT NULL OR notice IS NOT NULL ORDER BY domain
"""

RESTING_CARRIERS = """
SELECT carrier, opened_until, last_error FROM carrier_circuits
WHERE opened_until > now() ORDER BY carrier
"""

PING = "SELECT 1"


async def fetch_shipment(pool: asyncpg.Pool, shipment_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(SHIPMENT_BY_ID, shipment_id)


async def fetch_events(pool: asyncpg.Pool, shipment_id: int) -> list[asyncpg.Record]:
    """Every event of the shipment, oldest first."""
    return await pool.fetch(EVENTS_OF_SHIPMENT, shipment_id)


async def fetch_notices(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Stores with a sync error or notice, and carriers whose circuit is open."""
    return await pool.fetch(STORE_PROBLEMS), await pool.fetch(RESTING_CARRIERS)


async def ping(pool: asyncpg.Pool) -> None:
    """Raises if the database does not answer."""
    await pool.fetchval(PING)
