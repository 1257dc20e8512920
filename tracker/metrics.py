"""Prometheus metrics of one daemon: counters fed from its jobs' reports, gauges read on scrape.

Each :class:`Metrics` owns a private ``CollectorRegistry``, so several daemons in one process
(tests, replicas) never share or collide on a series. Counters count what this process did;
the gauges that describe shared state (write-back backlog, due shipments, open circuits) are
read from PostgreSQL when ``/metrics`` is scraped (:meth:`MetricsSource.scrape`), so every
replica reports the same figures for them.

Carrier latency and poll outcomes are observed around ``adapter.track`` by :func:`timed`, which
the daemon wraps around each adapter it hands the poller; the rest comes from the reports the
jobs already return (:class:`~tracker.engine.poller.PollReport`, ``WriteReport``, ...).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from carriers.base import Adapter, CarrierUnavailable, SharedRateSpent, TrackResult
from tracker.engine.circuit import REASONS, paused_carriers
from tracker.engine.poller import PollReport
from tracker.logs import log_context
from tracker.shopify.client import ShopifyClient
from tracker.shopify.sync import SyncReport
from tracker.shopify.webhook_topics import HANDLED_TOPICS
from tracker.shopify.writeback import WriteReport

POLL_OUTCOMES = (
    "found",
    "not_found",
    "invalid_number",
    "carrier_error",
    "unavailable",
    "over_budget",
)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SCRAPE_TIMEOUT_SECONDS = 5.0
OTHER_TOPIC = "other"

_DUE = """
SELECT carrier, count(*) AS due FROM shipments
WHERE active AND next_poll_at <= now() AND carrier = ANY($1::text[])
GROUP BY carrier
"""

_BACKLOG = """
SELECT s.shop_id, count(*) AS backlog
FROM tracking_events e JOIN shipments s ON s.id = e.shipment_id
WHERE e.writeback_state IN ('pending', 'sending')
GROUP BY s.shop_id
"""


class Metrics:
    """Every series the daemon exports, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._timers: dict[str, Histogram] = {}
        self._poll_series: dict[tuple[str, str], Counter] = {}
        self.polls = Counter(
            "tracker_polls",
            "Tracking numbers polled (or put off for lack of budget), by carrier and outcome.",
            ["carrier", "outcome"],
            registry=registry,
        )
        self.carrier_seconds = Histogram(
            "tracker_carrier_request_seconds",
            "Duration of one adapter.track call (one batch of numbers), failed calls included.",
            ["carrier"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.events_found = Counter(
            "tracker_events_found",
            "New tracking events stored (each scan once), by carrier.",
            ["carrier"],
            registry=registry,
        )
        self.events_written = Counter(
            "tracker_events_written",
            "Events written to Shopify, or found written there after a lost answer, by shop.",
            ["shop"],
            registry=registry,
        )
        self.writeback_failed = Counter(
            "tracker_writeback_failed",
            "Events Shopify refused, or given up after repeated transport errors, by shop.",
            ["shop"],
            registry=registry,
        )
        self.writeback_backlog = Gauge(
            "tracker_writeback_backlog",
            "Events waiting to be written to Shopify (pending or sending), by shop.",
            ["shop"],
            registry=registry,
        )
        self.bucket_available = Gauge(
            "tracker_shopify_bucket_available",
            "Points left in the store's GraphQL cost bucket (our estimate, refill included).",
            ["shop"],
            registry=registry,
        )
        self.bucket_maximum = Gauge(
            "tracker_shopify_bucket_maximum",
            "Size of the store's GraphQL cost bucket, as Shopify reports it.",
            ["shop"],
            registry=registry,
        )
        self.due = Gauge(
            "tracker_due_shipments",
            "Active shipments whose next poll is due now, by carrier.",
            ["carrier"],
            registry=registry,
        )
        self.claims = Counter(
            "tracker_claims",
            "Shipments this process claimed for polling.",
            registry=registry,
        )
        self.circuit_open = Gauge(
            "tracker_carrier_circuit_open",
            "1 while the carrier's circuit is open (left alone after repeated failures), else 0.",
            ["carrier"],
            registry=registry,
        )
        self.circuit_reason = Gauge(
            "tracker_carrier_circuit_reason",
            "1 while the carrier's circuit is open for this reason: credentials (the carrier "
            "refuses our key: a person must fix it) or unavailable (failures, a long "
            "Retry-After: it passes by itself); else 0.",
            ["carrier", "reason"],
            registry=registry,
        )
        self.webhooks_received = Counter(
            "tracker_webhooks_received",
            "Authentic Shopify webhook deliveries received, by topic (unhandled ones: other).",
            ["topic"],
            registry=registry,
        )
        self.sync_orders = Counter(
            "tracker_sync_orders",
            "Orders read from Shopify by the incremental sync, by shop.",
            ["shop"],
            registry=registry,
        )

    def prepare(self, carriers: Collection[str], shops: Collection[str]) -> None:
        """Create the labelled series at zero, so they exist before the first event."""
        for carrier in carriers:
            for outcome in POLL_OUTCOMES:
                self.polls.labels(carrier, outcome)
            self.carrier_seconds.labels(carrier)
            self.events_found.labels(carrier)
        for shop in shops:
            self.events_written.labels(shop)
            self.writeback_failed.labels(shop)
            self.sync_orders.labels(shop)

    def tracked(
        self,
        carrier: str,
        seconds: float,
        results: Mapping[str, TrackResult] | None,
        *,
        failed_outcome: str = "carrier_error",
        numbers: int = 0,
    ) -> None:
        """One ``track`` call: its duration and each number's outcome (all failed if no results)."""
        timer = self._timers.get(carrier)
        if timer is None:
            timer = self._timers[carrier] = self.carrier_seconds.labels(carrier)
        timer.observe(seconds)
        if results is None:
            if numbers:
                self._polls(carrier, failed_outcome).inc(numbers)
            return
        if len(results) == 1:  # a one-number API's call: most calls
            for result in results.values():
                self._polls(carrier, result.outcome.value).inc()
            return
        for outcome, count in Tally(r.outcome.value for r in results.values()).items():
            self._polls(carrier, outcome).inc(count)

    def _polls(self, carrier: str, outcome: str) -> Counter:
        """``polls.labels(carrier, outcome)``, looked up once (the client library takes a lock
        and builds a key on every look-up; this runs for every request to a carrier)."""
        series = self._poll_series.get((carrier, outcome))
        if series is None:
            series = self._poll_series[carrier, outcome] = self.polls.labels(carrier, outcome)
        return series

    def polled(self, report: PollReport) -> None:
        """One ``poll_due`` call (one claimed batch)."""
        self.claims.inc(report.claimed)
        for carrier, count in report.over_budget_by_carrier.items():
            self.polls.labels(carrier, "over_budget").inc(count)
        for carrier, count in report.new_events_by_carrier.items():
            self.events_found.labels(carrier).inc(count)

    def wrote(self, shop: str, report: WriteReport) -> None:
        """One write-back drain of ``shop``."""
        self.events_written.labels(shop).inc(report.written + report.reconciled)
        self.writeback_failed.labels(shop).inc(report.failed)

    def synced(self, shop: str, report: SyncReport) -> None:
        self.sync_orders.labels(shop).inc(report.orders)

    def webhook_received(self, topic: str) -> None:
        self.webhooks_received.labels(topic if topic in HANDLED_TOPICS else OTHER_TOPIC).inc()

    def read_buckets(self, clients: Mapping[str, ShopifyClient]) -> None:
        """Each store's cost bucket, once a Shopify answer has told us its size."""
        now = time.monotonic()
        for shop, client in clients.items():
            bucket = client.bucket
            if not bucket.calibrated:
                continue
            self.bucket_maximum.labels(shop).set(bucket.maximum)
            self.bucket_available.labels(shop).set(max(0.0, bucket.level(now)))

    async def read_database(
        self, pool: asyncpg.Pool, carriers: Sequence[str], shops: Mapping[int, str]
    ) -> None:
        """Due shipments, write-back backlog and open circuits, as PostgreSQL has them now."""
        async with pool.acquire() as conn:
            due = {r["carrier"]: r["due"] for r in await conn.fetch(_DUE, list(carriers))}
            backlog = {r["shop_id"]: r["backlog"] for r in await conn.fetch(_BACKLOG)}
            reasons = {r["carrier"]: r["reason"] for r in await paused_carriers(conn)}
        # Every value is known before any gauge changes: a failed read leaves the last figures.
        for carrier in carriers:
            self.due.labels(carrier).set(due.get(carrier, 0))
            self.circuit_open.labels(carrier).set(1 if carrier in reasons else 0)
            for reason in REASONS:
                open_for_it = reasons.get(carrier) == reason
                self.circuit_reason.labels(carrier, reason).set(1 if open_for_it else 0)
        for shop_id, shop in shops.items():
            self.writeback_backlog.labels(shop).set(backlog.get(shop_id, 0))


@dataclass(frozen=True)
class MetricsSource:
    """What ``/metrics`` reads: a daemon's metrics and the live objects behind its gauges."""

    metrics: Metrics
    pool: asyncpg.Pool
    carriers: tuple[str, ...]
    shops: Mapping[int, str]
    """Shop id -> domain, for the shops this daemon serves."""
    clients: Mapping[str, ShopifyClient]
    """Domain -> client."""
    timeout: float = SCRAPE_TIMEOUT_SECONDS

    async def scrape(self) -> bytes:
        """The Prometheus text exposition, database gauges refreshed (``TimeoutError`` after
        ``timeout`` seconds, asyncpg or OS errors when PostgreSQL cannot answer)."""
        await asyncio.wait_for(
            self.metrics.read_database(self.pool, self.carriers, self.shops), self.timeout
        )
        self.metrics.read_buckets(self.clients)
        return generate_latest(self.metrics.registry)


def timed(adapter: Adapter, metrics: Metrics) -> Adapter:
    """``adapter`` with each ``track`` call timed and its outcomes counted in ``metrics``.

    Log lines emitted during the call carry ``carrier`` (see :func:`tracker.logs.log_context`).
    Anything else is the wrapped adapter's own.
    """

    class Timed:
        code: ClassVar[str] = adapter.code
        display_name: ClassVar[str] = adapter.display_name
        max_batch: ClassVar[int] = adapter.max_batch
        default_requests_per_second: ClassVar[float] = adapter.default_requests_per_second
        default_requests_per_day: ClassVar[int | None] = adapter.default_requests_per_day
        wrapped: ClassVar[Adapter] = adapter

        async def track(self, numbers: Sequence[str]) -> dict[str, TrackResult]:
            with log_context(carrier=adapter.code):
                started = time.perf_counter()
                try:
                    results = await adapter.track(numbers)
                except SharedRateSpent:  # the replicas' shared rate: postponed, not failed
                    self._failed("over_budget", started, numbers)
                    raise
                except CarrierUnavailable:
                    self._failed("unavailable", started, numbers)
                    raise
                except Exception:
                    self._failed("carrier_error", started, numbers)
                    raise
                metrics.tracked(adapter.code, time.perf_counter() - started, results)
                return results

        def public_url(self, number: str) -> str:
            return adapter.public_url(number)

        def __getattr__(self, name: str) -> object:
            return getattr(adapter, name)

        @staticmethod
        def _failed(outcome: str, started: float, numbers: Sequence[str]) -> None:
            metrics.tracked(
                adapter.code,
                time.perf_counter() - started,
                None,
                failed_outcome=outcome,
                numbers=len(set(numbers)),
            )

    return Timed()
