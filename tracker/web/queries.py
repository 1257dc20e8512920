"""The SQL behind the status table's rows, the shipment page, the CSV export and the JSON API.

A page is the ``limit`` rows after (or before) the sort keys of a row of the previous page
(:mod:`tracker.web.selection`), so page 1,000 costs what page 1 does, and rows inserted
meanwhile neither repeat nor vanish.

The tabs' counts are in :mod:`tracker.web.counts`. The same counts (``shipment_counts``) tell a
page which urgency ranks its rows can have, so that an index scan reads only those (the
delivered tab starts at its own rows, not after every other one) and an empty view reads
nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from tracker.db import Connection
from tracker.engine.circuit import paused_carriers
from tracker.web.counts import counted_part
from tracker.web.selection import (
    SORTS,
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


RANK = SORTS["status"].keys[0]
"""The urgency rank, spelled as ``shipments_by_urgency`` indexes it."""
MATERIALIZE_BELOW = 100_000
"""A view this small (see :func:`fetch_page`) is read whole and sorted, rather than found by
walking the sort's index past every row that does not match: a walk that may pass nearly all
shipments when the view's rows sit at the far end of that order (the oldest parcels are the
delivered ones)."""
WALK = 10_000
"""Shipments of the sort's index a small view walks before it is read whole instead."""


def page_statement(
    where: ShipmentFilter,
    sort: str,
    descending: bool,
    after: Position | None,
    limit: int,
    *,
    ranks: list[int] | None = None,
    materialize: bool = False,
    walk: int | None = None,
) -> tuple[str, list[object]]:
    """SQL and arguments for up to ``limit`` + 1 rows from ``after``, in reading order.

    ``descending`` is the direction the reader asked for. Each row carries its sort keys as
    ``k0``, ``k1``, ... (see :func:`position_of`). With ``after.before`` the rows are those
    just before ``after``; the extra row, when there is one, is then the first, else the last.
    ``ranks``: only rows of these urgency ranks (:func:`rank_plan`); ``materialize``: find
    the matching rows first and sort them, rather than walk the sort's index; ``walk``: walk no
    more than this many shipments of the sort's index (the page may then come out short; with
    ``ranks``, of those ranks: give them only for the urgency sort, whose index starts with them).
    """
    spec = SORTS[sort]
    param = Params()
    conditions = conditions_sql(where, param)
    ranked = "" if ranks is None else f" AND {RANK} = ANY({param(ranks, 'int[]')})"
    conditions += ranked
    keys = [*spec.keys, "s.id"]
    reading_desc = descending != spec.reversed
    scan_desc = reading_desc != (after is not None and after.before)
    bound = ""
    if after is not None:
        bounds = [
            param(value, sql_type)
            for value, sql_type in zip(
                (*after.keys, after.id), (*spec.key_types, "bigint"), strict=True
            )
        ]
        operator = "<" if scan_desc else ">"
        bound = f" AND ({', '.join(keys)}) {operator} ({', '.join(bounds)})"
    named = ", ".join(f"{expr} AS k{n}" for n, expr in enumerate(spec.keys))
    page_keys = [f"page.k{n}" for n in range(len(spec.keys))] + ["page.id"]
    if materialize:
        found_keys = [f"found.k{n}" for n in range(len(spec.keys))] + ["found.id"]
        page = f"""found AS MATERIALIZED (
    SELECT s.id, {named}
    FROM shipments s
    WHERE {conditions}{bound}
), page AS (
    SELECT * FROM found
    ORDER BY {_order_by(found_keys, scan_desc)}
    LIMIT {param(limit + 1, "int")}
)"""  # noqa: S608 - constant fragments and $n placeholders only
    elif walk is not None:
        walked = [f"s.k{n}" for n in range(len(spec.keys))]
        page = f"""page AS (
    SELECT s.id, {", ".join(walked)}
    FROM (
        SELECT s.*, {named}
        FROM shipments s
        WHERE true{ranked}{bound}
        ORDER BY {_order_by(keys, scan_desc)}
        LIMIT {param(walk, "int")}
    ) AS s
    WHERE {conditions}
    ORDER BY {_order_by([*walked, "s.id"], scan_desc)}
    LIMIT {param(limit + 1, "int")}
)"""  # noqa: S608 - constant fragments and $n placeholders only
    else:
        page = f"""page AS (
    SELECT s.id, {named}
    FROM shipments s
    WHERE {conditions}{bound}
    ORDER BY {_order_by(keys, scan_desc)}
    LIMIT {param(limit + 1, "int")}
)"""  # noqa: S608 - constant fragments and $n placeholders only
    sql = f"""
WITH {page}
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


@dataclass(frozen=True, slots=True)
class RankPlan:
    """The urgency ranks a view's rows can have, and how many shipments have those ranks."""

    ranks: list[int]
    shipments: int


_RANKS = f"""
SELECT {RANK} AS rank,
       COALESCE(sum(s.n) FILTER (WHERE {{conditions}}), 0)::bigint AS matching,
       sum(s.n)::bigint AS shipments
FROM shipment_counts s
GROUP BY 1
"""  # noqa: S608 - constant fragments only


async def rank_plan(conn: Connection, where: ShipmentFilter) -> RankPlan:
    """Which ranks can hold rows of ``where`` (by its counted filters), from the counts."""
    param = Params()
    sql = _RANKS.format(conditions=conditions_sql(counted_part(where), param))
    rows = await conn.fetch(sql, *param.values)
    found = [row for row in rows if row["matching"] > 0]
    return RankPlan(sorted(row["rank"] for row in found), sum(row["shipments"] for row in found))


def _dated(where: ShipmentFilter) -> bool:
    return where.shipped_from is not None or where.shipped_before is not None


_COUNT_UP_TO = """
SELECT count(*) FROM (SELECT FROM shipments s WHERE {conditions} LIMIT {limit}) AS found
"""


async def fetch_page(
    pool: asyncpg.Pool,
    where: ShipmentFilter,
    sort: str,
    descending: bool,
    after: Position | None,
    limit: int,
    *,
    view_rows: int | None = None,
) -> Page:
    """The rows of one page and the positions of the pages beside it (None: there is none).

    The urgency sort reads only the ranks the view's rows can have. A small view (the ranks its
    rows can have hold at most :data:`MATERIALIZE_BELOW` shipments, in a sort other than
    urgency; or it has shipping dates, read by their index, and at most that many rows:
    ``view_rows`` when the caller counted them) walks the first :data:`WALK` shipments of the
    sort's index, and is read whole and sorted when they do not fill the page. A big view walks
    the index. Everything is read in one snapshot, so a shipment changing its rank meanwhile
    is not missed.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        plan = await rank_plan(conn, where)
        if not plan.ranks:
            return Page([], None, None)
        by_rank = sort == "status"
        small = plan.shipments <= MATERIALIZE_BELOW and not by_rank
        if not small and _dated(where):
            if view_rows is None:
                param = Params()
                conditions = conditions_sql(where, param)
                bound = param(MATERIALIZE_BELOW + 1, "int")
                count = _COUNT_UP_TO.format(conditions=conditions, limit=bound)
                view_rows = await conn.fetchval(count, *param.values)
            small = view_rows is not None and view_rows <= MATERIALIZE_BELOW
        ranks = plan.ranks if by_rank or small else None
        if small:  # a short walk first: enough when the view's rows are near its start
            walk_ranks = ranks if by_rank else None  # else a filter, no bound on the walk
            sql, args = page_statement(
                where, sort, descending, after, limit, ranks=walk_ranks, walk=WALK
            )
            rows = await conn.fetch(sql, *args)
            if len(rows) <= limit:
                sql, args = page_statement(
                    where, sort, descending, after, limit, ranks=ranks, materialize=True
                )
                rows = await conn.fetch(sql, *args)
        else:
            sql, args = page_statement(where, sort, descending, after, limit, ranks=ranks)
            rows = await conn.fetch(sql, *args)
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

PING = "SELECT 1"


async def fetch_shipment(pool: asyncpg.Pool, shipment_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(SHIPMENT_BY_ID, shipment_id)


async def fetch_events(pool: asyncpg.Pool, shipment_id: int) -> list[asyncpg.Record]:
    """Every event of the shipment, oldest first."""
    return await pool.fetch(EVENTS_OF_SHIPMENT, shipment_id)


async def fetch_notices(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Stores with a sync error or notice, and carriers whose circuit is open."""
    return await pool.fetch(STORE_PROBLEMS), await paused_carriers(pool)


async def ping(pool: asyncpg.Pool) -> None:
    """Raises if the database does not answer."""
    await pool.fetchval(PING)
