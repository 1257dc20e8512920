"""``tracker``: the command line. Exit codes scripts can rely on:

0 success; 1 unexpected failure; 2 bad usage or bad configuration; 3 database unreachable or
migrations out of step; 4 a port or directory the command needs is not available; 5 the carrier
answered but does not know the number (``track``); 6 the carrier could not be asked or refused
the credentials (``track``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tracker import __version__
from tracker.config import Config
from tracker.config_load import ConfigError, load_config
from tracker.db.embedded import DataDirectoryError, EmbeddedPostgresError
from tracker.db.migrations import MigrationError
from tracker.db.pool import DatabaseUnavailable
from tracker.loop import run as run_loop
from tracker.loop import settle_gc

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_RESOURCE = 4
EXIT_NOT_TRACKED = 5
EXIT_CARRIER_DOWN = 6

log = logging.getLogger("tracker")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_CONFIG
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DataDirectoryError as exc:
        print(
            f"data directory error: {exc}; set database.data_dir to a directory this user "
            "may write, or database.url to use a PostgreSQL server",
            file=sys.stderr,
        )
        return EXIT_RESOURCE
    except (DatabaseUnavailable, EmbeddedPostgresError, MigrationError) as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        from tracker.startup_messages import os_problem

        log.debug("operating system error", exc_info=True)
        print(f"cannot continue: {os_problem(exc)}", file=sys.stderr)
        return EXIT_RESOURCE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracker",
        description="Bulk shipment tracking for Shopify: polls carriers, writes fulfillment "
        "events back to Shopify exactly once, serves one status table.",
    )
    parser.add_argument("--version", action="version", version=f"tracker {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        sub.add_argument(
            "--log-level",
            default=None,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="override log.level from the configuration",
        )
        return sub

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="FILE",
            help="configuration file (default: ./config.yaml, all defaults if absent)",
        )

    run = command(
        "run",
        _run,
        "Run the daemon (sync, polling, write-back, status table) until SIGINT or SIGTERM.",
    )
    with_config(run)

    demo = command(
        "demo",
        _demo,
        "Run everything locally: embedded PostgreSQL, Shopify and "
        "carrier sandboxes with moving parcels, the daemon and the status table.",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=8080,
        help="status table port (default 8080; a free one is chosen if it is taken)",
    )
    demo.add_argument("--orders", type=int, default=240, help="orders in the demo store")
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="parcel hours that pass per real second (default 1)",
    )

    sandbox = command(
        "sandbox",
        _sandbox,
        "Run the Shopify and carrier sandboxes on their own, "
        "for `tracker run` or tests to talk to.",
    )
    sandbox.add_argument(
        "--write-config",
        type=Path,
        metavar="FILE",
        help="write a configuration for `tracker run` pointing at the sandboxes",
    )
    sandbox.add_argument("--orders", type=int, default=240, help="orders in the store")
    sandbox.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="parcel hours that pass per real second (default 1)",
    )
    sandbox.add_argument("--shopify-port", type=int, default=0, help="default: any free port")
    sandbox.add_argument("--seed", type=int, default=7, help="seed of the demo world")

    migrate = command("migrate", _migrate, "Apply pending database migrations and exit.")
    with_config(migrate)

    from tracker import sync_cli

    sync = command("sync", _sync, sync_cli.HELP)
    with_config(sync)
    sync_cli.add_arguments(sync)

    detect = command("detect", _detect, "Print the carriers a tracking number may belong to.")
    detect.add_argument("number")
    detect.add_argument("--json", action="store_true", help="one JSON object")

    track = command(
        "track",
        _track,
        "Look one number up live with the configured credentials and print the result.",
    )
    track.add_argument("number")
    track.add_argument("--carrier", help="carrier code (default: detected from the number)")
    track.add_argument("--json", action="store_true", help="one JSON object")
    with_config(track)

    check = command(
        "check-config", _check_config, "Validate the configuration file without starting anything."
    )
    with_config(check)

    doctor = command(
        "doctor",
        _doctor,
        "Check what the configuration promises against the stores, carriers, database and "
        "web address: one line per check, exit 0 only when nothing failed.",
    )
    with_config(doctor)
    doctor.add_argument("--json", action="store_true", help="one JSON object")
    doctor.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="longest wait for each check (default 15)",
    )

    webhooks = command(
        "webhooks", _webhooks, "Manage the Shopify webhook subscriptions of the configured shops."
    )
    register = webhooks.add_subparsers(title="actions", metavar="ACTION").add_parser(
        "register",
        help="subscribe web.public_url to every webhook topic the daemon handles (idempotent)",
        description="Subscribe <web.public_url>/webhooks/shopify to every webhook topic the "
        "daemon handles, in each configured shop; topics already subscribed are left alone.",
    )
    register.set_defaults(handler=_webhooks_register)
    register.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default WARNING)",
    )
    with_config(register)

    from tracker.completion import SHELLS

    completion = commands.add_parser(
        "completion",
        help="Print a shell completion script.",
        description="Print a completion script for bash or zsh, generated from these "
        'commands. Load it with: eval "$(tracker completion bash)".',
    )
    completion.set_defaults(handler=_completion)
    completion.add_argument("shell", choices=SHELLS)
    return parser


def setup_logging(config: Config | None, override: str | None) -> None:
    from tracker.logs import configure_logging, secret_values

    level = override or (config.log.level if config else "INFO")
    configure_logging(
        level,
        json_lines=bool(config and config.log.json_lines),
        secrets=secret_values(config) if config else (),
    )


def run_until_signal(main_coro: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run ``main_coro(stop)`` with ``stop`` set on the first SIGINT/SIGTERM."""

    async def runner() -> int:
        settle_gc()  # a long-running process from here on
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await main_coro(stop)

    return run_loop(runner())


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(config, args.log_level)
    from tracker.engine.run import run_daemon
    from tracker.startup_messages import bind_problem, os_problem, startup_banner

    async def body(stop: asyncio.Event) -> int:
        try:
            await run_daemon(
                config, stop, announce=lambda url: print(startup_banner(config, url), flush=True)
            )
        except OSError as exc:
            web = config.web
            problem = bind_problem(
                exc, web.host, web.port, port_setting="web.port", host_setting="web.host"
            )
            print(f"cannot start: {problem or os_problem(exc)}", file=sys.stderr)
            return EXIT_RESOURCE
        return EXIT_OK

    return run_until_signal(body)


def _demo(args: argparse.Namespace) -> int:
    setup_logging(None, args.log_level or "WARNING")
    from tracker.sandbox.demo import run_demo

    return run_until_signal(
        lambda stop: run_demo(stop, port=args.port, orders=args.orders, speed=args.speed)
    )


def _sandbox(args: argparse.Namespace) -> int:
    setup_logging(None, args.log_level or "WARNING")
    from tracker.sandbox.serve import run_sandboxes

    async def body(stop: asyncio.Event) -> int:
        try:
            await run_sandboxes(
                stop,
                orders=args.orders,
                speed=args.speed,
                seed=args.seed,
                shopify_port=args.shopify_port,
                write_config=args.write_config,
            )
        except OSError as exc:
            from tracker.startup_messages import bind_problem, os_problem

            problem = bind_problem(
                exc,
                "127.0.0.1",
                args.shopify_port,
                port_setting="--shopify-port",
                host_setting="the host",
            )
            print(f"cannot start: {problem or os_problem(exc)}", file=sys.stderr)
            return EXIT_RESOURCE
        return EXIT_OK

    return run_until_signal(body)


def _migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(config, args.log_level)
    from tracker.db.migrations import migrate
    from tracker.db.pool import open_database

    async def body() -> list[str]:
        async with (
            open_database(config.database, run_migrations=False) as pool,
            pool.acquire() as conn,
        ):
            return await migrate(conn)

    applied = run_loop(body())
    print(
        f"applied {len(applied)} migrations: {', '.join(applied)}"
        if applied
        else "database is up to date"
    )
    return EXIT_OK


def _sync(args: argparse.Namespace) -> int:
    from tracker.sync_cli import run_sync

    return run_sync(args)


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    where = args.config or "config.yaml (defaults)"
    database = (
        "configured URL" if config.database.url else f"embedded in {config.database.data_dir}"
    )
    carriers = ", ".join(sorted(config.carriers)) or "none"
    print(f"{where}: OK: {len(config.shops)} shops, carriers: {carriers}, database: {database}")
    return EXIT_OK


def _completion(args: argparse.Namespace) -> int:
    from tracker.completion import script

    sys.stdout.write(script(_parser(), args.shell))
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from tracker.doctor import doctor_command

    return doctor_command(
        args.config, as_json=args.json, timeout=args.timeout, log_level=args.log_level
    )


def _webhooks(args: argparse.Namespace) -> int:
    print("usage: tracker webhooks register [--config FILE]", file=sys.stderr)
    return EXIT_CONFIG


def _webhooks_register(args: argparse.Namespace) -> int:
    from tracker.webhooks_cli import register_command

    return register_command(args.config, args.log_level)


def _detect(args: argparse.Namespace) -> int:
    from tracker.lookup_cli import run_detect

    return run_detect(args)


def _track(args: argparse.Namespace) -> int:
    from tracker.lookup_cli import run_track

    return run_track(args)
