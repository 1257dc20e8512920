"""What ``tracker run`` tells the operator: the start-up banner, and plain words for the
mistakes an operator can make (a port in use, a host that is not this machine's, a directory
that cannot be written). No secrets: database URLs are shown without their password.
"""

from __future__ import annotations

import errno
import socket

from tracker.config import Config
from tracker.config_doc import format_duration
from tracker.db.pool import server_label


def startup_banner(config: Config, url: str) -> str:
    """Where the status table is, which database, stores and carriers this daemon uses."""
    if config.database.url is not None:
        database = f"PostgreSQL at {server_label(config.database.url.get_secret_value())}"
    else:
        database = f"embedded PostgreSQL in {config.database.data_dir}"
    stores = ", ".join(shop.domain for shop in config.shops) or (
        "none configured (shops is empty: no orders are read)"
    )
    carriers = ", ".join(sorted(config.carriers)) or (
        "none configured (shipments are listed but not polled)"
    )
    if config.web.public_url:
        webhooks = config.web.public_url.rstrip("/") + "/webhooks/shopify"
    else:
        every = format_duration(config.sync.interval)
        webhooks = f"off (web.public_url is empty; orders are read every {every})"
    return "\n".join(
        [
            f"Status table: {url}",
            f"Database: {database}",
            f"Stores: {stores}",
            f"Carriers: {carriers}",
            f"Webhooks: {webhooks}",
        ]
    )


def bind_problem(
    exc: OSError, host: str, port: int, *, port_setting: str, host_setting: str
) -> str | None:
    """A sentence for a failure to listen on ``host:port``, or None if ``exc`` is not one."""
    code = exc.errno
    if code == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use: another program (or another tracker) listens "
            f"there; stop it or set {port_setting} to a free port"
        )
    if code == errno.EACCES and "bind" in str(exc):
        return (
            f"port {port} on {host} needs privileges this user does not have; "
            f"set {port_setting} to 1024 or above (and put a reverse proxy in front)"
        )
    if code == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host}: it is not an address of this machine; "
            f"set {host_setting} to one of its addresses (127.0.0.1, 0.0.0.0, ...)"
        )
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}: not a known host name or address; check {host_setting}"
    return None


def os_problem(exc: OSError) -> str:
    """An operating-system error as one line naming the file or address it concerns."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EEXIST:
        reason = "exists and is not a directory"
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return str(exc)
