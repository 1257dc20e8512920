"""``tracker webhooks register``: subscribe ``web.public_url`` to the webhook topics of each shop.

Idempotent: topics already subscribed to that URL are left alone, so running it twice creates
nothing new. Prints one line per shop and topic; the exit code is 0 when every topic is
registered, 1 when one failed, 2 when the configuration has no ``web.public_url`` or no shop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp

from tracker.config import Config
from tracker.config_load import load_config
from tracker.logs import configure_logging, secret_values
from tracker.loop import run as run_loop
from tracker.shopify.client import ShopifyClient
from tracker.shopify.subscriptions import TopicRegistration, callback_url, register_webhooks

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


async def register_all(config: Config, url: str) -> dict[str, list[TopicRegistration]]:
    """Register ``url`` with every configured shop; results by shop domain."""
    results: dict[str, list[TopicRegistration]] = {}
    async with aiohttp.ClientSession() as session:
        for shop in config.shops:
            client = ShopifyClient(shop, session, max_attempts=3)
            results[shop.domain] = await register_webhooks(client, url)
    return results


def register_command(config_path: Path | None, log_level: str | None) -> int:
    config = load_config(config_path)
    configure_logging(
        log_level or "WARNING",
        json_lines=config.log.json_lines,
        secrets=secret_values(config),
    )
    if not config.web.public_url:
        print(
            "tracker webhooks register: web.public_url is not set: it is the URL Shopify "
            "reaches this daemon at (https://tracker.example.com)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if not config.shops:
        print("tracker webhooks register: no shops are configured", file=sys.stderr)
        return EXIT_CONFIG
    url = callback_url(config.web.public_url)
    print(f"Webhook URL: {url}")
    results = run_loop(register_all(config, url))
    failed = False
    for domain, registrations in results.items():
        for registration in registrations:
            print(f"{domain} {registration.describe()}")
            failed |= registration.outcome == "failed"
    return EXIT_FAILED if failed else EXIT_OK
