"""The daemon: scheduler jobs (sync, poll sweep, write-back drain) and the web server.

All state lives in PostgreSQL; this object only holds connections and timers, so stopping it
at any moment loses nothing. :meth:`Daemon.stop` stops claiming work, gives in-flight jobs
a bounded time to finish, then cancels them (a cancelled write stays ``sending`` and is
resolved against Shopify on the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import asyncpg
from aiohttp import web
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from carriers.base import Adapter
from carriers.registry import build_adapters
from tracker.config import Config
from tracker.engine.attention import refresh_attention
from tracker.engine.circuit import forget_refusals
from tracker.engine.outage import DATABASE_DOWN, DatabaseWatch
from tracker.engine.pacing import PostgresPacing, forget_old_windows
from tracker.engine.poller import SlowCarriers, poll_due
from tracker.engine.recorder import Recorder
from tracker.logs import log_context
from tracker.metrics import Metrics, MetricsSource, timed
from tracker.shopify.client import ShopifyAuthError, ShopifyClient, ShopifyError
from tracker.shopify.subscriptions import callback_url, register_webhooks
from tracker.shopify.sync import ShopRow, ensure_shops, record_sync_error, sync_shop
from tracker.shopify.webhooks import WebhookProcessor
from tracker.shopify.writeback import Writer, WriteReport
from tracker.web.app import build_app
from tracker.web.metrics import add_metrics_route
from tracker.web.webhooks import WEBHOOK_ENDPOINT

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
WEBHOOK_INTERVAL_SECONDS = 2.0
RECORDER_GRACE_SECONDS = 2.0
"""On stop, how long results already received may take to be stored before the daemon goes on
without them (they are polled again when their claims expire)."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Daemon:
    config: Config
    pool: asyncpg.Pool
    worker: str = field(default_factory=new_worker_id)
    url: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    _session: aiohttp.ClientSession | None = None
    _scheduler: AsyncIOScheduler | None = None
    _runner: web.AppRunner | None = None
    _adapters: dict[str, Adapter] = field(default_factory=dict)
    _timed_adapters: dict[str, Adapter] = field(default_factory=dict)
    _clients: dict[int, ShopifyClient] = field(default_factory=dict)
    _shops: dict[int, ShopRow] = field(default_factory=dict)
    _writer: Writer | None = None
    _webhooks: WebhookProcessor | None = None
    _registration: asyncio.Task[None] | None = None
    _jobs: set[asyncio.Task[None]] = field(default_factory=set)
    _in_flight: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _slow: SlowCarriers = field(default_factory=SlowCarriers)  # see poll_due
    _recorder: Recorder | None = None
    _stopping: bool = False
    _database: DatabaseWatch = field(default_factory=DatabaseWatch)
    _refusals: dict[int, str | None] = field(default_factory=dict)

    async def start(self, *, serve_web: bool = True) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0,  # carriers are bounded by polling.requests_in_flight, Shopify by cost
                limit_per_host=self.config.polling.requests_in_flight,
            )
        )
        self._adapters = build_adapters(self.config.carriers, self._session)
        for code, adapter in self._adapters.items():
            use_shared_pacing = getattr(adapter, "use_shared_pacing", None)
            if callable(use_shared_pacing):  # see carriers.base: extra requests per call
                use_shared_pacing(PostgresPacing(self.pool, code))
        await forget_refusals(self.pool, self._adapters)
        rows = await ensure_shops(self.pool, self.config.shops)
        for shop in self.config.shops:
            row = rows[shop.domain]
            self._shops[row.id] = row
            self._clients[row.id] = ShopifyClient(shop, self._session)
        self.metrics.prepare(self._adapters, [row.domain for row in self._shops.values()])
        self._writer = Writer(
            self.pool, self._clients, self._shops, self.config.writeback, self.worker
        )
        self._webhooks = WebhookProcessor(
            self.pool, self._clients, self._shops, list(self._adapters)
        )
        if serve_web:
            await self._start_web()
        self._schedule()
        if self.config.web.public_url:
            run = self._tracked("webhook registration", self.register_webhooks)
            self._registration = asyncio.ensure_future(run())
        log.info(
            "daemon %s started: %d shops, carriers %s",
            self.worker,
            len(self._shops),
            ", ".join(sorted(self._adapters)) or "none",
        )

    async def _start_web(self) -> None:
        app = build_app(self.pool, self.config)
        app[WEBHOOK_ENDPOINT].on_stored = self._webhook_stored
        app[WEBHOOK_ENDPOINT].on_received = self.metrics.webhook_received
        add_metrics_route(app, self.metrics_source())
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.web.host, self.config.web.port)
        await site.start()
        port = self._runner.addresses[0][1] if self._runner.addresses else self.config.web.port
        self.url = f"http://{self.config.web.host}:{port}/"

    def _schedule(self) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        jobs: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("sync", self.sync_all, self.config.sync.interval.total_seconds()),
            ("poll", self.poll_sweep, self.config.polling.sweep_interval.total_seconds()),
            ("webhooks", self.process_webhooks, WEBHOOK_INTERVAL_SECONDS),
            ("attention", self.refresh_attention, self.config.attention.interval.total_seconds()),
        ]
        if self.config.writeback.enabled:
            jobs.append(
                ("writeback", self.drain, self.config.writeback.drain_interval.total_seconds())
            )
        for name, job, seconds in jobs:
            scheduler.add_job(
                self._tracked(name, job),
                IntervalTrigger(seconds=seconds),
                id=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(seconds)),
                next_run_time=_now(),
            )
        scheduler.start()
        self._scheduler = scheduler

    def _tracked(
        self, name: str, job: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if self._stopping:
                return
            task = asyncio.current_task()
            assert task is not None
            self._jobs.add(task)
            started = asyncio.get_running_loop().time()
            try:
                await job()
                self._database.back(started)
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # stop() cut it short after the grace period: one line, not a traceback.
                log.warning("%s job cancelled: still running when the daemon stopped", name)
            except aiohttp.ClientError:  # some are OSErrors too, but not the database's
                log.exception("%s job failed", name)
            except DATABASE_DOWN as exc:
                self._database.lost(name, exc)
            except Exception:
                log.exception("%s job failed", name)
            finally:
                self._jobs.discard(task)

        return run

    async def _show_access(self, shop: ShopRow, client: ShopifyClient) -> None:
        """Keep a store's refusal of our token on its row, where the table shows it."""
        shown = self._refusals.get(shop.id)
        if client.auth_refused == shown:
            return
        if client.auth_refused is not None:
            await record_sync_error(self.pool, shop, client.auth_refused)
        elif shown is not None:
            await self.pool.execute(
                "UPDATE shops SET last_sync_error = NULL WHERE id = $1 AND last_sync_error = $2",
                shop.id,
                shown[:1000],
            )
        self._refusals[shop.id] = client.auth_refused

    async def sync_all(self) -> None:
        for shop_id, client in self._clients.items():
            if self._stopping:
                return
            shop = self._shops[shop_id]
            with log_context(shop=shop.domain):
                try:
                    report = await sync_shop(
                        self.pool, client, shop, self.config.sync, list(self._adapters)
                    )
                except ShopifyAuthError as exc:
                    if not exc.paused:  # the client logged the refusal already
                        log.warning("sync of %s stopped: %s", shop.domain, exc)
                    await record_sync_error(self.pool, shop, str(exc))
                    continue
                except ShopifyError as exc:
                    log.error("sync of %s failed: %s", shop.domain, exc)
                    await record_sync_error(self.pool, shop, str(exc))
                    continue
                finally:
                    await self._show_access(shop, client)
            if report is not None:
                self.metrics.synced(shop.domain, report)

    async def poll_sweep(self) -> None:
        """Claim and poll batches until nothing more is due (or the daemon stops).

        ``polling.concurrent_batches`` loops claim and poll side by side, so one slow carrier
        holds up one batch, not the sweep; together they send at most
        ``polling.requests_in_flight`` requests to one carrier at a time. A slow carrier is
        claimed a few shipments at a time (:func:`~tracker.engine.poller.claim_caps`): while
        one of its claims takes all it may, the loops go round again together rather than
        leave its backlog to the next sweep.
        """
        polling = self.config.polling
        if self._recorder is None:
            self._recorder = Recorder(self.pool, polling, self.config.writeback)
        for code in self._adapters:
            if code not in self._in_flight:
                self._in_flight[code] = asyncio.Semaphore(polling.requests_in_flight)
        while not self._stopping:
            loops = [self._poll_loop() for _ in range(polling.concurrent_batches)]
            if not any(await asyncio.gather(*loops)):
                return

    async def _poll_loop(self) -> bool:
        """Claim and poll batches until one is not full; whether a slow carrier had more."""
        batch = self.config.polling.batch_size
        while not self._stopping:
            report = await poll_due(
                self.pool,
                self._timed(),
                self.config.polling,
                self.config.writeback,
                self.worker,
                self.config.carriers,
                self._in_flight,
                self._recorder,
                self._slow,
            )
            self.metrics.polled(report)
            if report.claimed:
                log.info(
                    "polled %d shipments: %d new events, outcomes %s",
                    report.polled,
                    report.new_events,
                    dict(report.outcomes),
                    extra={
                        "claimed": report.claimed,
                        "new_events": report.new_events,
                        "outcomes": dict(report.outcomes),
                        "over_budget": report.over_budget,
                    },
                )
            if report.claimed < batch:
                return report.capped_full
        return False

    async def refresh_attention(self) -> None:
        await forget_old_windows(self.pool)
        changed = await refresh_attention(
            self.pool, self.config.attention, tracked=list(self._adapters)
        )
        if changed:
            log.info("attention flags: %d shipments changed", changed)

    async def drain(self) -> None:
        """Write pending events to each shop in turn (what ``Writer.drain`` does, per shop)."""
        assert self._writer is not None
        for shop_id, client in self._clients.items():
            shop = self._shops[shop_id]
            report = WriteReport()
            try:
                with log_context(shop=shop.domain):
                    await self._writer.drain_shop(shop, client, report)
                    await self._show_access(shop, client)
            finally:
                self.metrics.wrote(shop.domain, report)
            if report.written or report.failed or report.reconciled or report.reverted:
                log.info(
                    "write-back to %s: %d written, %d failed, %d reconciled, %d to resend",
                    shop.domain,
                    report.written,
                    report.failed,
                    report.reconciled,
                    report.reverted,
                    extra={"shop": shop.domain, "written": report.written, "failed": report.failed},
                )

    async def process_webhooks(self) -> None:
        assert self._webhooks is not None
        report = await self._webhooks.run()
        if report.claimed:
            log.info(
                "webhooks: %d processed, %d to retry, %d failed, %d deferred",
                report.processed,
                report.retried,
                report.failed,
                report.deferred,
            )

    def _webhook_stored(self) -> None:
        """The web handler stored a delivery: run the webhook job now unless it is running."""
        if self._webhooks is None or not self._webhooks.notify():
            return
        if self._scheduler is not None and not self._stopping:
            with contextlib.suppress(JobLookupError):
                self._scheduler.modify_job("webhooks", next_run_time=_now())

    async def register_webhooks(self) -> None:
        """Subscribe ``web.public_url`` to the webhook topics of every shop (idempotent)."""
        assert self.config.web.public_url
        url = callback_url(self.config.web.public_url)
        for client in self._clients.values():
            if self._stopping:
                return
            for result in await register_webhooks(client, url):
                if result.outcome == "failed":
                    log.error(
                        "webhook registration of %s: %s",
                        client.domain,
                        result.describe(),
                        extra={"shop": client.domain},
                    )

    def _timed(self) -> dict[str, Adapter]:
        """The adapters as the poller gets them: each call timed and counted in ``metrics``."""
        if self._timed_adapters.keys() != self._adapters.keys():
            self._timed_adapters = {c: timed(a, self.metrics) for c, a in self._adapters.items()}
        return self._timed_adapters

    def metrics_source(self) -> MetricsSource:
        """What ``/metrics`` reads for this daemon."""
        return MetricsSource(
            self.metrics,
            self.pool,
            tuple(self._adapters),
            {shop_id: row.domain for shop_id, row in self._shops.items()},
            {client.domain: client for client in self._clients.values()},
        )

    async def stop(self) -> None:
        """Stop claiming, let running jobs finish for a while, then cancel them."""
        self._stopping = True
        if self._scheduler is not None:
            # Pause, not shut down: APScheduler's asyncio executor cancels running jobs on
            # shutdown, which would cut in-flight work short without its grace period.
            self._scheduler.pause()
        running = set(self._jobs)
        if running:
            _, late = await asyncio.wait(running, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._recorder is not None:  # results already in hand: store them if we can
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recorder.close(), timeout=RECORDER_GRACE_SECONDS)
        try:
            await self.pool.execute(
                "UPDATE shipments SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner = $1",
                self.worker,
            )
        except DATABASE_DOWN as exc:
            log.warning(
                "could not give back this daemon's claims (database unavailable: %s); they "
                "expire after polling.lease",
                exc,
            )
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        log.info("daemon %s stopped", self.worker)


def _now() -> datetime:
    return datetime.now(UTC)
