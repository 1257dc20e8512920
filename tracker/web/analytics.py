"""The figures behind ``/analytics``, each computed by one SQL statement.

The period is the last 7, 30 or 90 whole UTC days, today included: ``[start, end)`` with
``end`` the coming midnight (UTC).

- Status by day: per day, the shipments with scans that day, by the status their last scan of
  the day left them in (grouped as the status table's colours are).
- Transit time per carrier: of the shipments first scanned delivered in the period, the days
  from the first carrier scan past pre-transit (else ``fulfilled_at``) to that delivery scan;
  median and 90th percentile (``percentile_cont``).
- On time: of those deliveries with a first ETA, the share delivered on or before the ETA's
  day (UTC).
- Exceptions per carrier: of the shipments fulfilled in the period, the share that failed or
  was returned, and the share with a failed delivery attempt (and no failure).
- Write-back backlog (now, whatever the period): events pending or being sent, per shop, and
  how long the oldest has waited since it was discovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from tracker.domain import Status

RANGES = (7, 30, 90)
DEFAULT_RANGE = 30

PRE_TRANSIT = (Status.LABEL_PURCHASED, Status.LABEL_PRINTED, Status.CONFIRMED)


@dataclass(frozen=True, slots=True)
class StatusGroup:
    key: str
    name: str
    color: str
    statuses: tuple[Status, ...]


STATUS_GROUPS = (
    StatusGroup("pre_transit", "Pre-transit", "#8c959f", PRE_TRANSIT),
    StatusGroup(
        "in_transit", "In transit", "#4a90d9", (Status.CARRIER_PICKED_UP, Status.IN_TRANSIT)
    ),
    StatusGroup("out_for_delivery", "Out for delivery", "#8250df", (Status.OUT_FOR_DELIVERY,)),
    StatusGroup(
        "attention",
        "Attempted, delayed or at a pickup point",
        "#bf8700",
        (Status.ATTEMPTED_DELIVERY, Status.DELAYED, Status.READY_FOR_PICKUP),
    ),
    StatusGroup("failure", "Failed or returned", "#cf222e", (Status.FAILURE,)),
    StatusGroup("delivered", "Delivered", "#2da44e", (Status.DELIVERED,)),
)

# $1 start, $2 end, $3 text[] statuses, $4 text[] their groups.
STATUS_BY_DAY = """
WITH last_of_day AS (
    SELECT DISTINCT ON (e.shipment_id, (e.happened_at AT TIME ZONE 'UTC')::date)
           (e.happened_at AT TIME ZONE 'UTC')::date AS day, e.status
    FROM tracking_events e
    WHERE e.status IS NOT NULL AND e.happened_at >= $1 AND e.happened_at < $2
    ORDER BY e.shipment_id, (e.happened_at AT TIME ZONE 'UTC')::date,
             e.happened_at DESC, e.id DESC
)
SELECT day, ($4::text[])[array_position($3::text[], status)] AS series, count(*) AS shipments
FROM last_of_day
GROUP BY 1, 2
HAVING ($4::text[])[array_position($3::text[], status)] IS NOT NULL
ORDER BY 1, 2
"""

# $1 start, $2 end, $3 text[] pre-transit statuses. The row with carrier NULL is all carriers
# (no rows at all when nothing was delivered).
DELIVERIES = """
WITH delivered AS (
    SELECT COALESCE(s.carrier, 'unknown') AS carrier, s.first_eta, d.delivered_at,
           COALESCE(f.first_scan, s.fulfilled_at) AS started_at
    FROM shipments s
    CROSS JOIN LATERAL (
        SELECT min(e.happened_at) AS delivered_at FROM tracking_events e
        WHERE e.shipment_id = s.id AND e.status = 'delivered'
    ) d
    CROSS JOIN LATERAL (
        SELECT min(e.happened_at) AS first_scan FROM tracking_events e
        WHERE e.shipment_id = s.id AND e.status IS NOT NULL
          AND e.status <> ALL($3::text[]) AND e.happened_at < d.delivered_at
    ) f
    WHERE s.status = 'delivered' AND s.status_at >= $1
      AND d.delivered_at >= $1 AND d.delivered_at < $2
), timed AS (
    SELECT carrier, first_eta, delivered_at,
           (extract(epoch FROM delivered_at - started_at) / 86400.0)::float8 AS days
    FROM delivered
)
SELECT carrier, count(*) AS delivered,
       count(*) FILTER (WHERE days >= 0) AS timed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FILTER (WHERE days >= 0) AS median_days,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY days) FILTER (WHERE days >= 0) AS p90_days,
       count(first_eta) AS with_eta,
       count(*) FILTER (WHERE (delivered_at AT TIME ZONE 'UTC')::date
                              <= (first_eta AT TIME ZONE 'UTC')::date) AS on_time,
       round(100.0 * count(*) FILTER (WHERE (delivered_at AT TIME ZONE 'UTC')::date
                                            <= (first_eta AT TIME ZONE 'UTC')::date)
             / NULLIF(count(first_eta), 0), 1)::float8 AS on_time_pct
FROM timed
GROUP BY GROUPING SETS ((carrier), ())
HAVING count(*) > 0
ORDER BY carrier NULLS LAST
"""

# $1 start, $2 end. The row with carrier NULL is all carriers (no rows when nothing shipped).
EXCEPTIONS = """
WITH shipped AS (
    SELECT s.carrier,
           COALESCE(s.status = 'failure', false) OR EXISTS (
               SELECT 1 FROM tracking_events e
               WHERE e.shipment_id = s.id AND e.status = 'failure') AS failed,
           EXISTS (
               SELECT 1 FROM tracking_events e
               WHERE e.shipment_id = s.id AND e.status = 'attempted_delivery') AS attempted
    FROM shipments s
    WHERE s.carrier IS NOT NULL AND s.carrier_state <> 'untracked'
      AND COALESCE(s.fulfilled_at, s.created_at) >= $1
      AND COALESCE(s.fulfilled_at, s.created_at) < $2
)
SELECT carrier, count(*) AS shipments,
       count(*) FILTER (WHERE failed) AS failed,
       count(*) FILTER (WHERE attempted AND NOT failed) AS attempted,
       round(100.0 * count(*) FILTER (WHERE failed) / count(*), 1)::float8 AS failed_pct,
       round(100.0 * count(*) FILTER (WHERE attempted AND NOT failed) / count(*), 1)::float8
           AS attempted_pct
FROM shipped
GROUP BY GROUPING SETS ((carrier), ())
HAVING count(*) > 0
ORDER BY carrier NULLS LAST
"""

# The row with shop NULL is all shops (always present, zero when nothing waits).
BACKLOG = """
SELECT sh.domain AS shop,
       count(*) FILTER (WHERE e.writeback_state = 'pending') AS pending,
       count(*) FILTER (WHERE e.writeback_state = 'sending') AS sending,
       extract(epoch FROM now() - min(e.discovered_at))::float8 AS oldest_seconds
FROM tracking_events e
JOIN shipments s ON s.id = e.shipment_id
JOIN shops sh ON sh.id = s.shop_id
WHERE e.writeback_state IN ('pending', 'sending')
GROUP BY GROUPING SETS ((sh.domain), ())
ORDER BY sh.domain NULLS LAST
"""


@dataclass(frozen=True, slots=True)
class Period:
    days: int
    start: datetime
    end: datetime

    @classmethod
    def last(cls, days: int, now: datetime | None = None) -> Period:
        """The last ``days`` whole UTC days, today included."""
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        end = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
        return cls(days, end - timedelta(days=days), end)

    @property
    def dates(self) -> list[date]:
        first = self.start.date()
        return [first + timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True, slots=True)
class Deliveries:
    carrier: str | None  # None: all carriers
    delivered: int
    timed: int
    median_days: float | None
    p90_days: float | None
    with_eta: int
    on_time: int
    on_time_pct: float | None


@dataclass(frozen=True, slots=True)
class Exceptions:
    carrier: str | None  # None: all carriers
    shipments: int
    failed: int
    attempted: int
    failed_pct: float
    attempted_pct: float


@dataclass(frozen=True, slots=True)
class Backlog:
    shop: str | None  # None: all shops
    pending: int
    sending: int
    oldest_seconds: float | None


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    status_by_day: dict[str, list[int]]  # group key -> one count per day of the period
    deliveries: list[Deliveries]
    exceptions: list[Exceptions]
    backlog: list[Backlog]


async def fetch_report(pool: asyncpg.Pool, period: Period) -> Report:
    """Every figure of the analytics page for ``period``."""
    statuses = [s.value for g in STATUS_GROUPS for s in g.statuses]
    groups = [g.key for g in STATUS_GROUPS for _ in g.statuses]
    index = {day: i for i, day in enumerate(period.dates)}
    by_day = {g.key: [0] * period.days for g in STATUS_GROUPS}
    for row in await pool.fetch(STATUS_BY_DAY, period.start, period.end, statuses, groups):
        if row["day"] in index:
            by_day[row["series"]][index[row["day"]]] = row["shipments"]
    pre_transit = [s.value for s in PRE_TRANSIT]
    deliveries = [
        Deliveries(**dict(row))
        for row in await pool.fetch(DELIVERIES, period.start, period.end, pre_transit)
    ]
    exceptions = [
        Exceptions(**dict(row)) for row in await pool.fetch(EXCEPTIONS, period.start, period.end)
    ]
    backlog = [Backlog(**dict(row)) for row in await pool.fetch(BACKLOG)]
    return Report(period, by_day, deliveries, exceptions, backlog)
