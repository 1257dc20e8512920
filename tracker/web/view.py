"""A view of the status table as its URL spells it: tab, filters, sort, page size and cursor.

``parse_view`` reads a query string (the page's, the export's and the API's are the same) and
raises :class:`BadQuery` with a message a person can act on for anything it cannot use: an
unknown parameter or value, a value out of range, a cursor of another sort. ``View.query``
writes the view back, changed as asked, so every link on the page keeps the reader's view.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from multidict import MultiMapping

from tracker.domain import URGENCY
from tracker.engine.attention import FLAGS
from tracker.web.selection import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SORTS,
    TABS,
    Position,
    ShipmentFilter,
)

STATUSES = [s.value for s in sorted(URGENCY, key=URGENCY.__getitem__) if s is not None]
NO_STATUS = "none"
MAX_SEARCH_LENGTH = 200
MAX_CARRIER_LENGTH = 64
MAX_STORE_LENGTH = 255
MAX_CURSOR_LENGTH = 1000
MAX_AGE_DAYS = 3650
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_DIGITS = re.compile(r"[0-9]{1,6}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AGE = re.compile(r"([0-9]{1,6})([hdw])", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AGE_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_INT_MAX = 2**31 - 1
_BIGINT_MAX = 2**63 - 1

# Parameters that may be given more than once (or comma-separated); the rest at most once.
_LISTS = ("status", "attention")
_SINGLE = (
    "tab",
    "carrier",
    "store",
    "shipped_from",
    "shipped_to",
    "last_scan_before",
    "q",
    "include_inactive",
    "sort",
    "dir",
    "limit",
    "cursor",
)
PARAMETERS = (*_LISTS, *_SINGLE)


class BadQuery(ValueError):
    """A query string this server cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class View:
    """One view: which shipments (``where``), in which order, how many, from where."""

    where: ShipmentFilter
    sort: str
    descending: bool
    limit: int
    after: Position | None
    filters: tuple[tuple[str, str], ...]
    """The filter parameters as given (normalized), to write them back into links."""

    def query(
        self,
        *,
        tab: str | None = None,
        store: str | bool | None = False,
        sort: str | None = None,
        descending: bool | None = None,
        cursor: str | None = None,
        keep_limit: bool = True,
    ) -> list[tuple[str, str]]:
        """This view's parameters (without its cursor), changed as given, as query pairs.

        ``store``: False keeps the view's store, None drops it, a string sets it. A new
        ``sort`` comes in its own direction unless ``descending`` says otherwise.
        """
        pairs = [(k, v) for k, v in self.filters if k != "store" or store is False]
        if isinstance(store, str):
            pairs.append(("store", store))
        chosen_tab = self.where.tab if tab is None else tab
        if chosen_tab != "all":
            pairs.insert(0, ("tab", chosen_tab))
        chosen_sort = self.sort if sort is None else sort
        direction = self.descending if sort is None else SORTS[chosen_sort].descending
        if descending is not None:
            direction = descending
        natural = direction == SORTS[chosen_sort].descending
        if chosen_sort != "status" or not natural:
            pairs.append(("sort", chosen_sort))
        if not natural:
            pairs.append(("dir", "desc" if direction else "asc"))
        if keep_limit and self.limit != DEFAULT_LIMIT:
            pairs.append(("limit", str(self.limit)))
        if cursor is not None:
            pairs.append(("cursor", cursor))
        return pairs


def encode_cursor(sort: str, descending: bool, position: Position) -> str:
    """The opaque ``cursor`` for ``position`` in this sort and direction."""
    raw: list[str | int] = [sort, "d" if descending else "a", "b" if position.before else "n"]
    raw.extend([*position.keys, position.id])
    data = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(token: str, sort: str, descending: bool) -> Position:
    """The position in ``token``; :class:`BadQuery` unless this server made it for this sort."""
    if len(token) > MAX_CURSOR_LENGTH:
        raise BadQuery("bad cursor: it is too long")
    not_ours = BadQuery("bad cursor: it is not one this server handed out")
    try:
        parts = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise not_ours from None
    if not isinstance(parts, list) or len(parts) < 5 or parts[0] not in SORTS:
        raise not_ours
    if parts[0] != sort or parts[1] != ("d" if descending else "a"):
        raise BadQuery(
            "bad cursor: it belongs to another sort order; leave it out to start from the top"
        )
    spec = SORTS[sort]
    if len(parts) != 4 + len(spec.keys) or parts[2] not in ("b", "n"):
        raise not_ours
    *keys, row_id = parts[3:]
    for value, sql_type in zip(keys, spec.key_types, strict=True):
        if sql_type == "text":
            ok = isinstance(value, str) and len(value) <= 500 and "\x00" not in value
        else:
            bound = _INT_MAX if sql_type == "int" else _BIGINT_MAX
            ok = type(value) is int and -bound <= value <= bound
        if not ok:
            raise not_ours
    if type(row_id) is not int or not 0 <= row_id <= _BIGINT_MAX:
        raise not_ours
    return Position(tuple(keys), row_id, before=parts[2] == "b")


def _one(query: MultiMapping[str], name: str) -> str:
    values = query.getall(name, [])
    if len(values) > 1:
        raise BadQuery(f"{name} is given {len(values)} times; give it once")
    return values[0].strip() if values else ""


def _text(query: MultiMapping[str], name: str, max_length: int) -> str | None:
    value = _one(query, name)
    if _CONTROL.search(value):
        raise BadQuery(f"{name} contains a control character")
    if len(value) > max_length:
        raise BadQuery(f"{name} is longer than {max_length} characters")
    return value or None


def _choices(query: MultiMapping[str], name: str, allowed: Iterable[str]) -> list[str]:
    choices = list(allowed)
    chosen: list[str] = []
    for raw in query.getall(name, []):
        for part in raw.split(","):
            value = part.strip().lower()
            if not value:
                continue
            if value not in choices:
                shown = part.strip()[:40]
                raise BadQuery(f"unknown {name} {shown!r}: use one of {', '.join(choices)}")
            if value not in chosen:
                chosen.append(value)
    return chosen


def _date(value: str, name: str, example: str) -> date:
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{name} must be {example}") from None


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _last_scan_cutoff(value: str, now: datetime) -> datetime:
    age = _AGE.fullmatch(value)
    if age is None:
        example = "an age like 12h, 3d or 2w, or a date like 2025-03-31"
        return _midnight(_date(value, "last_scan_before", example))
    span = int(age.group(1)) * _AGE_UNITS[age.group(2).lower()]
    if span > timedelta(days=MAX_AGE_DAYS):
        raise BadQuery(f"last_scan_before is more than {MAX_AGE_DAYS} days")
    return now - span


def parse_view(query: MultiMapping[str], now: datetime | None = None) -> View:
    """The view a query string asks for; :class:`BadQuery` for anything unusable."""
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0][:40]!r}: use {', '.join(PARAMETERS)}")
    tab = _one(query, "tab").lower() or "all"
    if tab not in TABS:
        raise BadQuery(f"unknown tab {tab[:40]!r}: use one of {', '.join(TABS)}")
    statuses = _choices(query, "status", [*STATUSES, NO_STATUS])
    attention = _choices(query, "attention", FLAGS)
    carrier = _text(query, "carrier", MAX_CARRIER_LENGTH)
    store = _text(query, "store", MAX_STORE_LENGTH)
    search = _text(query, "q", MAX_SEARCH_LENGTH)
    days = {}
    for name in ("shipped_from", "shipped_to"):
        raw = _one(query, name)
        if raw:
            days[name] = _date(raw, name, "a date like 2025-03-31")
    shipped_from, shipped_to = days.get("shipped_from"), days.get("shipped_to")
    if shipped_from and shipped_to and shipped_from > shipped_to:
        raise BadQuery("shipped_from is after shipped_to")
    shipped_before = None
    if shipped_to is not None and shipped_to < date.max:
        shipped_before = _midnight(shipped_to + timedelta(days=1))
    last_scan = _text(query, "last_scan_before", 20)
    now = now or datetime.now(UTC)
    cutoff = None if last_scan is None else _last_scan_cutoff(last_scan, now)
    include = _one(query, "include_inactive").lower()
    if include not in _TRUE | _FALSE:
        raise BadQuery("include_inactive must be 1 or 0")
    sort = _one(query, "sort").lower() or "status"
    if sort not in SORTS:
        raise BadQuery(f"unknown sort {sort[:40]!r}: use one of {', '.join(SORTS)}")
    direction = _one(query, "dir").lower()
    if direction not in ("", "asc", "desc"):
        raise BadQuery("dir must be asc or desc")
    descending = SORTS[sort].descending if not direction else direction == "desc"
    raw_limit = _one(query, "limit")
    limit = DEFAULT_LIMIT
    if raw_limit:
        if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
    cursor = _one(query, "cursor")
    after = decode_cursor(cursor, sort, descending) if cursor else None
    given = {
        "status": ",".join(statuses),
        "attention": ",".join(attention),
        "carrier": carrier,
        "store": store,
        "shipped_from": shipped_from and shipped_from.isoformat(),
        "shipped_to": shipped_to and shipped_to.isoformat(),
        "last_scan_before": last_scan,
        "q": search,
        "include_inactive": "1" if include in _TRUE else None,
    }
    where = ShipmentFilter(
        tab=tab,
        statuses=tuple(s for s in statuses if s != NO_STATUS) if statuses else None,
        no_status=NO_STATUS in statuses,
        carrier=carrier.lower() if carrier else None,
        store=store,
        attention=tuple(attention),
        shipped_from=None if shipped_from is None else _midnight(shipped_from),
        shipped_before=shipped_before,
        last_scan_before=cutoff,
        search=search,
        include_inactive=include in _TRUE,
    )
    filters = tuple((name, value) for name, value in given.items() if value)
    return View(where, sort, descending, limit, after, filters)
