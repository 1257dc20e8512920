"""How a failed carrier request is described: one line, no credentials, no query string.

These messages travel far: the daemon's log, the shipment's ``carrier_message``, the circuit's
``last_error`` on the status table. So a message names the request by method and path (never its
query, which may carry an API key, as PostNord's does), hides the values of credential-like
fields, quotes an HTML page by its title, and says what broke on the wire in words instead of
an exception's text (aiohttp's response errors print the whole URL, query included).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
from yarl import URL

__all__ = ["readable_snippet", "redact", "secret_values", "transport_problem", "without_query"]

_SENSITIVE_NAME = re.compile(r"auth|key|token|secret|password|passwd|signature|cookie", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def secret_values(*sources: Any) -> list[str]:
    """Values of credential-like fields (headers, parameters, form or JSON fields) to hide."""
    found: set[str] = set()
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for name, value in source.items():
            if not isinstance(value, str) or not _SENSITIVE_NAME.search(str(name)):
                continue
            _, _, credential = value.partition(" ")  # "Bearer abc", "Basic abc"
            for secret in (value, credential.strip()):
                if len(secret) >= 4:
                    found |= {secret, quote(secret, safe=""), quote_plus(secret)}
    return sorted(found, key=len, reverse=True)


def redact(message: str, secrets: Sequence[str]) -> str:
    """``message`` with every one of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def without_query(url: str) -> str:
    """``url`` without user info, query or fragment, for messages."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return url.split("?", 1)[0]
    if not parsed.is_absolute():
        return url.split("?", 1)[0]
    return str(parsed.with_user(None).with_query(None).with_fragment(None))


def readable_snippet(text: str, limit: int = 160) -> str:
    """A carrier's answer as one short line: an HTML page by its title (else its text)."""
    title = _TITLE.search(text)
    if title and title.group(1).strip():
        plain = title.group(1)
    elif text.lstrip().startswith("<"):
        plain = _TAG.sub(" ", text)
    else:
        plain = text
    plain = " ".join(html.unescape(plain).split())
    return plain if len(plain) <= limit else plain[: limit - 3] + "..."


def transport_problem(exc: aiohttp.ClientError) -> str:
    """What went wrong on the wire, in words, without the request's URL."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the connection broke off before the whole answer arrived"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection failed: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, aiohttp.ClientResponseError):  # its str() holds the URL with its query
        return "unreadable answer: " + " ".join(str(exc.message).split())[:160]
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())[:160]
