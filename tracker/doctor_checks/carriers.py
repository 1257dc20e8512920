"""Each carrier: base URL reachable, credentials accepted, a test number answered, budget plausible.

Only the adapter contract is used (``track``), so plugins are checked the same way. The test
number is ``carriers.<code>.test_number``, else the example number of the carrier's own API
reference (:data:`DEFAULT_TEST_NUMBERS`). "Not found" is an answer too: it proves the credentials
and the endpoint; a number the carrier has scans for shows more.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from carriers.base import (
    AdapterFactory,
    CarrierAuthError,
    CarrierError,
    CarrierSettings,
    CarrierUnavailable,
    Outcome,
)
from tracker.config import PollingConfig
from tracker.config_web import is_loopback
from tracker.doctor_checks import Check, Verdict, describe_error, fail, ok, warn

DEFAULT_TEST_NUMBERS: dict[str, str] = {
    "dhl": "7777777770",  # the example of DHL's Shipment Tracking - Unified reference
    "ups": "1Z023E2X0214323462",  # the example of UPS's Track API reference
    "fedex": "858488600850",  # the example of FedEx's Track API reference
    "usps": "EA123456785US",  # the label example of USPS's Tracking API v3 reference
    "postnord": "RR123456785SE",  # PostNord publishes none: a well-formed S10 number
}
"""AfterShip has none: reading a number there registers it in the account first."""


@dataclass(frozen=True, slots=True)
class Quota:
    """What a carrier publishes (``../shared/docs/CARRIERS.md``); None: not published."""

    per_second: float | None
    per_day: int | None
    note: str


PUBLISHED_QUOTAS: dict[str, Quota] = {
    "dhl": Quota(1.0, 250, "DHL's starter plan: 1 per second, 250 per day"),
    "fedex": Quota(140.0, 100_000, "FedEx: 1,400 per 10 s, 100,000 per day"),
    "usps": Quota(60 / 3600, 1440, "USPS's default quota: about 60 per hour"),
    "aftership": Quota(6.0, None, "AfterShip: 6 list calls per second"),
}


@dataclass(frozen=True, slots=True)
class CarrierUse:
    """What the database says about a carrier: active shipments and requests used today."""

    active: int = 0
    used_today: int = 0


async def check_carrier_api(
    code: str,
    settings: CarrierSettings,
    factory: AdapterFactory,
    session: aiohttp.ClientSession,
    timeout: float,
) -> list[Check]:
    """Reachability, credentials and the test number of one carrier."""
    subject = f"carrier {code}"
    base = settings.base_url or _default_base_url(factory)
    if base:
        reached = await _reach(subject, base, session, timeout)
        if reached.verdict is not Verdict.OK:
            return [reached]
        checks = [reached]
    else:
        checks = []
    number = settings.test_number or DEFAULT_TEST_NUMBERS.get(code)
    if not number:
        checks.append(
            warn(
                subject,
                "no test number, so the credentials were not tried",
                f"set carriers.{code}.test_number to a number of yours",
            )
        )
        return checks
    doctor_settings = settings.model_copy(
        update={
            "max_attempts": min(settings.max_attempts, 2),
            "timeout_seconds": min(settings.timeout_seconds, timeout),
        }
    )
    adapter = factory(doctor_settings, session)
    try:
        async with asyncio.timeout(timeout):
            results = await adapter.track([number])
    except CarrierAuthError as exc:
        checks.append(
            fail(
                subject,
                f"credentials rejected ({_one_line(exc)})",
                _credentials_fix(code, settings),
            )
        )
        return checks
    except CarrierUnavailable as exc:
        checks.append(
            fail(
                subject,
                f"could not be asked ({_one_line(exc)})",
                f"check carriers.{code}.base_url, or try again later",
            )
        )
        return checks
    except (CarrierError, TimeoutError, aiohttp.ClientError) as exc:
        checks.append(fail(subject, f"test number {number}: {describe_error(exc, timeout)}"))
        return checks
    how = "OAuth token obtained" if settings.client_id else "API key"
    checks.append(ok(subject, f"credentials accepted ({how})"))
    result = results.get(number)
    if result is None:
        checks.append(fail(subject, f"test number {number}: no result for it in the answer"))
    elif result.outcome is Outcome.FOUND:
        latest = max(result.events, key=lambda e: e.happened_at, default=None)
        status = f", latest {latest.status.value}" if latest and latest.status else ""
        checks.append(
            ok(subject, f"test number {number} answered: {len(result.events)} scans{status}")
        )
    elif result.outcome is Outcome.NOT_FOUND:
        checks.append(ok(subject, f"test number {number} answered: not found"))
    else:
        checks.append(
            warn(
                subject,
                f"test number {number} answered {result.outcome.value}: {result.message}",
                f"set carriers.{code}.test_number to a number of yours",
            )
        )
    return checks


def _default_base_url(factory: AdapterFactory) -> str | None:
    """The ``DEFAULT_BASE_URL`` of the adapter's module, if it has one."""
    try:
        module = importlib.import_module(factory.__module__)
    except ImportError:
        return None
    value = getattr(module, "DEFAULT_BASE_URL", None)
    return value if isinstance(value, str) else None


async def _reach(subject: str, base: str, session: aiohttp.ClientSession, timeout: float) -> Check:
    """Any HTTP answer from the base URL counts: only the network is checked here."""
    try:
        async with (
            asyncio.timeout(timeout),
            session.get(base, allow_redirects=False) as response,
        ):
            status = response.status
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return fail(
            subject,
            f"cannot reach {base} ({describe_error(exc, timeout)})",
            f"check carriers.{subject.split()[-1]}.base_url and the network",
        )
    return ok(subject, f"{base} reachable (HTTP {status})")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _credentials_fix(code: str, settings: CarrierSettings) -> str:
    env = f"TRACKER_CARRIERS__{code.upper()}__"
    if settings.client_id or settings.client_secret is not None:
        return f"check carriers.{code}.client_id/client_secret ({env}CLIENT_SECRET)"
    return f"check carriers.{code}.api_key ({env}API_KEY)"


def check_budget(
    code: str,
    settings: CarrierSettings,
    factory: AdapterFactory,
    polling: PollingConfig,
    use: Mapping[str, CarrierUse] | None,
) -> Check:
    """The configured budget against the carrier's published quota and today's use."""
    subject = f"carrier {code}"
    rate = settings.requests_per_second or float(
        getattr(factory, "default_requests_per_second", 1.0)
    )
    per_day = settings.requests_per_day or getattr(factory, "default_requests_per_day", None)
    text = f"budget {_rate(rate)}, {per_day if per_day is not None else 'no limit'} per day"
    base = settings.base_url or ""
    host = urlsplit(base).hostname if base else None
    sandbox = host is not None and is_loopback(host)
    quota = PUBLISHED_QUOTAS.get(code)
    over = [] if sandbox or quota is None else _over_quota(rate, per_day, quota)
    if over:
        return warn(
            subject,
            f"{text}: above the published quota ({quota.note if quota else ''}): "
            + "; ".join(over),
            f"lower carriers.{code}.requests_per_second/requests_per_day unless your plan "
            "allows more",
        )
    found = (use or {}).get(code, CarrierUse())
    if use is not None and per_day is not None:
        text += f", {found.used_today} used today"
        if found.used_today >= per_day:
            return warn(subject, f"{text}: spent, polling waits for 00:00 UTC")
        max_batch = max(1, int(getattr(factory, "max_batch", 1)))
        per_shipment = 86400 / max(polling.in_transit_every.total_seconds(), 1.0)
        needed = round(found.active * per_shipment / max_batch)
        if needed > per_day:
            return warn(
                subject,
                f"{text}: {found.active} active shipments need about {needed} requests a day "
                f"at polling.in_transit_every",
                f"raise carriers.{code}.requests_per_day (if the carrier allows) or lengthen "
                "polling.in_transit_every",
            )
    if sandbox:
        text += " (a local sandbox: no published quota applies)"
    elif quota is not None:
        text += f" (within {quota.note})"
    return ok(subject, text)


def _over_quota(rate: float, per_day: int | None, quota: Quota) -> list[str]:
    over = []
    if quota.per_second is not None and rate > quota.per_second * 1.001:
        over.append(f"{_rate(rate)} > {_rate(quota.per_second)}")
    if quota.per_day is not None and (per_day is None or per_day > quota.per_day):
        over.append(f"{per_day or 'unlimited'} per day > {quota.per_day}")
    return over


def _rate(rate: float) -> str:
    if rate >= 1:
        return f"{rate:g}/s"
    return f"{rate * 3600:g}/h"
