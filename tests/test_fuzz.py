"""Fuzzing (hypothesis): the webhook handler and every carrier parser, on hostile input.

- The webhook endpoint gets arbitrary bodies, shop domains, topics, ids, signatures and
  headers: it never answers 5xx, and only a delivery signed with the shop's secret changes the
  database (and then only ``webhook_deliveries``).
- Every carrier parser gets documents shaped like its carrier's real answers (rendered by its
  sandbox, then mutated: keys dropped, values of other types, strings replaced by markup, NUL,
  control characters, lone surrogates, bidirectional overrides and 10 kB of text) and error
  bodies the same way. Carrier problems are data, so no parser raises anything; every result
  has one clean line of bounded text in every field PostgreSQL, a page or Shopify will get.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from carriers.aftership import parse as aftership
from carriers.aftership.render import render_tracking
from carriers.base import TrackResult
from carriers.dhl import parse as dhl
from carriers.dhl.sandbox import render_shipments
from carriers.fedex import parse as fedex
from carriers.fedex.sandbox_render import render_track_result
from carriers.postnord import parse as postnord
from carriers.postnord.sandbox_render import render_response as render_postnord
from carriers.sandbox_base import Kind, Scan, Timeline
from carriers.ups import parse as ups
from carriers.ups.sandbox_render import render_track_response
from carriers.usps import parse as usps
from carriers.usps.sandbox_render import render_details, render_summary
from tests.test_bad_input import snapshot, webhook_config
from tracker.config import Config
from tracker.sandbox.serve import serve
from tracker.shopify.sync import ensure_shops
from tracker.text import MAX_TEXT
from tracker.web import build_app
from tracker.web.webhooks import sign

EXAMPLES = 300
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\ud800-\udfff]")

# --- hostile text -------------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\x00",
    "\x00" * 40,
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR 1=1 --",
    '=HYPERLINK("http://evil.example")',
    "\u202eevil\u202c",
    "\ud800",
    "\udfff tail",
    "line\r\nbreak\tand tab",
    "\x1b[31mred\x1b[0m",
    "\x85\x9b\u2028\u2029",
    "Zürich 東京 🙂 \u200d",
    "x" * 10_000,
    "NaN",
    "9" * 400,
]
HOSTILE_TEXT = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
            max_size=60),
    st.lists(st.sampled_from(NASTY), min_size=2, max_size=4).map("".join),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), HOSTILE_TEXT
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=10,
)


def shaped(template: Any) -> st.SearchStrategy[Any]:
    """Documents like ``template``: each value kept, or replaced by hostile text or another
    JSON value; objects with keys dropped; lists shortened, repeated or reordered."""
    if isinstance(template, dict):
        fields = {key: shaped(value) for key, value in template.items()}
        whole = st.fixed_dictionaries(fields)
        return st.one_of(whole, whole, st.fixed_dictionaries({}, optional=fields), ANY_JSON)
    if isinstance(template, list):
        if not template:
            return st.just([]) | st.lists(ANY_JSON, max_size=2)
        items = st.one_of(*(shaped(item) for item in template))
        return st.lists(items, max_size=len(template) + 1) | st.just(template) | ANY_JSON
    if isinstance(template, str):
        return st.one_of(
            st.just(template),
            st.just(template),
            HOSTILE_TEXT,
            HOSTILE_TEXT.map(lambda text: template + text),
            SCALARS,
        )
    return st.one_of(st.just(template), SCALARS)


# --- documents as each carrier writes them ------------------------------------------------------

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def timeline(number: str) -> Timeline:
    """A parcel that went through every kind of scan, in Germany and the US."""
    scans = [
        Scan(kind=kind, after_hours=i * 3.0, city="Leipzig" if i % 2 else "Memphis",
             postal_code="04109" if i % 2 else "38118", country="DE" if i % 2 else "US",
             message="Handed over")
        for i, kind in enumerate(Kind)
    ]  # fmt: skip
    return Timeline(
        tracking_number=number, start=NOW - timedelta(days=3), scans=scans, eta_hours=80
    )


def _rendered(render: Callable[[Timeline, datetime], dict[str, Any] | None], number: str) -> Any:
    body = render(timeline(number), NOW)
    assert body is not None, render
    return body


DHL_NUMBER = "JJD000000000000000001"
UPS_NUMBER = "1Z999AA10123456784"
FEDEX_NUMBER = "794612345672"
USPS_NUMBER = "9400100000000000000000"
POSTNORD_NUMBER = "00370712345678901234"
AFTERSHIP_NUMBER = "LT123456785CN"


def fedex_body(number: str) -> dict[str, Any]:
    entry = _rendered(render_track_result, number)  # a completeTrackResults entry
    return {"transactionId": "t-1", "output": {"completeTrackResults": [entry]}}


def aftership_body(number: str) -> dict[str, Any]:
    tracking = render_tracking(number, "china-post", NOW - timedelta(days=3), timeline(number), NOW)
    return {"meta": {"code": 200, "message": "", "type": "OK"}, "data": {"trackings": [tracking]}}


ERROR_TEMPLATES: dict[str, Any] = {
    "dhl": {"title": "No result found", "status": 404, "detail": "No shipment found."},
    "ups": {"response": {"errors": [{"code": "151018", "message": "Invalid tracking number"}]}},
    "fedex": {"transactionId": "t", "errors": [{"code": "TRACKING.NUMBER.INVALID",
                                                "message": "Invalid tracking number."}]},
    "usps": {"apiVersion": "3", "error": {"code": "400", "message": "Bad Request",
                                          "errors": [{"title": "Invalid", "detail": "bad"}]}},
    "postnord": {"TrackingInformationResponse": {"compositeFault": {"faults": [
        {"faultCode": "invalidIdentifier", "explanationText": "Invalid identifier"}]},
        "shipments": []}},
    "aftership": {"meta": {"code": 4004, "message": "Tracking does not exist.",
                           "type": "NotFound"}, "data": {}},
}  # fmt: skip


def check_result(result: TrackResult, number: str) -> None:
    """The result is about ``number`` and every text in it is safe to store, show and send."""
    assert isinstance(result, TrackResult)
    assert result.tracking_number == number
    texts = {"message": result.message, "raw_status": result.raw_status}
    for i, event in enumerate(result.events):
        assert event.happened_at.tzinfo is UTC
        texts.update(
            {
                f"events[{i}].message": event.message,
                f"events[{i}].carrier_code": event.carrier_code,
                f"events[{i}].time_source": event.time_source,
                f"events[{i}].city": event.city or "",
                f"events[{i}].province": event.province or "",
                f"events[{i}].country": event.country or "",
                f"events[{i}].zip": event.zip or "",
            }
        )
    for field, text in texts.items():
        assert isinstance(text, str), field
        assert not UNSAFE.search(text), (field, text[:80])
        assert len(text) <= 2 * MAX_TEXT + 60, (field, len(text))
        text.encode("utf-8")  # storable: no lone surrogate
    moments = [e.happened_at for e in result.events]
    assert moments == sorted(moments)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NUMBERS = [" x ", "\x00", "<b>"]


@FUZZ
@given(
    body=shaped(_rendered(render_shipments, DHL_NUMBER)) | shaped(ERROR_TEMPLATES["dhl"]),
    number=st.sampled_from([DHL_NUMBER, *NUMBERS]),
    status=st.sampled_from([400, 404, 500]),
)
def test_dhl_parsing_never_raises_and_gives_clean_text(body: Any, number: str, status: int) -> None:
    check_result(dhl.parse_response(number, body), number)
    problem = dhl.problem_result(number, status, body)
    if problem is not None:
        check_result(problem, number)


@FUZZ
@given(
    body=shaped(_rendered(render_track_response, UPS_NUMBER)) | shaped(ERROR_TEMPLATES["ups"]),
    number=st.sampled_from([UPS_NUMBER, *NUMBERS]),
    status=st.sampled_from([None, 400, 404]),
)
def test_ups_parsing_never_raises_and_gives_clean_text(
    body: Any, number: str, status: int | None
) -> None:
    check_result(ups.parse_response(number, body), number)
    problem = ups.error_result(number, status, body)
    if problem is not None:
        check_result(problem, number)
    for code, message in ups.error_entries(body):
        assert not UNSAFE.search(code + message)


@FUZZ
@given(
    body=shaped(fedex_body(FEDEX_NUMBER)) | shaped(ERROR_TEMPLATES["fedex"]),
    numbers=st.lists(
        st.sampled_from([FEDEX_NUMBER, "7946 1234 5672", *NUMBERS]),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    status=st.sampled_from([None, 400, 404, 500]),
)
def test_fedex_parsing_never_raises_and_gives_clean_text(
    body: Any, numbers: list[str], status: int | None
) -> None:
    results = fedex.parse_response(numbers, body)
    assert list(results) == numbers
    for number, result in results.items():
        check_result(result, number)
    errors = fedex.error_results(numbers, status, body)
    assert list(errors) == numbers
    for number, result in errors.items():
        check_result(result, number)


@FUZZ
@given(
    body=shaped(_rendered(render_details, USPS_NUMBER))
    | shaped(render_summary(_rendered(render_details, USPS_NUMBER)))
    | shaped(ERROR_TEMPLATES["usps"]),
    number=st.sampled_from([USPS_NUMBER, *NUMBERS]),
    status=st.sampled_from([None, 400, 404, 500]),
)
def test_usps_parsing_never_raises_and_gives_clean_text(
    body: Any, number: str, status: int | None
) -> None:
    check_result(usps.parse_response(number, body), number)
    problem = usps.error_result(number, status, body)
    if problem is not None:
        check_result(problem, number)


@FUZZ
@given(
    body=shaped(_rendered(render_postnord, POSTNORD_NUMBER)) | shaped(ERROR_TEMPLATES["postnord"]),
    number=st.sampled_from([POSTNORD_NUMBER, *NUMBERS]),
    status=st.sampled_from([None, 400, 404]),
)
def test_postnord_parsing_never_raises_and_gives_clean_text(
    body: Any, number: str, status: int | None
) -> None:
    check_result(postnord.parse_response(number, body), number)
    fault = postnord.fault_result(number, body, status)
    if fault is not None:
        check_result(fault, number)


@FUZZ
@given(
    body=shaped(aftership_body(AFTERSHIP_NUMBER)) | shaped(ERROR_TEMPLATES["aftership"]),
    number=st.sampled_from([AFTERSHIP_NUMBER, *NUMBERS]),
    status=st.sampled_from([None, 400, 404, 429]),
)
def test_aftership_parsing_never_raises_and_gives_clean_text(
    body: Any, number: str, status: int | None
) -> None:
    check_result(aftership.parse_response(number, body), number)
    problem = aftership.error_result(number, status, body)
    if problem is not None:
        check_result(problem, number)
    batch = aftership.parse_batch([number, "OTHER"], body)
    if not isinstance(batch, aftership.Unreadable):
        assert set(batch) == {number, "OTHER"}
        for key, result in batch.items():
            if result is not None:
                check_result(result, key)


def test_the_templates_are_read_as_real_answers() -> None:
    """The unmutated documents parse to what the sandboxes mean: the fuzzing starts from
    documents the parsers understand, not from garbage."""
    for result in (
        dhl.parse_response(DHL_NUMBER, _rendered(render_shipments, DHL_NUMBER)),
        ups.parse_response(UPS_NUMBER, _rendered(render_track_response, UPS_NUMBER)),
        fedex.parse_response([FEDEX_NUMBER], fedex_body(FEDEX_NUMBER))[FEDEX_NUMBER],
        usps.parse_response(USPS_NUMBER, _rendered(render_details, USPS_NUMBER)),
        postnord.parse_response(POSTNORD_NUMBER, _rendered(render_postnord, POSTNORD_NUMBER)),
        aftership.parse_response(AFTERSHIP_NUMBER, aftership_body(AFTERSHIP_NUMBER)),
    ):
        assert result.outcome.value == "found", result
        assert len(result.events) >= len(Kind) - 1, result
    for carrier, number in (("dhl", DHL_NUMBER), ("ups", UPS_NUMBER), ("usps", USPS_NUMBER)):
        module = {"dhl": dhl, "ups": ups, "usps": usps}[carrier]
        assert module.parse_response(number, ERROR_TEMPLATES[carrier]).outcome.value != "found"


# --- the webhook handler ------------------------------------------------------------------------

SHOP = "acme.myshopify.com"
SECRETS = ("whsec-current-0123456789", "whsec-previous-9876543210")
# Header values as bytes on the wire: text in any script, or any bytes but CR and LF.
HEADER_VALUE = st.one_of(
    st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=60)
    .map(lambda text: text.encode("utf-8")),
    st.binary(max_size=60).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")),
)  # fmt: skip

# Values that read as something: moments outside what UTC can hold, encodings, big ids.
ODD_HEADER_VALUES = [
    b"9999-12-31T23:59:59-23:59",
    b"0001-01-01T00:00:00+23:59",
    b"2026-03-02T09:00:00.123456789Z",
    b"gzip",
    b"deflate",
    b"br",
    b"application/json; charset=latin-1",
    b"99999999999999999999999999999",
]


@pytest.fixture
async def webhook_server(pool: asyncpg.Pool) -> AsyncIterator[tuple[str, int]]:
    config: Config = webhook_config()
    await ensure_shops(pool, config.shops)
    runner, base = await serve(build_app(pool, config), 0)
    url = URL(base)
    assert url.host is not None
    assert url.port is not None
    yield url.host, url.port
    await runner.cleanup()


async def raw_request(
    server: tuple[str, int], method: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes, bytes]:
    """Send exactly these bytes (no client library in between); status, head and body back."""
    reader, writer = await asyncio.open_connection(*server)
    try:
        lines = [method + b" /webhooks/shopify HTTP/1.1", b"Host: " + server[0].encode()]
        lines += [name + b": " + value for name, value in headers]
        lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head, rest


def json_body(head: bytes, rest: bytes) -> Any:
    """The JSON of an answer sent with a Content-Length (what this app's handlers send)."""
    assert b"application/json" in head.lower(), head
    return json.loads(rest)


def well_formed(
    body: bytes, required: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> bool:
    """Whether a signed request is one Shopify could send: a JSON object PostgreSQL can store
    (no ``\\u`` escapes, which may be NUL or lone surrogates), required headers plain, other
    Shopify headers plain or empty, the body sent as is."""

    def no_constants(name: str) -> object:
        raise ValueError(name)

    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(payload, dict) or b"\\u" in body:
        return False
    plain = re.compile(rb"[\x21-\x7e]{1,255}")
    if not all(plain.fullmatch(value.strip(b" \t")) for _, value in required):
        return False
    if sum(1 for name, _ in extra if name.lower() == b"content-type") > 1:
        return False  # HTTP allows one; the HTTP parser refuses a second before any handler
    for name, value in extra:
        given = value.strip(b" \t")
        if name == b"Content-Encoding" or not re.fullmatch(rb"[\t\x20-\x7e]*", value):
            return False  # decoded, or refused by the HTTP parser before any handler
        if name.startswith(b"X-Shopify") and given and not plain.fullmatch(given):
            return False
    return True


PLAIN_JSON = st.dictionaries(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    st.integers() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    max_size=5,
).map(lambda value: json.dumps(value).encode())


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    from_shopify=st.booleans(),
    body=st.one_of(
        st.binary(max_size=400),
        ANY_JSON.map(lambda value: json.dumps(value).encode("utf-8", "surrogatepass")),
        PLAIN_JSON,
        st.just(b'{"id": 820982911946154508}'),
    ),
    shop=st.sampled_from([SHOP, SHOP.upper(), f" {SHOP} ", "no-secret.myshopify.com", ""])
    .map(str.encode)
    | HEADER_VALUE,
    topic=st.sampled_from([b"orders/updated", b"fulfillment_events/create", b"app/uninstalled"])
    | HEADER_VALUE,
    webhook_id=HEADER_VALUE | st.builds(lambda: str(uuid.uuid4()).encode()),
    signature=st.sampled_from(["current", "previous", "other", "of another body", "none"])
    | HEADER_VALUE,
    extra=st.lists(
        st.tuples(
            st.sampled_from([b"X-Shopify-Event-Id", b"X-Shopify-Triggered-At",
                             b"X-Shopify-API-Version", b"Content-Type", b"Content-Encoding",
                             b"X-Shopify-Hmac-Sha256", b"X-Custom"]),
            HEADER_VALUE | st.sampled_from(ODD_HEADER_VALUES),
        ),
        max_size=4,
    ),
    method=st.sampled_from([b"POST", b"POST", b"POST", b"PUT", b"GET"]),
)  # fmt: skip
async def test_arbitrary_webhook_requests_never_fail_and_only_signed_ones_store(
    pool: asyncpg.Pool,
    webhook_server: tuple[str, int],
    from_shopify: bool,
    body: bytes,
    shop: bytes,
    topic: bytes,
    webhook_id: bytes,
    signature: str | bytes,
    extra: list[tuple[bytes, bytes]],
    method: bytes,
) -> None:
    if from_shopify:  # the shop and the secret are right; everything else may be odd
        shop, method = SHOP.encode(), b"POST"
        signature = signature if signature in ("current", "previous") else "current"
    headers = [
        (b"X-Shopify-Shop-Domain", shop),
        (b"X-Shopify-Topic", topic),
        (b"X-Shopify-Webhook-Id", webhook_id),
    ]
    secret = {"current": SECRETS[0], "previous": SECRETS[1], "other": "whsec-someone-else"}
    if isinstance(signature, bytes):
        headers.append((b"X-Shopify-Hmac-Sha256", signature))
    elif signature in secret:
        headers.append((b"X-Shopify-Hmac-Sha256", sign(body, secret[signature]).encode()))
    elif signature == "of another body":
        headers.append((b"X-Shopify-Hmac-Sha256", sign(body + b" ", SECRETS[0]).encode()))
    headers += extra
    authentic = (
        method == b"POST"
        and signature in ("current", "previous")
        and shop.strip().lower() == SHOP.encode()
    )
    before = await snapshot(pool)
    status, head, rest = await raw_request(webhook_server, method, headers, body)
    assert status < 500, (status, head, rest[:300])
    after = await snapshot(pool)
    changed = {name for name in after if after[name] != before[name]}
    if not authentic:
        assert 400 <= status < 500, (status, head)
        assert changed == set(), (changed, headers)
    else:
        assert changed <= {"webhook_deliveries"}, changed
        if changed:
            assert status == 200
            assert json_body(head, rest) == {"status": "stored"}
        if well_formed(body, [(b"X-Shopify-Topic", topic), (b"X-Shopify-Webhook-Id", webhook_id)],
                       extra):  # fmt: skip
            # Shopify's own delivery: refusing it would only make Shopify send it again.
            assert status == 200, (status, rest[:300], headers)
    if status >= 400 and b"application/json" in head.lower():
        assert json_body(head, rest)["error"].strip()


PLAIN_VALUE = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=PLAIN_JSON | st.just(b'{"id": 820982911946154508, "name": "#1001"}'),
    topic=st.sampled_from(["orders/updated", "fulfillments/create", "bulk_operations/finish",
                           "fulfillment_events/create", "products/update"]) | PLAIN_VALUE,
    webhook_id=PLAIN_VALUE,
    secret=st.sampled_from(SECRETS),
    extra=st.lists(
        st.tuples(
            st.sampled_from([b"X-Shopify-Event-Id", b"X-Shopify-Triggered-At",
                             b"X-Shopify-API-Version"]),
            st.sampled_from([v for v in ODD_HEADER_VALUES if b" " not in v])
            | PLAIN_VALUE.map(str.encode),
        ),
        max_size=3,
        unique_by=lambda pair: pair[0],
    ),
)  # fmt: skip
async def test_every_well_formed_signed_delivery_is_answered_200(
    pool: asyncpg.Pool,
    webhook_server: tuple[str, int],
    body: bytes,
    topic: str,
    webhook_id: str,
    secret: str,
    extra: list[tuple[bytes, bytes]],
) -> None:
    """What Shopify could send is never refused (a refusal makes Shopify send it again for two
    days, then drop the subscription): stored, a duplicate, or a topic this daemon ignores."""
    headers = [
        (b"X-Shopify-Shop-Domain", SHOP.encode()),
        (b"X-Shopify-Topic", topic.encode()),
        (b"X-Shopify-Webhook-Id", webhook_id.encode()),
        (b"X-Shopify-Hmac-Sha256", sign(body, secret).encode()),
        *extra,
    ]
    before = await snapshot(pool)
    status, head, rest = await raw_request(webhook_server, b"POST", headers, body)
    assert status == 200, (status, rest[:300], headers)
    answer = json_body(head, rest)["status"]
    assert answer in ("stored", "duplicate", "ignored")
    after = await snapshot(pool)
    assert {name for name in after if after[name] != before[name]} == (
        {"webhook_deliveries"} if answer == "stored" else set()
    )
