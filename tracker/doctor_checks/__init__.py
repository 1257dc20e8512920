"""The checks of ``tracker doctor``: one :class:`Check` per thing the configuration promises.

Each module checks one part against the real thing (``stores``: the Shopify Admin API,
``carriers``: the carriers' APIs, ``database``: PostgreSQL, ``web``: the status table's address).
A check never raises: whatever goes wrong (a refused token, a timeout, a network error) becomes a
``FAIL`` with what to do about it. ``warn`` marks what the daemon can run with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict about ``subject`` (``store acme.myshopify.com``, ``carrier ups``, ...)."""

    subject: str
    verdict: Verdict
    detail: str
    fix: str = ""
    """What to do when it is not ok; empty when there is nothing to do."""

    def line(self) -> str:
        text = f"{self.verdict.value:<6}{self.subject}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text


def ok(subject: str, detail: str) -> Check:
    return Check(subject, Verdict.OK, detail)


def warn(subject: str, detail: str, fix: str = "") -> Check:
    return Check(subject, Verdict.WARN, detail, fix)


def fail(subject: str, detail: str, fix: str = "") -> Check:
    return Check(subject, Verdict.FAIL, detail, fix)


def describe_error(exc: BaseException, timeout: float) -> str:
    """An exception as one line for a check: what it was, never a traceback."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
