"""``POST /webhooks/shopify``: verify, store, answer at once; the daemon's job does the work.

Shopify waits 5 s for an answer and retries for hours, so this handler only checks and stores:

- a body over :data:`MAX_BODY_BYTES` is 413, refused before it is read in full;
- ``X-Shopify-Shop-Domain`` must be a configured shop with a ``client_secret`` (else 401);
- ``X-Shopify-Hmac-Sha256`` must be base64(HMAC-SHA256(raw body, client secret)), compared in
  constant time; the ``previous_client_secret`` passes too during a rotation (else 401);
- ``X-Shopify-Topic`` and ``X-Shopify-Webhook-Id`` are required, the body must be a JSON object
  (else 400);
- a topic this daemon does not handle is answered 200 and dropped (logged once per topic);
- the delivery is inserted into ``webhook_deliveries``; a webhook id or event id already there
  is a duplicate, answered 200 without a second row.

Nothing is stored for a refused request. :mod:`tracker.shopify.webhooks` processes what is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from tracker.config import Config, ShopConfig
from tracker.shopify.subscriptions import WEBHOOK_PATH
from tracker.shopify.sync import ensure_shops
from tracker.shopify.webhook_topics import HANDLED_TOPICS

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_LENGTH = 255
_CHUNK = 64 * 1024
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass
class WebhookEndpoint:
    """The endpoint's state: where it stores, who it tells, what it logged already.

    ``on_stored`` is set by the daemon: it wakes the processor when a delivery was stored.
    ``on_received`` (also the daemon's) hears the topic of every authentic delivery.
    """

    pool: asyncpg.Pool
    config: Config
    on_stored: Callable[[], None] | None = None
    on_received: Callable[[str], None] | None = None
    unknown_topics_logged: set[str] = field(default_factory=set)
    shop_ids: dict[str, int] = field(default_factory=dict)


WEBHOOK_ENDPOINT = web.AppKey("shopify_webhook_endpoint", WebhookEndpoint)


def add_webhook_route(app: web.Application, pool: asyncpg.Pool, config: Config) -> None:
    """Serve ``POST /webhooks/shopify`` on ``app``, storing deliveries in ``pool``."""
    app[WEBHOOK_ENDPOINT] = WebhookEndpoint(pool, config)
    app.router.add_post(WEBHOOK_PATH, receive_shopify_webhook, name="shopify_webhook")


def sign(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256`` of ``body``: base64 of its HMAC-SHA256 under ``secret``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_valid(body: bytes, header: str | None, secrets: list[str]) -> bool:
    """Whether ``header`` is the signature of ``body`` under one of ``secrets``."""
    if not header or len(header) > MAX_HEADER_LENGTH:
        return False
    try:
        given = base64.b64decode(header.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return False
    valid = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        valid |= hmac.compare_digest(expected, given)
    return valid


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _answer(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": message} if status >= 400 else {"status": message}, status=status
    )


async def _read_body(request: web.Request) -> bytes:
    """The raw body, or :class:`_Refused` 413 as soon as it passes :data:`MAX_BODY_BYTES`."""
    too_large = _Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(_CHUNK):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise too_large
            chunks.append(chunk)
    except web.RequestPayloadError:
        # A body that cannot be read as sent: a Content-Encoding it is not in, cut short.
        raise _Refused(400, "the body cannot be read as sent (its Content-Encoding?)") from None
    return b"".join(chunks)


def _header(request: web.Request, name: str, *, required: bool) -> str | None:
    value = request.headers.get(name, "").strip()
    if not value:
        if required:
            raise _Refused(400, f"the {name} header is missing")
        return None
    if len(value) > MAX_HEADER_LENGTH or not _PRINTABLE.match(value):
        raise _Refused(400, f"the {name} header is not a plain value")
    return value


def _triggered_at(value: str | None) -> datetime | None:
    """The header's moment in UTC; None when it is unreadable or no UTC moment (year 1 at
    +23:59): it is only kept for reference, so such a delivery is stored without it."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _shop(endpoint: WebhookEndpoint, domain: str) -> ShopConfig:
    for shop in endpoint.config.shops:
        if shop.domain == domain:
            return shop
    log.warning("webhook refused: %r is not a configured shop", domain[:100])
    raise _Refused(401, "unknown shop")


def _secrets(shop: ShopConfig) -> list[str]:
    found = [
        secret.get_secret_value()
        for secret in (shop.client_secret, shop.previous_client_secret)
        if secret is not None and secret.get_secret_value()
    ]
    if not found:
        log.error(
            "webhook for %s refused: the shop has no client_secret configured, so its "
            "signature cannot be verified (set shops[].client_secret)",
            shop.domain,
        )
        raise _Refused(401, "this shop cannot receive webhooks: no client secret is configured")
    return found


def _payload_text(body: bytes) -> str:
    def no_constants(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        text = body.decode("utf-8")
        payload = json.loads(text, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise _Refused(400, "the body is not a JSON object")
    return text


async def _shop_id(endpoint: WebhookEndpoint, shop: ShopConfig) -> int:
    known = endpoint.shop_ids.get(shop.domain)
    if known is None:
        pool = endpoint.pool
        known = await pool.fetchval("SELECT id FROM shops WHERE domain = $1", shop.domain)
        if known is None:
            known = (await ensure_shops(pool, [shop]))[shop.domain].id
        endpoint.shop_ids[shop.domain] = known
    return known


async def receive_shopify_webhook(request: web.Request) -> web.Response:
    """``POST /webhooks/shopify``."""
    try:
        return await _receive(request)
    except _Refused as refused:
        return _answer(refused.status, refused.message)


async def _receive(request: web.Request) -> web.Response:
    endpoint = request.app[WEBHOOK_ENDPOINT]
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _Refused(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    domain = request.headers.get("X-Shopify-Shop-Domain", "").strip().lower()
    shop = _shop(endpoint, domain)
    secrets = _secrets(shop)
    body = await _read_body(request)
    if not signature_valid(body, request.headers.get("X-Shopify-Hmac-Sha256"), secrets):
        log.warning(
            "webhook for %s refused: missing or invalid signature",
            shop.domain,
            extra={"shop": shop.domain},
        )
        raise _Refused(401, "invalid signature")
    topic = _header(request, "X-Shopify-Topic", required=True)
    webhook_id = _header(request, "X-Shopify-Webhook-Id", required=True)
    event_id = _header(request, "X-Shopify-Event-Id", required=False)
    api_version = _header(request, "X-Shopify-API-Version", required=False)
    triggered_at = _triggered_at(_header(request, "X-Shopify-Triggered-At", required=False))
    text = _payload_text(body)
    assert topic is not None
    if endpoint.on_received is not None:
        endpoint.on_received(topic)
    if topic not in HANDLED_TOPICS:
        if (
            topic not in endpoint.unknown_topics_logged
            and len(endpoint.unknown_topics_logged) < 100
        ):
            endpoint.unknown_topics_logged.add(topic)
            log.info(
                "webhooks of topic %r are not handled: answered 200 and dropped",
                topic,
                extra={"shop": shop.domain, "topic": topic},
            )
        return _answer(200, "ignored")
    shop_id = await _shop_id(endpoint, shop)
    delivery = {"shop": shop.domain, "topic": topic, "webhook_id": webhook_id}
    try:
        stored = await endpoint.pool.fetchval(
            """
            INSERT INTO webhook_deliveries (webhook_id, shop_id, topic, event_id, api_version,
                                            triggered_at, payload)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
            ON CONFLICT DO NOTHING
            RETURNING true
            """,
            webhook_id,
            shop_id,
            topic,
            event_id,
            api_version,
            triggered_at,
            text,
        )
    except asyncpg.DataError:
        raise _Refused(400, "the body is JSON that cannot be stored") from None
    if not stored:
        log.debug("webhook %s (%s) is a duplicate", webhook_id, topic, extra=delivery)
        return _answer(200, "duplicate")
    log.debug("webhook %s (%s) for %s stored", webhook_id, topic, shop.domain, extra=delivery)
    if endpoint.on_stored is not None:
        endpoint.on_stored()
    return _answer(200, "stored")
