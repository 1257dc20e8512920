"""Who may see and change what: the off-loopback rule, the login, the API token, CSRF."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.webdata import Client, add_shipment, add_shop, csrf_token_in
from tracker.config import Config
from tracker.config_load import ConfigError, load_config
from tracker.config_web import is_loopback
from tracker.metrics import Metrics, MetricsSource
from tracker.web import build_app
from tracker.web.access import SESSION_COOKIE, safe_next
from tracker.web.auth import SessionSigner, hash_password, verify_password
from tracker.web.metrics import add_metrics_route

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "api-token-0123456789abcdef"
SECRET = "session-secret-0123456789abcdef-0123456789"
USER = "merchant"
PASSWORD = "correct horse battery"
CHEAP_HASH = hash_password(PASSWORD, n=2**10)  # the real default is 2**14; tests stay quick


def auth_section(**overrides: Any) -> dict[str, Any]:
    return {
        "api_token": TOKEN,
        "username": USER,
        "password_hash": CHEAP_HASH,
        "session_secret": SECRET,
        **overrides,
    }


def auth_config(**web_overrides: Any) -> Config:
    return Config.model_validate(
        {"web": {"host": "0.0.0.0", "auth": auth_section(), **web_overrides}}
    )


async def serve(pool: asyncpg.Pool, config: Config) -> TestClient[web.Request, web.Application]:
    app = build_app(pool, config)
    add_metrics_route(app, MetricsSource(Metrics(), pool, (), {}, {}))
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with await serve(pool, auth_config()) as test_client:
        yield test_client


@pytest.fixture
async def open_client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    async with await serve(pool, Config()) as test_client:
        yield test_client


async def sign_in(client: Client, password: str = PASSWORD, next_: str = "/") -> Any:
    form = await (await client.get(f"/login?next={next_}")).text()
    assert 'name="password"' in form
    return await client.post(
        "/login",
        data={"username": USER, "password": password, "next": next_},
        headers={"Origin": str(client.make_url("/").origin())},
        allow_redirects=False,
    )


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_no_login(host: str) -> None:
    assert is_loopback(host)
    assert Config.model_validate({"web": {"host": host}}).web.auth is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "tracker.example.com"])
def test_other_hosts_refuse_to_start_without_web_auth(tmp_path: Path, host: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"web:\n  host: '{host}'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert f"{path}: web: host {host!r} is reachable from other machines" in message
    assert "web.auth is required" in message


def test_check_config_names_the_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("web:\n  host: 0.0.0.0\n")
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "web.auth is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_password_and_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("web:\n  host: 0.0.0.0\n  auth:\n    username: merchant\n")
    config = load_config(
        path,
        env={
            "TRACKER_WEB__AUTH__PASSWORD": PASSWORD,
            "TRACKER_WEB__AUTH__API_TOKEN": TOKEN,
            "TRACKER_WEB__AUTH__SESSION_SECRET": SECRET,
        },
    )
    assert config.web.auth is not None
    assert config.web.auth.password is not None
    assert config.web.auth.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(config)


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"api_token": "short"}, "api_token must be at least 16 characters"),
        ({"session_secret": "short"}, "session_secret must be at least 32 characters"),
        ({"password_hash": None}, "set exactly one of password_hash"),
        ({"password": "also"}, "set exactly one of password_hash"),
        ({"password_hash": "md5$abc"}, "password_hash is not scrypt"),
        ({"username": None}, "web.auth.username: required but missing"),
    ],
)
def test_unusable_auth_settings_are_named(
    tmp_path: Path, overrides: dict[str, Any], complaint: str
) -> None:
    import yaml

    section = {k: v for k, v in auth_section(**overrides).items() if v is not None}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"web": {"host": "0.0.0.0", "auth": section}}))
    with pytest.raises(ConfigError, match=r"web\.auth") as caught:
        load_config(path, env={})
    assert complaint in str(caught.value)


def test_the_app_refuses_a_config_changed_after_validation(pool: asyncpg.Pool) -> None:
    config = Config()
    config.web.host = "0.0.0.0"  # pydantic does not validate assignments
    with pytest.raises(ValueError, match=r"needs web\.auth"):
        build_app(pool, config)


def test_auth_secrets_are_masked_in_logs() -> None:
    from tracker.logs import redact, secret_values

    known = secret_values(auth_config())
    line = redact(f"token {TOKEN} secret {SECRET} hash {CHEAP_HASH}", known)
    for secret in (TOKEN, SECRET, CHEAP_HASH):
        assert secret not in line


# --- passwords and sessions ---------------------------------------------------------------------


def test_password_hashes_verify_only_their_password() -> None:
    encoded = hash_password("s3cret!", n=2**10)
    assert encoded.startswith("scrypt$1024$8$1$")
    assert verify_password("s3cret!", encoded)
    assert not verify_password("s3cret", encoded)
    assert hash_password("s3cret!", n=2**10) != encoded  # a new salt each time
    salt, iterations = "somesalt", 1000
    key = hashlib.pbkdf2_hmac("sha256", b"django", salt.encode(), iterations)
    django = f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(key).decode()}"
    assert verify_password("django", django)
    assert not verify_password("flask", django)
    for garbage in ("", "scrypt$x", "scrypt$3$8$1$AA$AA", "bcrypt$2b$12$abc", "pbkdf2_sha256$0$s$"):
        assert not verify_password("anything", garbage)


def test_session_cookies_are_signed_and_expire() -> None:
    signer = SessionSigner(b"k" * 32, timedelta(hours=1))
    session = signer.new("merchant", now=1000)
    value = signer.dump(session)
    assert signer.load(value, now=1001) == session
    assert signer.load(value, now=1000 + 3600) is None  # expired
    assert SessionSigner(b"x" * 32, timedelta(hours=1)).load(value, now=1001) is None
    payload, mac = value.split(".")
    assert signer.load(f"{payload}x.{mac}", now=1001) is None
    assert signer.load(f"{payload}.{mac[:-2]}AA", now=1001) is None
    assert signer.load("not a cookie", now=1001) is None
    other = signer.new("merchant", now=1000)
    assert signer.csrf_ok(session, signer.csrf_token(session))
    assert not signer.csrf_ok(other, signer.csrf_token(session))
    assert not signer.csrf_ok(None, signer.csrf_token(session))
    assert not signer.csrf_ok(session, "")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/shipments/1?x=1", "/shipments/1?x=1"),
        ("/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/login", "/"),
        (None, "/"),
        ("/a b", "/"),
    ],
)
def test_after_sign_in_only_local_paths(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


# --- over HTTP, with web.auth -------------------------------------------------------------------


async def test_pages_send_a_browser_to_the_login_first(client: Client, pool: asyncpg.Pool) -> None:
    shipment = await add_shipment(pool, await add_shop(pool))
    for path in ("/", f"/shipments/{shipment}", "/analytics?days=7", "/nope"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")


async def test_login_sets_a_strict_http_only_cookie_and_opens_the_pages(
    client: Client, pool: asyncpg.Pool
) -> None:
    shipment = await add_shipment(pool, await add_shop(pool), "#1001")
    response = await sign_in(client, next_=f"/shipments/{shipment}")
    assert response.status == 303
    assert response.headers["Location"] == f"/shipments/{shipment}"
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"

    page = await client.get(f"/shipments/{shipment}")
    assert page.status == 200
    assert "#1001" in await page.text()
    assert "Sign out" in await page.text()
    # The browser session reads the API too.
    assert (await client.get("/api/shipments")).status == 200


async def test_wrong_password_or_user_is_refused_alike(client: Client) -> None:
    response = await sign_in(client, password="wrong")
    assert response.status == 401
    assert "Wrong username or password." in await response.text()
    assert SESSION_COOKIE not in response.cookies
    wrong_user = await client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD},
        headers={"Origin": str(client.make_url("/").origin())},
    )
    assert wrong_user.status == 401
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_login_from_another_site_is_refused(client: Client) -> None:
    response = await client.post(
        "/login",
        data={"username": USER, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert SESSION_COOKIE not in response.cookies


async def test_forged_or_foreign_cookies_do_not_sign_in(client: Client) -> None:
    foreign = SessionSigner(b"another secret entirely, 32 bytes+", timedelta(hours=1))
    for value in (foreign.dump(foreign.new(USER)), "garbage", ""):
        client.session.cookie_jar.update_cookies({SESSION_COOKIE: value})
        response = await client.get("/", allow_redirects=False)
        assert response.status == 303


async def test_sign_out_needs_the_form_token_and_ends_the_session(client: Client) -> None:
    await sign_in(client)
    origin = {"Origin": str(client.make_url("/").origin())}
    refused = await client.post("/logout", data={}, headers=origin)
    assert refused.status == 403
    form = await (await client.get("/logout")).text()
    response = await client.post(
        "/logout", data={"csrf_token": csrf_token_in(form)}, headers=origin, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_api_wants_the_bearer_token(client: Client) -> None:
    missing = await client.get("/api/shipments")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in await missing.json()
    wrong = await client.get("/api/shipments", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get("/api/shipments", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status == 200
    assert (await right.json())["shipments"] == []
    export = await client.get("/export.csv")
    assert export.status == 401


async def test_metrics_want_the_token_even_when_signed_in(client: Client) -> None:
    await sign_in(client)
    assert (await client.get("/metrics")).status == 401
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    assert "# TYPE" in await response.text()


async def test_health_and_webhooks_stay_open(client: Client) -> None:
    health = await client.get("/healthz")
    assert health.status == 200
    webhook = await client.post("/webhooks/shopify", data=b"{}")
    # The webhook endpoint's own answer (it checks the shop and its HMAC), not the login's.
    assert webhook.status in (400, 401, 404)
    assert "sign in" not in await webhook.text()


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/../api/shipments",
        "/webhooks/%2e%2e/api/shipments",
        "/webhooks/shopify/../../api/shipments",
        "/healthz/../api/shipments",
        "/API/shipments",
        "/api/shipments/",
    ],
)
async def test_odd_paths_do_not_slip_past_the_token(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status in (303, 401, 404), path  # never 200 without the token


# --- over HTTP, open on loopback ----------------------------------------------------------------


async def test_without_web_auth_everything_is_open_as_before(open_client: Client) -> None:
    for path in ("/", "/analytics", "/api/shipments", "/healthz", "/metrics"):
        assert (await open_client.get(path)).status == 200, path
    login = await open_client.get("/login", allow_redirects=False)
    assert login.status == 303
    assert login.headers["Location"] == "/"


async def test_without_web_auth_pages_still_get_an_anonymous_session_for_forms(
    open_client: Client,
) -> None:
    response = await open_client.get("/")
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    again = await open_client.get("/")
    assert SESSION_COOKIE not in again.cookies  # kept, not renewed on every page
    api = await open_client.get("/api/shipments")
    assert SESSION_COOKIE not in api.cookies
