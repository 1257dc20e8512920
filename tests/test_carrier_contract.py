"""One suite, every carrier: each adapter against its own sandbox, held to carriers/base.py.

A carrier joins by being in ``carriers.registry.BUILTIN`` with a ``sandbox`` module that offers
``SANDBOX_SETTINGS``, ``sandbox_app(world)`` and ``sample_number(index)``.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from types import ModuleType

import aiohttp
import pytest

from carriers.base import (
    CarrierAuthError,
    CarrierSettings,
    CarrierUnavailable,
    Outcome,
)
from carriers.registry import BUILTIN
from carriers.sandbox_base import EXPECTED_STATUS, CarrierWorld, Kind, RequestRecord, Scan, Timeline
from carriers.sandbox_tokens import TOKENS_KEY
from tracker.sandbox.serve import serve

CODES = sorted(BUILTIN)
OAUTH_CODES = [
    code
    for code in CODES
    if "client_id" in importlib.import_module(f"carriers.{code}.sandbox").SANDBOX_SETTINGS
]


class Sandbox:
    def __init__(self, code: str) -> None:
        self.code = code
        self.module: ModuleType = importlib.import_module(f"carriers.{code}.sandbox")
        self.world = CarrierWorld(rate_limit_per_second=1000, slow_seconds=5)
        self.app = self.module.sandbox_app(self.world)
        self.url = ""

    def settings(self, **overrides: object) -> CarrierSettings:
        values: dict[str, object] = {
            **self.module.SANDBOX_SETTINGS,
            "base_url": self.url,
            "requests_per_second": 500,
            "timeout_seconds": 5,
            "max_attempts": 2,
        }
        values.update(overrides)
        return CarrierSettings.model_validate(values)

    def number(self, index: int) -> str:
        return str(self.module.sample_number(index))

    def expected(self, kind: Kind):
        overrides = getattr(self.module, "KIND_STATUS", {})
        return overrides.get(kind, EXPECTED_STATUS[kind])

    def register(self, number: str, kinds: list[Kind]) -> None:
        start = datetime.now(UTC) - timedelta(days=3)
        scans = [
            Scan(kind=k, after_hours=3 * i, city="Springfield", postal_code="12345", country="US")
            for i, k in enumerate(kinds)
        ]
        self.world.register(
            [
                Timeline(
                    tracking_number=number, start=start, scans=scans, eta_hours=3 * len(kinds) + 10
                )
            ]
        )

    def reads(self) -> list[RequestRecord]:
        """Requests that read tracking (not token fetches, not registrations)."""
        is_read = getattr(self.module, "is_tracking_request", lambda record: True)
        return [r for r in self.world.requests if r.numbers and is_read(r)]

    def requests_for(self, number: str) -> int:
        return sum(1 for r in self.reads() if number in r.numbers)


async def _serve(code: str):
    box = Sandbox(code)
    runner, box.url = await serve(box.app, 0)
    return box, runner


@pytest.fixture(params=CODES)
async def sandbox(request):
    box, runner = await _serve(request.param)
    yield box
    await runner.cleanup()


@pytest.fixture(params=OAUTH_CODES)
async def oauth_sandbox(request):
    box, runner = await _serve(request.param)
    yield box
    await runner.cleanup()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def adapter(box: Sandbox, http, **settings):
    return BUILTIN[box.code](box.settings(**settings), http)


async def test_every_kind_of_scan_reaches_its_status(sandbox: Sandbox, http):
    kinds = [
        Kind.LABEL,
        Kind.PICKUP,
        Kind.TRANSIT,
        Kind.CUSTOMS,
        Kind.DELAY,
        Kind.TRANSIT,
        Kind.OUT_FOR_DELIVERY,
        Kind.ATTEMPT,
        Kind.PICKUP_POINT,
        Kind.INFO,
        Kind.DELIVERED,
    ]
    number = sandbox.number(1)
    sandbox.register(number, kinds)
    result = (await adapter(sandbox, http).track([number]))[number]
    assert result.outcome is Outcome.FOUND, result.message
    assert [e.status for e in result.events] == [sandbox.expected(k) for k in kinds]
    times = [e.happened_at for e in result.events]
    assert times == sorted(times)
    assert all(t.tzinfo is UTC for t in times)


async def test_exception_and_return_are_failures(sandbox: Sandbox, http):
    kinds = [Kind.LABEL, Kind.TRANSIT, Kind.EXCEPTION, Kind.RETURNED]
    number = sandbox.number(2)
    sandbox.register(number, kinds)
    result = (await adapter(sandbox, http).track([number]))[number]
    assert [e.status for e in result.events] == [sandbox.expected(k) for k in kinds]


async def test_one_result_per_number_within_the_batch_limit(sandbox: Sandbox, http):
    carrier = adapter(sandbox, http)
    numbers = [sandbox.number(100 + i) for i in range(2 * carrier.max_batch + 1)]
    for number in numbers:
        sandbox.register(number, [Kind.LABEL, Kind.TRANSIT])
    results = await carrier.track(numbers)
    assert sorted(results) == sorted(numbers)
    assert all(r.outcome is Outcome.FOUND for r in results.values())
    assert max(len(r.numbers) for r in sandbox.reads()) <= carrier.max_batch


async def test_not_found_is_data_and_does_not_stop_the_others(sandbox: Sandbox, http):
    good = sandbox.number(3)
    sandbox.register(good, [Kind.LABEL])
    unknown = sandbox.number(4)  # never registered
    results = await adapter(sandbox, http).track([good, unknown, "SBNOTFOUND1"])
    assert results[good].outcome is Outcome.FOUND
    assert results[unknown].outcome is Outcome.NOT_FOUND
    assert results["SBNOTFOUND1"].outcome is Outcome.NOT_FOUND


async def test_malformed_answer_is_an_error_for_that_number_only(sandbox: Sandbox, http):
    good = sandbox.number(5)
    sandbox.register(good, [Kind.LABEL])
    carrier = adapter(sandbox, http)
    results = await carrier.track([good, "SBBADJSON1"])
    if carrier.max_batch == 1:
        assert results[good].outcome is Outcome.FOUND
    assert results["SBBADJSON1"].outcome is Outcome.ERROR


async def test_server_errors_are_retried_then_reported(sandbox: Sandbox, http):
    with pytest.raises(CarrierUnavailable):
        await adapter(sandbox, http, max_attempts=3).track(["SB5001"])
    assert sandbox.requests_for("SB5001") == 3


async def test_rate_limited_requests_honour_retry_after(sandbox: Sandbox, http):
    with pytest.raises(CarrierUnavailable):
        await adapter(sandbox, http, max_attempts=2).track(["SB4291"])
    times = [r.at for r in sandbox.reads() if "SB4291" in r.numbers]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.9  # the sandbox asks for Retry-After: 1


async def test_a_slow_carrier_times_out(sandbox: Sandbox, http):
    with pytest.raises(CarrierUnavailable):
        await adapter(sandbox, http, timeout_seconds=0.3, max_attempts=1).track(["SBSLOW1"])


async def test_wrong_credentials_are_an_auth_error(sandbox: Sandbox, http):
    wrong = {key: "wrong-" + value for key, value in sandbox.module.SANDBOX_SETTINGS.items()}
    number = sandbox.number(6)
    sandbox.register(number, [Kind.LABEL])
    with pytest.raises(CarrierAuthError):
        await adapter(sandbox, http, **wrong).track([number])


async def test_requests_are_paced_by_the_budget(sandbox: Sandbox, http):
    carrier = adapter(sandbox, http, requests_per_second=10)
    numbers = [sandbox.number(200 + i) for i in range(4 * carrier.max_batch)]
    for number in numbers:
        sandbox.register(number, [Kind.LABEL])
    await carrier.track(numbers)
    times = sorted(r.at for r in sandbox.reads())
    assert len(times) >= 4
    # 10 per second: n requests span at least (n - 1) / 10 s. Unpaced they would arrive within
    # milliseconds; the fifth taken off allows for the server noting one of them late.
    assert times[-1] - times[0] >= 0.8 * (len(times) - 1) / 10


def test_the_oauth_carriers_are_known():
    assert OAUTH_CODES == ["fedex", "ups", "usps"]


async def test_oauth_token_is_reused_and_renewed_once_on_expiry(oauth_sandbox: Sandbox, http):
    sandbox = oauth_sandbox
    issuer = sandbox.app[TOKENS_KEY]
    carrier = adapter(sandbox, http)
    number = sandbox.number(7)
    sandbox.register(number, [Kind.LABEL])
    await carrier.track([number])
    await carrier.track([number])
    assert issuer.issued == 1
    issuer.expire_all()
    result = (await carrier.track([number]))[number]
    assert result.outcome is Outcome.FOUND
    assert issuer.issued == 2
