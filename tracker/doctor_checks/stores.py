"""Each store against Shopify's Admin API: token, API version, scopes, plan and bucket, webhooks.

One ``ShopDiagnosis`` query answers most of it; the API version Shopify really used comes from
the answer's ``X-Shopify-API-Version`` header (an unsupported version is not refused: Shopify
falls forward to the oldest supported one, so a daemon pinned to a retired version would read
and write with a schema it was never tested against).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import aiohttp

from tracker.config import Config, ShopConfig
from tracker.doctor_checks import Check, describe_error, fail, ok, warn
from tracker.shopify.client import (
    ShopifyAuthError,
    ShopifyClient,
    ShopifyError,
    ShopifyShopClosed,
    ShopifyUnavailable,
)
from tracker.shopify.pacing import CostBucket
from tracker.shopify.subscriptions import REGISTERED_TOPICS, callback_url, subscribed_urls

READ_SCOPES = ("read_orders", "read_fulfillments")
WRITE_SCOPE = "write_fulfillments"
ALL_ORDERS_SCOPE = "read_all_orders"
RECENT_ORDERS = timedelta(days=60)
"""Without read_all_orders, Shopify shows an app only the orders of the last 60 days."""
UNSTABLE = "unstable"
LOW_BUCKET_SHARE = 0.1
ADD_SCOPES = (
    "add them to the app's Admin API access scopes in the Shopify admin, reinstall the app and "
    "use its new token"
)


async def check_store(
    index: int, config: Config, session: aiohttp.ClientSession, timeout: float
) -> list[Check]:
    """The checks of ``config.shops[index]``, in the order they are printed."""
    shop = config.shops[index]
    subject = f"store {shop.domain}"
    client = ShopifyClient(shop, session, timeout=timeout, max_attempts=2)
    try:
        async with asyncio.timeout(timeout):
            data = await client.query("ShopDiagnosis")
    except ShopifyShopClosed as exc:  # before ShopifyAuthError: the token may be fine
        return [
            fail(
                subject,
                f"shop closed ({_without_domain(exc, shop)})",
                "nothing to change here: calls resume once the shop is open again",
            )
        ]
    except ShopifyAuthError as exc:
        return [
            fail(subject, f"token refused ({_without_domain(exc, shop)})", _token_fix(index, shop))
        ]
    except ShopifyUnavailable as exc:
        return [
            fail(
                subject,
                f"no usable answer from {shop.admin_url} ({_without_domain(exc, shop)})",
                f"check shops[{index}].domain (or api_url) and the network",
            )
        ]
    except (ShopifyError, TimeoutError, aiohttp.ClientError, KeyError, TypeError) as exc:
        return [fail(subject, f"cannot read the shop: {describe_error(exc, timeout)}")]
    checks = [_token(index, shop, data.get("shop") or {})]
    checks.append(_api_version(index, shop, client.served_api_version, data))
    checks.append(_scopes(index, shop, config, data))
    checks.append(_plan_and_bucket(shop, data.get("shop") or {}, client.bucket))
    checks.append(await _webhooks(shop, config, client, timeout))
    return checks


def _without_domain(exc: Exception, shop: ShopConfig) -> str:
    return str(exc).removeprefix(f"{shop.domain}: ").removeprefix(f"{shop.domain} ")


def _token_fix(index: int, shop: ShopConfig) -> str:
    if shop.access_token is not None:
        return (
            f"check shops[{index}].access_token (TRACKER_SHOPS__{index}__ACCESS_TOKEN): the "
            "Admin API token of an installed app with the scopes in README"
        )
    return f"check shops[{index}].client_id and client_secret (the app's credentials)"


def _token(index: int, shop: ShopConfig, info: Mapping[str, Any]) -> Check:
    subject = f"store {shop.domain}"
    domain = str(info.get("myshopifyDomain") or "")
    if shop.domain.endswith(".myshopify.com") and domain and domain != shop.domain:
        return fail(
            subject,
            f"the token belongs to {domain}, not to this store",
            f"fix shops[{index}].domain or use this store's token",
        )
    how = "token valid" if shop.access_token is not None else "token granted (client credentials)"
    return ok(subject, f"{how} ({info.get('name', '?')}, {domain or shop.domain})")


def _api_version(
    index: int, shop: ShopConfig, served: str | None, data: Mapping[str, Any]
) -> Check:
    subject = f"store {shop.domain}"
    wanted = shop.api_version
    listed = {
        str(v.get("handle")): bool(v.get("supported"))
        for v in data.get("publicApiVersions") or []
        if isinstance(v, dict)
    }
    supported = sorted(handle for handle, yes in listed.items() if yes and handle != UNSTABLE)
    newest = supported[-1] if supported else None
    target = newest or served
    fix = f"set shops[{index}].api_version to {target}" if target and target != wanted else ""
    if served and served != wanted:
        return fail(
            subject,
            f"API version {wanted} is no longer supported: Shopify answered with {served}",
            fix,
        )
    if wanted == UNSTABLE:
        return warn(subject, "API version unstable changes without notice", fix)
    if wanted not in listed:
        offered = ", ".join(supported) or "none listed"
        return fail(
            subject, f"API version {wanted} is not one Shopify serves (supported: {offered})", fix
        )
    if not listed[wanted]:
        return warn(subject, f"API version {wanted} is a release candidate, not yet stable", fix)
    if len(supported) > 1 and wanted == supported[0]:
        return warn(
            subject,
            f"API version {wanted} is the oldest supported one: Shopify retires it next and "
            f"would then answer with {supported[1]}",
            fix,
        )
    return ok(subject, f"API version {wanted} supported (newest stable: {newest})")


def _scopes(index: int, shop: ShopConfig, config: Config, data: Mapping[str, Any]) -> Check:
    subject = f"store {shop.domain}"
    installation = data.get("currentAppInstallation") or {}
    granted = {
        str(scope.get("handle"))
        for scope in installation.get("accessScopes") or []
        if isinstance(scope, dict)
    }
    # A write scope includes reading the same resource.
    effective = granted | {
        "read_" + s.removeprefix("write_") for s in granted if s.startswith("write_")
    }
    needed = list(READ_SCOPES)
    if config.writeback.enabled:
        needed.append(WRITE_SCOPE)
    old_orders = config.sync.lookback > RECENT_ORDERS
    if old_orders:
        needed.append(ALL_ORDERS_SCOPE)
    missing = [scope for scope in needed if scope not in effective]
    shown = ", ".join(sorted(granted & {*READ_SCOPES, WRITE_SCOPE, ALL_ORDERS_SCOPE})) or "none"
    if missing:
        why = []
        if WRITE_SCOPE in missing:
            why.append("events cannot be written back")
        if ALL_ORDERS_SCOPE in missing:
            why.append(f"sync.lookback reaches back {config.sync.lookback.days} days")
        reason = f" ({'; '.join(why)})" if why else ""
        return fail(
            subject,
            f"scopes missing: {', '.join(missing)}{reason}; granted: {shown}",
            f"{ADD_SCOPES} (shops[{index}])",
        )
    if ALL_ORDERS_SCOPE not in granted:
        return warn(
            subject,
            f"scopes: {shown}; without {ALL_ORDERS_SCOPE} orders older than 60 days stay "
            "invisible (tracker sync --full included)",
            f"{ADD_SCOPES}, if older orders matter",
        )
    return ok(subject, f"scopes: {shown}")


def _plan_and_bucket(shop: ShopConfig, info: Mapping[str, Any], bucket: CostBucket) -> Check:
    subject = f"store {shop.domain}"
    plan_info = info.get("plan") or {}
    plan = str(plan_info.get("displayName") or "unknown")
    if plan_info.get("partnerDevelopment"):
        plan += " (development store)"
    if plan_info.get("shopifyPlus"):
        plan += " (Shopify Plus)"
    if not bucket.calibrated:
        return warn(subject, f"plan {plan}; the answer carried no cost information")
    text = (
        f"plan {plan}; cost bucket {bucket.maximum:g} points, restores {bucket.restore_rate:g}/s, "
        f"{max(bucket.available, 0):.0f} available now"
    )
    if bucket.available < bucket.maximum * LOW_BUCKET_SHARE:
        return warn(
            subject,
            text + ": another app (or a running daemon) is using most of it",
            "nothing to do if a daemon is running; else look for other apps calling this store",
        )
    return ok(subject, text)


async def _webhooks(
    shop: ShopConfig, config: Config, client: ShopifyClient, timeout: float
) -> Check:
    subject = f"store {shop.domain}"
    if not config.web.public_url:
        return ok(
            subject,
            "webhooks not used (web.public_url is empty): orders are read every "
            f"{_duration(config.sync.interval)}",
        )
    url = callback_url(config.web.public_url)
    try:
        async with asyncio.timeout(timeout):
            subscribed = await subscribed_urls(client)
    except (ShopifyError, TimeoutError, KeyError, TypeError) as exc:
        return warn(subject, f"cannot list webhook subscriptions: {describe_error(exc, timeout)}")
    missing = _missing_topics(subscribed, url, REGISTERED_TOPICS)
    if missing:
        return warn(
            subject,
            f"{len(missing)} of {len(REGISTERED_TOPICS)} webhook topics not subscribed for "
            f"{url}: {', '.join(missing)}",
            "tracker webhooks register (the daemon also registers them when it starts)",
        )
    return ok(subject, f"webhooks: all {len(REGISTERED_TOPICS)} topics subscribed for {url}")


def _missing_topics(
    subscribed: Mapping[str, set[str]], url: str, topics: Sequence[str]
) -> list[str]:
    return [topic for topic in topics if url not in subscribed.get(topic, set())]


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
