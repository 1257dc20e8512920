"""The SQL behind the status table, the shipment page and the JSON API.

Every statement is plain SQL with ``$n`` parameters, written out whole; nothing a request
sends is ever part of the SQL text.

The table's order is a keyset: ``(sort_rank, sort_time, id)``, all ascending.
``sort_rank`` puts attention flags first (most urgent first, see
:data:`tracker.engine.attention.FLAGS`),
then other carrier problems, then statuses by :data:`tracker.domain.URGENCY`;
``sort_time`` is minus the microseconds since the epoch of ``status_at`` (newest first, no
status time last). A page ends with the key of its last row, and the next page starts after it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import asyncpg

from tracker.domain import URGENCY
from tracker.engine.attention import FLAGS

CARRIER_PROBLEMS = ("not_found", "invalid_number", "carrier_error", "unavailable", "no_adapter")
DEFAULT_LIMIT = 100
MAX_LIMIT = 500

_RANKED_STATUSES = [status.value for status in URGENCY if status is not None]
_RANKS = [URGENCY[status] for status in URGENCY if status is not None]
_NO_STATUS_RANK = URGENCY[None]
_BIGINT_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1


class InvalidCursor(ValueError):
    """A ``cursor`` query parameter that this code did not hand out."""


@dataclass(frozen=True, slots=True)
class SortKey:
    """Where a row sits in the table's order; the opaque ``cursor`` is this, encoded."""

    rank: int
    time: int
    id: int

    def encode(self) -> str:
        raw = json.dumps([self.rank, self.time, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> SortKey:
        """The key in ``token``; :class:`InvalidCursor` for anything else."""
        if len(token) > 200:
            raise InvalidCursor("cursor is too long")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            parts = json.loads(raw)
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor("cursor is not one this server handed out") from exc
        if (
            not isinstance(parts, list)
            or len(parts) != 3
            or not all(type(part) is int for part in parts)
            or not 0 <= parts[0] <= _INT_MAX
            or not -_BIGINT_MAX <= parts[1] <= _BIGINT_MAX
            or not 0 <= parts[2] <= _BIGINT_MAX
        ):
            raise InvalidCursor("cursor is not one this server handed out")
        return cls(parts[0], parts[1], parts[2])


@dataclass(frozen=True, slots=True)
class ShipmentFilter:
    """Which shipments the table shows. ``statuses`` None: any status."""

    statuses: tuple[str, ...] | None = None
    no_status: bool = False
    carrier: str | None = None
    search: str | None = None
    include_inactive: bool = False

    def where_args(self) -> tuple[object, ...]:
        """Arguments ``$1``-``$5`` of :data:`SHIPMENT_PAGE` and :data:`STATUS_COUNTS`."""
        statuses = None if self.statuses is None and not self.no_status else self.statuses or ()
        return (
            None if statuses is None else list(statuses),
            self.no_status,
            self.carrier,
            self.search,
            self.include_inactive,
        )


# Shared by SHIPMENT_PAGE and STATUS_COUNTS (written out in each): $1 text[] statuses (NULL:
# any), $2 bool also no status, $3 carrier ('unknown': no carrier known), $4 search text,
# $5 bool include retired shipments.
#
# The last event: shipments.last_event_id when it is one of the shipment's events, else the
# newest by happened_at. Write-back counts: sending counts as pending (not written yet).
#
# $6 text[] statuses by urgency, $7 int[] their ranks, $8 rank of no status,
# $9 text[] carrier problem states, $10-$12 the key to start after (NULL: first page), $13 limit.
SHIPMENT_PAGE = """
WITH page AS (
    SELECT k.id, k.sort_rank, k.sort_time
    FROM (
        SELECT s.id,
               CASE WHEN s.attention IS NOT NULL
                        THEN COALESCE(array_position($14::text[], s.attention), 0)
                    WHEN s.carrier_state = ANY($9::text[]) THEN 20
                    ELSE 21 + COALESCE(($7::int[])[array_position($6::text[], s.status)], $8::int)
               END AS sort_rank,
               COALESCE(-(extract(epoch FROM s.status_at) * 1000000)::bigint,
                        9223372036854775807) AS sort_time
        FROM shipments s
        WHERE ($1::text[] IS NULL OR s.status = ANY($1::text[]) OR ($2::bool AND s.status IS NULL))
          AND ($3::text IS NULL OR s.carrier = $3::text
               OR ($3::text = 'unknown' AND s.carrier IS NULL))
          AND ($4::text IS NULL
               OR strpos(lower(s.order_name), lower($4::text)) > 0
               OR strpos(lower(s.tracking_number), lower($4::text)) > 0)
          AND ($5::bool OR s.retired_reason IS NULL)
    ) k
    WHERE $10::int IS NULL
       OR (k.sort_rank, k.sort_time, k.id) > ($10::int, $11::bigint, $12::bigint)
    ORDER BY k.sort_rank, k.sort_time, k.id
    LIMIT $13::int
)
SELECT page.sort_rank, page.sort_time,
       s.id, sh.domain AS shop, s.order_id, s.order_name, s.fulfillment_id, s.tracking_number,
       s.tracking_company, s.carrier, s.carrier_source, s.status, s.status_at, s.carrier_state,
       s.carrier_message, s.attention, s.attention_since,
       s.estimated_delivery_at, s.active, s.retired_reason, s.last_polled_at,
       ev.id AS ev_id, ev.status AS ev_status, ev.message AS ev_message, ev.city AS ev_city,
       ev.province AS ev_province, ev.country AS ev_country, ev.zip AS ev_zip,
       ev.happened_at AS ev_happened_at, ev.carrier_code AS ev_carrier_code,
       wb.written AS wb_written, wb.pending AS wb_pending, wb.failed AS wb_failed
FROM page
JOIN shipments s ON s.id = page.id
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
) wb
ORDER BY page.sort_rank, page.sort_time, page.id
"""

# The same columns as SHIPMENT_PAGE (without the sort key) for one shipment.
SHIPMENT_BY_ID = """
SELECT s.id, sh.domain AS shop, s.order_id, s.order_name, s.fulfillment_id, s.tracking_number,
       s.tracking_company, s.carrier, s.carrier_source, s.status, s.status_at, s.carrier_state,
       s.carrier_message, s.attention, s.attention_since,
       s.estimated_delivery_at, s.active, s.retired_reason, s.last_polled_at,
       ev.id AS ev_id, ev.status AS ev_status, ev.message AS ev_message, ev.city AS ev_city,
       ev.province AS ev_province, ev.country AS ev_country, ev.zip AS ev_zip,
       ev.happened_at AS ev_happened_at, ev.carrier_code AS ev_carrier_code,
       wb.written AS wb_written, wb.pending AS wb_pending, wb.failed AS wb_failed
FROM shipments s
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
) wb
WHERE s.id = $1::bigint
"""

EVENTS_OF_SHIPMENT = """
SELECT id, status, happened_at, time_source, carrier_code, message, city, province, country,
       zip, estimated_delivery_at, discovered_at, writeback_state, writeback_attempts,
       writeback_error, shopify_event_id, written_at
FROM tracking_events
WHERE shipment_id = $1::bigint
ORDER BY happened_at, id
"""

# Shipments per status under the filters $1-$5 (the caller leaves the status part empty, since
# these counts are what the status filter chooses from); $6 text[] carrier problem states.
STATUS_COUNTS = """
SELECT s.status, count(*) AS shipments,
       count(*) FILTER (WHERE s.carrier_state = ANY($6::text[])) AS carrier_problems
FROM shipments s
WHERE ($1::text[] IS NULL OR s.status = ANY($1::text[]) OR ($2::bool AND s.status IS NULL))
  AND ($3::text IS NULL OR s.carrier = $3::text OR ($3::text = 'unknown' AND s.carrier IS NULL))
  AND ($4::text IS NULL
       OR strpos(lower(s.order_name), lower($4::text)) > 0
       OR strpos(lower(s.tracking_number), lower($4::text)) > 0)
  AND ($5::bool OR s.retired_reason IS NULL)
GROUP BY s.status
"""

CARRIERS_PRESENT = """
SELECT DISTINCT carrier FROM shipments ORDER BY carrier NULLS LAST
"""

PING = "SELECT 1"


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[asyncpg.Record]
    next_key: SortKey | None


@dataclass(frozen=True, slots=True)
class StatusCounts:
    by_status: dict[str | None, int]
    carrier_problems: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


async def fetch_shipment_page(
    pool: asyncpg.Pool, where: ShipmentFilter, limit: int, after: SortKey | None
) -> Page:
    """Up to ``limit`` shipments after ``after`` in the table's order, and the next page's key."""
    rows = await pool.fetch(
        SHIPMENT_PAGE,
        *where.where_args(),
        _RANKED_STATUSES,
        _RANKS,
        _NO_STATUS_RANK,
        list(CARRIER_PROBLEMS),
        None if after is None else after.rank,
        None if after is None else after.time,
        None if after is None else after.id,
        limit + 1,
        list(FLAGS),
    )
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_key = SortKey(last["sort_rank"], last["sort_time"], last["id"])
    return Page(rows, next_key)


async def fetch_status_counts(pool: asyncpg.Pool, where: ShipmentFilter) -> StatusCounts:
    """Shipments per status under ``where`` without its status part."""
    args = ShipmentFilter(
        carrier=where.carrier, search=where.search, include_inactive=where.include_inactive
    ).where_args()
    rows = await pool.fetch(STATUS_COUNTS, *args, list(CARRIER_PROBLEMS))
    return StatusCounts(
        by_status={row["status"]: row["shipments"] for row in rows},
        carrier_problems=sum(row["carrier_problems"] for row in rows),
    )


async def fetch_carriers(pool: asyncpg.Pool) -> list[str | None]:
    """Every carrier code some shipment has; None when some have no carrier."""
    return [row["carrier"] for row in await pool.fetch(CARRIERS_PRESENT)]


async def fetch_shipment(pool: asyncpg.Pool, shipment_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(SHIPMENT_BY_ID, shipment_id)


async def fetch_events(pool: asyncpg.Pool, shipment_id: int) -> list[asyncpg.Record]:
    """Every event of the shipment, oldest first."""
    return await pool.fetch(EVENTS_OF_SHIPMENT, shipment_id)


async def ping(pool: asyncpg.Pool) -> None:
    """Raises if the database does not answer."""
    await pool.fetchval(PING)
