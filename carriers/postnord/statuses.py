"""PostNord item statuses, event codes and words -> Shopify statuses. Pure: no I/O.

Every PostNord scan (``items[].events[]``) carries a ``status`` from PostNord's item status
enumeration, and the item itself carries the current one in ``status`` / ``eventStatus``. That
status gives the Shopify status (:data:`ITEM_STATUSES`). ``EN_ROUTE`` covers everything between
hand-in and delivery, so for it (and for a scan without a status) the scan's ``eventCode`` and
then its English ``eventDescription`` may say more: a pickup from the sender or the last leg to
the recipient (:func:`map_status`).

Sources:

* :data:`ITEM_STATUSES`: the ``ItemStatus`` enum (``items[].status``, ``eventStatus``,
  ``previousItemStates``, ``splitStatuses[].status``) of PostNord's Track & Trace v7 OpenAPI
  document (``postnord-trackandtrace-v7.json``, schemas ``ItemStatus`` and ``Status``), with the
  Shopify statuses given in ``docs/CARRIERS.md``.
* :data:`SHIPMENT_ONLY_STATUSES`: the one value the shipment-level enum (schema ``Status18``,
  ``shipments[].status``) adds, ``SPLIT``: the items of the shipment are in different states.
* :data:`EVENT_CODES`: PostNord does not publish its ``eventCode`` values (the v7 document
  types the field as a free string). The codes here are the self-describing ones this
  project's sandbox writes; a code that is not listed leaves the decision to the words.
* :data:`OUT_FOR_DELIVERY_WORDS` / :data:`PICKED_UP_WORDS`: phrases of PostNord's English
  ``eventDescription`` texts (``locale=en``).

Explicit fallback: an item status that is not in the tables maps to no status (:data:`FALLBACK`);
such scans are kept with their code and text but never written to Shopify.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from tracker.domain import Status

ITEM_STATUSES: Mapping[str, Status | None] = {
    "CREATED": Status.LABEL_PURCHASED,  # the sender has booked the shipment
    "INFORMED": Status.LABEL_PURCHASED,  # PostNord has the sender's advice (EDI), no parcel yet
    "EN_ROUTE": Status.IN_TRANSIT,
    "AVAILABLE_FOR_DELIVERY": Status.READY_FOR_PICKUP,
    "AVAILABLE_FOR_DELIVERY_PAR_LOC": Status.READY_FOR_PICKUP,  # in a parcel locker
    "DELIVERED": Status.DELIVERED,
    "DELAYED": Status.DELAYED,
    "EXPECTED_DELAY": Status.DELAYED,
    "DELIVERY_IMPOSSIBLE": Status.ATTEMPTED_DELIVERY,
    "DELIVERY_REFUSED": Status.FAILURE,
    "RETURNED": Status.FAILURE,
    "STOPPED": Status.FAILURE,
    "OTHER": None,
}
"""PostNord ``ItemStatus`` -> status (all thirteen values of the v7 enum)."""

SHIPMENT_ONLY_STATUSES: Mapping[str, Status | None] = {
    "SPLIT": None,  # items differ: each item's own status tells
}
"""Shipment ``status`` values that are not item statuses (schema ``Status18``)."""

FALLBACK: Final[Status | None] = None
"""Status of an item status that is in neither table."""

REFINABLE: frozenset[str] = frozenset({"EN_ROUTE", ""})
"""Item statuses (``""``: none given) whose scans the event code or the words may refine."""

EVENT_CODES: Mapping[str, Status | None] = {
    "EDI_INFORMED": None,
    "PICKED_UP": Status.CARRIER_PICKED_UP,
    "TERMINAL_SORTED": None,
    "CUSTOMS_PROCESSING": None,
    "LOADED_FOR_DELIVERY": Status.OUT_FOR_DELIVERY,
}
"""``eventCode`` -> refinement of an ``EN_ROUTE`` scan; None: the code adds nothing.

A listed code decides (the words are not read); an unlisted one leaves it to the words.
"""


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


OUT_FOR_DELIVERY_WORDS = _words(
    r"\bout for delivery\b",
    r"\bloaded (?:for delivery|(?:on|onto) the (?:delivery )?vehicle)\b",
    r"\bon (?:its|the) way to the (?:recipient|consignee)\b",
    r"\bwith (?:the|our) (?:driver|courier|delivery vehicle)\b",
    r"\bunder (?:transportation|transport) to the (?:recipient|consignee)\b",
)
PICKED_UP_WORDS = _words(
    r"\b(?:has been|was) picked up\b",
    r"\bpicked up (?:from|at) (?:the )?sender\b",
    r"\bcollected from (?:the )?sender\b",
    r"\b(?:handed in|dropped off|posted) by (?:the )?sender\b",
    r"\b(?:handed in|dropped off) at (?:the |a )?(?:service point|post office)\b",
    r"\breceived from (?:the )?sender\b",
)
WORD_REFINEMENTS: tuple[tuple[re.Pattern[str], Status], ...] = (
    (OUT_FOR_DELIVERY_WORDS, Status.OUT_FOR_DELIVERY),
    (PICKED_UP_WORDS, Status.CARRIER_PICKED_UP),
)
"""Ordered (pattern over ``eventDescription``, status); the first match wins."""


def normalize_code(value: object) -> str:
    """A status or event code as a table key: ``en_route`` and ``En Route `` alike."""
    if type(value) is str:
        return _normalized(value)
    if not isinstance(value, str):
        return ""
    return _normalize(value)


def _normalize(value: str) -> str:
    return "_".join(value.strip().upper().replace("-", " ").replace("_", " ").split())


_normalized = lru_cache(maxsize=1024)(_normalize)
"""Codes seen before (PostNord's are a few dozen, each read three times per scan)."""


def status_for_item_status(value: object) -> Status | None:
    """The status of an item or shipment status value alone (None if unknown or ``OTHER``)."""
    key = normalize_code(value)
    if key in ITEM_STATUSES:
        return ITEM_STATUSES[key]
    return SHIPMENT_ONLY_STATUSES.get(key, FALLBACK)


def map_status(
    item_status: object, event_code: object = None, text: object = None
) -> Status | None:
    """The status of one PostNord scan.

    ``item_status`` is the scan's ``status``; when it is ``EN_ROUTE`` or missing, a listed
    ``event_code`` decides the refinement, else the words of ``text`` (``eventDescription``) may.
    A scan with no status and nothing that refines it maps to no status.
    """
    key = normalize_code(item_status)
    base = status_for_item_status(key) if key else None
    if key not in REFINABLE:
        return base
    code = normalize_code(event_code)
    if code in EVENT_CODES:
        return EVENT_CODES[code] or base
    if type(text) is str:
        return _by_words(text) or base
    if isinstance(text, str):
        return _words_status(text) or base
    return base


def _words_status(text: str) -> Status | None:
    """The status the first matching :data:`WORD_REFINEMENTS` pattern gives, else None."""
    for pattern, status in WORD_REFINEMENTS:
        if pattern.search(text):
            return status
    return None


_by_words = lru_cache(maxsize=2048)(_words_status)
""":func:`_words_status` of descriptions seen before (PostNord repeats a few texts)."""
