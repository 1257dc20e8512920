"""What every carrier sandbox shares: scripted parcel timelines, a clock, fault numbers.

A sandbox is a real aiohttp server that speaks one carrier's wire format. What a parcel does is
scripted here once, in carrier-neutral terms (:class:`Kind`); each carrier's ``sandbox.py``
renders those scans in its own codes and shapes, and its ``parse.py`` must read them back. Tests
and the demo register timelines over HTTP (``POST /_sandbox/timelines``) or in process.

Fault numbers work on every sandbox, registered or not (case-insensitive prefix):

========================  ==========================================================
``SBNOTFOUND...``          the carrier's own "not found" answer
``SB429...``               429 with ``Retry-After: 1``
``SB500...``               HTTP 500 with an HTML error page
``SBSLOW...``              answers after ``slow_seconds`` (default 30 s)
``SBBADJSON...``           HTTP 200 with a truncated JSON body
========================  ==========================================================

Any other number that was never registered is "not found", as at the real carrier.

A carrier-wide fault (:class:`FaultMode`) makes every API request of a sandbox fail the same way
until it is healed: ``world.set_fault(FaultMode.SERVER_ERROR)`` ... ``world.heal()`` in process,
or ``POST /_sandbox/fault`` ``{"mode": "server_error"}`` ... ``DELETE /_sandbox/fault`` over HTTP.
The carrier's own handler still answers; :mod:`carriers.sandbox_faults` then spoils that answer
on its way out (or, for the token modes, refuses the bearer token so the carrier answers its own
401). Requests that met a fault carry its name in the request log.

Every carrier's ``sandbox.py`` offers the same three names, which the contract suite and the
demo use without knowing the carrier:

* ``SANDBOX_SETTINGS``: the ``carriers.<code>`` credentials the sandbox accepts;
* ``sandbox_app(world) -> web.Application``: the whole API, token endpoint and control routes;
* ``sample_number(index) -> str``: a well-formed tracking number of that carrier (valid
  checksum), different for every index;

and, where a carrier's codes cannot express a :class:`Kind` as :data:`EXPECTED_STATUS` says,
``KIND_STATUS`` with its own expectations for those kinds; where the API has requests that
carry numbers but do not read tracking (AfterShip's registrations),
``is_tracking_request(record)`` to tell the reads apart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from operator import attrgetter
from typing import Any

import orjson
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from carriers.timezones import zone_for_place
from tracker.domain import Status


class Kind(StrEnum):
    """A scan, before any carrier names it."""

    LABEL = "label"
    PICKUP = "pickup"
    TRANSIT = "transit"
    CUSTOMS = "customs"
    DELAY = "delay"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPT = "attempt"
    PICKUP_POINT = "pickup_point"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED = "returned"
    INFO = "info"


class Fault(StrEnum):
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    SLOW = "slow"
    MALFORMED = "malformed"


class FaultMode(StrEnum):
    """A carrier-wide fault: while set, every API request of the sandbox meets it."""

    SERVER_ERROR = "server_error"  # 503, 500, 502, 504 in turn
    RATE_LIMITED = "rate_limited"  # 429 with ``Retry-After: world.retry_after``
    RATE_LIMITED_BARE = "rate_limited_bare"  # 429 without Retry-After
    RESET = "reset"  # the connection is reset (TCP RST), no answer at all
    TIMEOUT = "timeout"  # no answer until the client gives up
    TRICKLE = "trickle"  # status and headers, then the body one byte per ``trickle_seconds``
    TRUNCATED = "truncated"  # half the body, then the connection closes (Content-Length: all)
    MALFORMED = "malformed"  # the whole body, labelled JSON, with single quotes: not JSON
    HTML_200 = "html_200"  # 200 with a maintenance page, as a proxy in front of the API sends
    HTML_502 = "html_502"  # a proxy's 502 Bad Gateway page
    WRONG_TYPE_JSON = "wrong_type_json"  # the real JSON answer, labelled text/html, text/plain
    WRONG_TYPE_TEXT = "wrong_type_text"  # 200 text/plain with a sentence, not JSON
    NOT_HTTP = "not_http"  # a line that is not HTTP, then the connection closes
    # OAuth sandboxes only (a name, not a secret): tokens die ``token_life_seconds`` after issue
    # (and those issued before the fault at once), or every bearer token is refused, fresh too.
    EXPIRED_TOKEN = "expired_token"  # noqa: S105
    REVOKED_TOKEN = "revoked_token"  # noqa: S105


TOKEN_MODES = frozenset({FaultMode.EXPIRED_TOKEN, FaultMode.REVOKED_TOKEN})
"""Modes that act on bearer tokens: the carrier answers its own 401; key-based sandboxes ignore
them."""


FAULT_PREFIXES: dict[str, Fault] = {
    "SBNOTFOUND": Fault.NOT_FOUND,
    "SB429": Fault.RATE_LIMIT,
    "SB500": Fault.SERVER_ERROR,
    "SBSLOW": Fault.SLOW,
    "SBBADJSON": Fault.MALFORMED,
}


class Scan(BaseModel):
    """One scripted scan: what happened, when (after the timeline's start), where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    after_hours: float = Field(ge=0)
    city: str = ""
    postal_code: str = ""
    country: str = ""
    message: str = ""


_AFTER_HOURS = attrgetter("after_hours")


@lru_cache(maxsize=4096)
def _after(hours: float, hours_per_second: float) -> timedelta:
    """How long after a timeline's start its scripted ``hours`` are on the wall clock (scripts
    use few distinct hours, and a timedelta costs more to make than to look up)."""
    if hours_per_second > 0:
        return timedelta(seconds=hours / hours_per_second)
    return timedelta(seconds=hours * 3600.0)


@lru_cache(maxsize=4096)
def place_zone(country: str, region: str = "") -> tzinfo | None:
    """:func:`carriers.timezones.zone_for_place`, remembered: sandboxes write the same few
    places' times over and over."""
    return zone_for_place(country, region)


def wall_time(moment: datetime) -> str:
    """``moment``'s own date and time with no zone (``2026-03-29T01:30:00``), as
    ``moment.replace(tzinfo=None).isoformat(timespec="seconds")`` writes it, for less CPU."""
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (  # noqa: UP031 (faster than an f-string)
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
    )  # fmt: skip


class Timeline(BaseModel):
    """A parcel's whole life, revealed scan by scan as the sandbox clock passes each one."""

    model_config = ConfigDict(extra="forbid")

    tracking_number: str
    start: AwareDatetime
    scans: list[Scan]
    eta_hours: float | None = None
    hours_per_second: float = Field(
        0.0, ge=0, description="Time compression: scripted hours that pass per real second."
    )
    service: str = "parcel"

    def at(self, scan: Scan) -> datetime:
        """When ``scan`` happens on the wall clock."""
        return self.start + _after(scan.after_hours, self.hours_per_second)

    def eta(self) -> datetime | None:
        if self.eta_hours is None:
            return None
        return self.start + _after(self.eta_hours, self.hours_per_second)

    def visible(self, now: datetime) -> list[tuple[datetime, Scan]]:
        """Scans that have happened by ``now``, oldest first, each with its time (:meth:`at`)."""
        start, rate = self.start, self.hours_per_second
        shown: list[tuple[datetime, Scan]] = []
        for scan in sorted(self.scans, key=_AFTER_HOURS):
            moment = start + _after(scan.after_hours, rate)
            if moment > now:  # and so are all later scans: the time grows with after_hours
                break
            shown.append((moment, scan))
        return shown


class SandboxClock:
    """Wall-clock time plus an offset tests can move forward."""

    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        offset = self._offset
        return datetime.now(UTC) + offset if offset else datetime.now(UTC)

    def advance(self, delta: timedelta) -> None:
        self._offset += delta


@dataclass
class RequestRecord:
    """One request a sandbox received, for tests to assert on."""

    at: float
    method: str
    path: str
    numbers: tuple[str, ...]
    status: int
    fault: str = ""
    """The :class:`FaultMode` the request met (``status`` is then what the client saw: 0 for no
    answer, 499 when the client hung up first)."""


RECORD_KEY = web.RequestKey("sandbox_request_record", RequestRecord)


@dataclass
class CarrierWorld:
    """State of one carrier sandbox: timelines, clock, request log, its own rate limit, and the
    carrier-wide fault it suffers, if any."""

    clock: SandboxClock = field(default_factory=SandboxClock)
    timelines: dict[str, Timeline] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    rate_limit_per_second: float = 50.0
    slow_seconds: float = 30.0
    fault_mode: FaultMode | None = None
    fault_since: float = 0.0
    """``time.monotonic()`` when ``fault_mode`` was set."""
    retry_after: str = "1"
    """The ``Retry-After`` header of :attr:`FaultMode.RATE_LIMITED` (seconds or an HTTP date)."""
    trickle_seconds: float = 1.0
    token_life_seconds: float = 2.0
    hang_seconds: float = 3600.0
    _window: deque[float] = field(default_factory=deque)
    """``time.monotonic()`` of the requests let through in the last second, oldest first."""

    def set_fault(self, mode: FaultMode) -> None:
        """From now on every API request meets ``mode`` (control routes excepted)."""
        self.fault_mode = mode
        self.fault_since = time.monotonic()

    def heal(self) -> None:
        """Answer normally again."""
        self.fault_mode = None

    def fault_requests(self, mode: FaultMode | None = None) -> list[RequestRecord]:
        """Requests that met ``mode`` (any fault when None), oldest first."""
        return [r for r in self.requests if r.fault and (mode is None or r.fault == mode)]

    def register(self, timelines: Iterable[Timeline]) -> None:
        for timeline in timelines:
            self.timelines[timeline.tracking_number.upper()] = timeline

    def fault(self, number: str) -> Fault | None:
        upper = number.upper()
        if upper.startswith(tuple(FAULT_PREFIXES)):  # a usual number is out after one test
            for prefix, fault in FAULT_PREFIXES.items():
                if upper.startswith(prefix):
                    return fault
        if upper not in self.timelines:
            return Fault.NOT_FOUND
        return None

    def lookup(self, number: str) -> Timeline | None:
        return self.timelines.get(number.upper())

    def over_rate_limit(self) -> bool:
        """True when this request exceeds ``rate_limit_per_second`` over the last second."""
        now = time.monotonic()
        window = self._window
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.rate_limit_per_second:
            return True
        window.append(now)
        return False

    def log(self, request: web.Request, numbers: Iterable[str], status: int) -> None:
        record = RequestRecord(
            time.time(),
            request.method,
            request.path,
            tuple(numbers),
            status,
            self.fault_mode.value if self.fault_mode is not None else "",
        )
        self.requests.append(record)
        request[RECORD_KEY] = record  # the fault middleware corrects what the client saw
        if len(self.requests) > 100_000:
            del self.requests[:50_000]


WORLD_KEY = web.AppKey("carrier_world", CarrierWorld)


def json_response(
    data: Any,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    """What ``web.json_response`` answers (same JSON, same ``Content-Type``, charset included),
    written by orjson at a fraction of the CPU; by ``json.dumps`` where orjson refuses (a lone
    surrogate in a scripted message, a non-string key)."""
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:
        body = json.dumps(data).encode()
    return web.Response(
        body=body, status=status, headers=headers, content_type=content_type, charset="utf-8"
    )


# What each Kind must parse back to, for every carrier (the contract suite checks it). A carrier
# whose codes cannot say one of these lists its deviations in its sandbox's KIND_STATUS.
EXPECTED_STATUS: dict[Kind, Status | None] = {
    Kind.LABEL: Status.LABEL_PURCHASED,
    Kind.PICKUP: Status.CARRIER_PICKED_UP,
    Kind.TRANSIT: Status.IN_TRANSIT,
    Kind.CUSTOMS: Status.IN_TRANSIT,
    Kind.DELAY: Status.DELAYED,
    Kind.OUT_FOR_DELIVERY: Status.OUT_FOR_DELIVERY,
    Kind.ATTEMPT: Status.ATTEMPTED_DELIVERY,
    Kind.PICKUP_POINT: Status.READY_FOR_PICKUP,
    Kind.DELIVERED: Status.DELIVERED,
    Kind.EXCEPTION: Status.FAILURE,
    Kind.RETURNED: Status.FAILURE,
    Kind.INFO: None,
}


async def fault_pause(world: CarrierWorld, fault: Fault | None) -> None:
    """Sleep for the slow fault; every other fault is answered by the carrier's own code."""
    if fault is Fault.SLOW:
        await asyncio.sleep(world.slow_seconds)


def truncated_json(body: str) -> str:
    """A body cut in half, as a connection dropped mid-answer would leave it."""
    return body[: max(1, len(body) // 2)]


HTML_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1></body></html>"
)


CONTROL_PREFIX = "/_sandbox/"
