"""carriers.http.request_json against a real local server: what the field sends that specs don't.

Header names arrive in any case; bodies arrive in other charsets, with NaN, with integers wider
than 64 bits, with lone surrogate escapes. The fast JSON path must read each of them exactly as
the standard library does, and a pause the carrier asks for must hold whatever the header's
case.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from carriers.base import CarrierUnavailable
from carriers.http import RateLimiter, _json_or_none, request_json

Handler = Callable[[web.Request], web.StreamResponse]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)  # type: ignore[arg-type]
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/track"

    yield start
    for runner in runners:
        await runner.cleanup()


async def ask(url: str, *, attempts: int = 3) -> Any:
    async with aiohttp.ClientSession() as session:
        return await request_json(
            session,
            "GET",
            url,
            limiter=RateLimiter(1000.0),
            timeout=5.0,
            max_attempts=attempts,
            headers={"DHL-API-Key": "k-123456"},
        )


@pytest.mark.parametrize("name", ["retry-after", "RETRY-AFTER", "Retry-After"])
async def test_a_long_retry_after_in_any_case_stops_at_once(serve: Any, name: str) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=429, text="slow down", headers={name: "120"})

    url = await serve(handler)
    with pytest.raises(CarrierUnavailable) as caught:
        await ask(url)
    assert caught.value.retry_after == 120
    assert hits == 1, "a pause longer than we wait in process is not retried early"


BODIES: list[tuple[str, bytes, str]] = [
    ("plain", b'{"a": [1, 2.5, "x"], "b": null}', "application/json"),
    ("NaN and Infinity", b'{"a": NaN, "b": -Infinity}', "application/json"),
    ("wide integer", b'{"n": 1180591620717411303424}', "application/json"),
    ("lone surrogate escape", b'{"s": "\\ud800x"}', "application/json"),
    ("duplicate keys", b'{"a": 1, "a": 2}', "application/json"),
    ("latin-1", '{"city": "Malmö"}'.encode("latin-1"), "application/json; charset=iso-8859-1"),
    ("utf-8 without a label", '{"city": "Zürich"}'.encode(), "text/plain"),
]


@pytest.mark.parametrize(("label", "raw", "content_type"), BODIES, ids=[b[0] for b in BODIES])
async def test_bodies_read_as_the_standard_library_reads_them(
    serve: Any, label: str, raw: bytes, content_type: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=raw, headers={"Content-Type": content_type})

    response = await ask(await serve(handler))
    charset = "iso-8859-1" if "8859" in content_type else "utf-8"
    expected = json.loads(raw.decode(charset))
    assert _same(response.body, expected), (label, response.body, expected)
    assert response.text == raw.decode(charset)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


async def test_a_json_label_on_a_broken_body_is_an_answer_without_a_body(serve: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b'{"a": ', headers={"Content-Type": "application/json"})

    response = await ask(await serve(handler))
    assert response.status == 200
    assert response.body is None
    assert response.text == '{"a": '


async def test_an_html_page_is_retried_then_named_by_its_title_without_the_key(
    serve: Any,
) -> None:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        page = "<html><title>Down for maintenance k-123456</title><body>x</body></html>"
        return web.Response(text=page, content_type="text/html")

    with pytest.raises(CarrierUnavailable) as caught:
        await ask(await serve(handler), attempts=2)
    assert hits == 2
    message = str(caught.value)
    assert "Down for maintenance" in message
    assert "k-123456" not in message
    assert message.startswith("GET http://127.0.0.1:")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES, st.sampled_from([None, 0, 2]))
def test_any_json_reads_as_the_standard_library_reads_it(value: Any, indent: int | None) -> None:
    raw = json.dumps(value, indent=indent).encode()
    body, readable = _json_or_none(raw)
    assert readable
    assert _same(body, json.loads(raw.decode()))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_json_exactly_when_the_standard_library_says_so(raw: bytes) -> None:
    body, readable = _json_or_none(raw)
    try:
        expected = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        assert (body, readable) == (None, False)
    else:
        assert readable
        assert _same(body, expected)
