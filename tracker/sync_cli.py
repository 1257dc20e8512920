"""``tracker sync``: read orders from Shopify once, then exit.

Without ``--full``, one incremental pass from each shop's cursor (what the daemon's sync job
does). With ``--full``, a bulk backfill of every order (:mod:`tracker.shopify.backfill`); an
interrupted backfill is resumed by running the command again. Progress goes to stdout, updated
in place on a terminal and as plain lines otherwise.

Exit codes: 0 every shop synced; 1 a shop did not (a failed, expired, canceled or partial bulk
operation, another bulk query in the way, Shopify unreachable); 2 an unknown ``--shop`` or a bad
configuration; 3 the database, as for every command.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import asyncpg

    from tracker.config import Config, ShopConfig
    from tracker.shopify.backfill import Progress
    from tracker.shopify.client import ShopifyClient
    from tracker.shopify.sync import ShopRow

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNKNOWN_SHOP = 2

HELP = (
    "Read orders from Shopify once and exit: an incremental pass from the sync cursor, or with "
    "--full a bulk backfill of every order (resumed if an earlier run was interrupted)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shop", metavar="DOMAIN", help="only this shop (default: every configured shop)"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="backfill every order with a Shopify bulk operation instead of an incremental pass",
    )


class ProgressPrinter:
    """Progress lines: rewritten in place with ``\\r`` on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, *, interval: float = 2.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._interval = interval
        self._width = 0
        self._last_at = 0.0
        self._last_state: tuple[str, str] | None = None

    def __call__(self, progress: Progress) -> None:
        if progress.phase == "waiting":
            text = f"{progress.shop}: bulk operation {progress.status}, {progress.done:,} objects"
        elif progress.total:
            text = f"{progress.shop}: read {progress.done:,} / {progress.total:,} objects"
        else:
            text = f"{progress.shop}: read {progress.done:,} objects"
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = max(self._width, len(text))
            self.stream.flush()
            return
        state = (progress.phase, progress.status)
        now = time.monotonic()
        if state != self._last_state or now - self._last_at >= self._interval:
            self._last_state, self._last_at = state, now
            print(text, file=self.stream, flush=True)

    def line(self, text: str, stream: TextIO | None = None) -> None:
        """A line of its own, after any progress line being rewritten."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
        print(text, file=stream or self.stream, flush=True)


def run_sync(args: argparse.Namespace) -> int:
    from tracker.cli import setup_logging
    from tracker.config_load import load_config

    config = load_config(args.config)
    setup_logging(config, args.log_level or "WARNING")
    shops = config.shops
    if args.shop:
        wanted = args.shop.strip().lower().removeprefix("https://").rstrip("/")
        shops = [shop for shop in config.shops if shop.domain == wanted]
        if not shops:
            known = ", ".join(shop.domain for shop in config.shops) or "none"
            print(
                f"tracker sync: no shop {args.shop!r} in the configuration (configured: {known})",
                file=sys.stderr,
            )
            return EXIT_UNKNOWN_SHOP
    if not shops:
        print("tracker sync: no shops in the configuration", file=sys.stderr)
        return EXIT_UNKNOWN_SHOP
    from tracker.loop import run as run_loop

    printer = ProgressPrinter(sys.stdout)
    try:
        return run_loop(_sync(config, shops, full=args.full, printer=printer))
    except KeyboardInterrupt:
        hint = " (run `tracker sync --full` again to go on waiting)" if args.full else ""
        printer.line(f"tracker sync: interrupted{hint}", sys.stderr)
        return EXIT_FAILED


async def _sync(
    config: Config, shops: list[ShopConfig], *, full: bool, printer: ProgressPrinter
) -> int:
    import aiohttp

    from tracker.db.pool import open_database
    from tracker.shopify.client import ShopifyClient, ShopifyError
    from tracker.shopify.sync import ensure_shops, record_sync_error

    code = EXIT_OK
    enabled = sorted(config.carriers)
    async with (
        open_database(config.database, run_migrations=config.database.migrate_on_start) as pool,
        aiohttp.ClientSession() as http,
    ):
        rows = await ensure_shops(pool, shops)
        for shop in shops:
            client = ShopifyClient(shop, http)
            row = rows[shop.domain]
            try:
                if full:
                    ok = await _backfill(pool, client, row, enabled, printer)
                else:
                    ok = await _incremental(pool, client, row, config, enabled, printer)
            except ShopifyError as exc:
                reason = str(exc).removeprefix(f"{shop.domain}: ")
                printer.line(f"{shop.domain}: sync failed: {reason}", sys.stderr)
                await record_sync_error(pool, row, str(exc))
                ok = False
            if not ok:
                code = EXIT_FAILED
    return code


async def _backfill(
    pool: asyncpg.Pool,
    client: ShopifyClient,
    shop: ShopRow,
    enabled: list[str],
    printer: ProgressPrinter,
) -> bool:
    from tracker.shopify.backfill import backfill_shop

    report = await backfill_shop(pool, client, shop, enabled, progress=printer)
    if report.resumed:
        printer.line(f"{shop.domain}: resumed bulk operation {report.operation}")
    printer.line(f"{shop.domain}: {report.summary()}")
    if report.notice:
        printer.line(f"{shop.domain}: NOTE: {report.notice}")
    return report.ok


async def _incremental(
    pool: asyncpg.Pool,
    client: ShopifyClient,
    shop: ShopRow,
    config: Config,
    enabled: list[str],
    printer: ProgressPrinter,
) -> bool:
    from tracker.shopify.sync import sync_shop

    report = await sync_shop(pool, client, shop, config.sync, enabled)
    if report is None:
        printer.line(f"{shop.domain}: another process is syncing this shop right now; not synced")
        return False
    printer.line(
        f"{shop.domain}: synced {report.orders} orders, {report.parcels} parcels, "
        f"{report.retired} retired ({report.pages} pages)"
    )
    return True
