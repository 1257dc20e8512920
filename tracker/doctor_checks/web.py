"""The status table's address: can the daemon listen there, and who can reach it.

If something answers on ``web.host:web.port`` and it is a tracker (``/healthz``), the daemon is
running; if something else holds the port, the daemon could not start. Otherwise the address is
bound for a moment, exactly as the daemon would, and released. ``web.auth`` off loopback is
enforced by the configuration itself (the daemon refuses to start without it); here it is named.
"""

from __future__ import annotations

import asyncio
import errno
import json

import aiohttp

from tracker.config import WebConfig
from tracker.config_web import is_loopback
from tracker.doctor_checks import Check, describe_error, fail, ok, warn

SUBJECT = "web"
# Where to reach a daemon listening on every address: its loopback side.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


async def check_web(
    config: WebConfig, session: aiohttp.ClientSession, timeout: float
) -> list[Check]:
    checks = [await _listen(config, session, timeout), _access(config)]
    public = _public_url(config)
    if public is not None:
        checks.append(public)
    return checks


def _url(host: str, port: int) -> str:
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _listen(config: WebConfig, session: aiohttp.ClientSession, timeout: float) -> Check:
    host, port = config.host, config.port
    if port == 0:
        return await _bind(host, port, timeout, "any free port")
    url = _url(host, port)
    try:
        async with (
            asyncio.timeout(timeout),
            session.get(f"{url}/healthz", allow_redirects=False) as response,
        ):
            status = response.status
            body = await response.text(errors="replace")
    except aiohttp.ClientConnectorError:
        return await _bind(host, port, timeout, f"{host}:{port}")
    except (TimeoutError, aiohttp.ClientError) as exc:
        return fail(
            SUBJECT,
            f"something holds {host}:{port} but does not answer HTTP "
            f"({describe_error(exc, timeout)})",
            "stop it, or set web.port to a free port",
        )
    answer = _json_object(body)
    if answer.get("status") == "ok" and status == 200:
        return ok(SUBJECT, f"a daemon is already serving {url} (/healthz answered ok)")
    if answer.get("status") == "unavailable":
        return warn(
            SUBJECT,
            f"a daemon serving {url} reports its database unavailable: {answer.get('error')}",
            "see the database checks",
        )
    return fail(
        SUBJECT,
        f"{host}:{port} is taken by something else (/healthz answered HTTP {status})",
        "stop it, or set web.port to a free port",
    )


async def _bind(host: str, port: int, timeout: float, what: str) -> Check:
    """Listen on the address for a moment, as the daemon's aiohttp site would."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            server = await loop.create_server(asyncio.Protocol, host, port)
    except OSError as exc:
        return fail(SUBJECT, f"cannot listen on {host}:{port} ({_bind_error(exc)})", _bind_fix(exc))
    except TimeoutError as exc:
        return fail(SUBJECT, f"cannot listen on {host}:{port} ({describe_error(exc, timeout)})")
    server.close()
    await server.wait_closed()
    return ok(SUBJECT, f"the status table can listen on {what}")


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _bind_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this machine"
    if exc.errno == errno.EACCES:
        return "permission denied: ports below 1024 need privileges"
    return exc.strerror or str(exc)


def _bind_fix(exc: OSError) -> str:
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        return "set web.port to a free port (1024 or above)"
    return "set web.host to an address of this machine (127.0.0.1, 0.0.0.0 or an interface's)"


def _access(config: WebConfig) -> Check:
    if is_loopback(config.host):
        return ok(SUBJECT, f"{config.host} is reachable from this machine only: no login needed")
    # The configuration refuses a host off loopback without web.auth, so it is set here.
    return ok(
        SUBJECT,
        f"{config.host} is reachable from other machines: pages need a login, the API its token",
    )


def _public_url(config: WebConfig) -> Check | None:
    url = config.public_url
    if not url:
        return None
    if url.startswith("https://"):
        return ok(SUBJECT, f"public URL {url}")
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if url.startswith("http://") and is_loopback(host):
        return ok(SUBJECT, f"public URL {url} (this machine only: a sandbox)")
    return warn(
        SUBJECT,
        f"public URL {url} is not HTTPS: Shopify delivers webhooks to HTTPS addresses only",
        "serve the daemon behind an HTTPS proxy and set web.public_url to its https:// address",
    )
