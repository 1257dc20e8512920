"""DHL event codes and words -> Shopify statuses. Pure: no I/O.

DHL's Unified API gives every event a coarse ``statusCode`` (``pre-transit``, ``transit``,
``delivered``, ``failure``, ``unknown``) and the carrier's own words in ``status`` and
``description``. The code gives a default status (:data:`CODE_DEFAULTS`); for some codes the words
then refine it (:data:`REFINEMENTS`): the first pattern, in order, that matches the event's text
wins, and when none matches the default stands.

Order matters. "available for pick-up" must be read as ready-for-pickup before the bare word
"pickup" is read as a carrier pickup, a failed delivery attempt that also mentions a retail
outlet is an attempt first, and "out for delivery to the Packstation" is out for delivery: the
parcel is still on the van.

Ready-for-pickup needs words that say the recipient can now collect the parcel ("available for
pick-up", "can be collected", "delivered to the Packstation"); naming a place is not enough.
"Arrived at Post Office" is how DHL eCommerce reports the hand-over to USPS for the last mile,
and a parcel "forwarded to the parcel shop" is not there yet.

A ``statusCode`` DHL has not documented maps to no status (the explicit fallback), as does
``unknown``; such scans are still kept with their text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from tracker.domain import Status

CODE_DEFAULTS: Mapping[str, Status | None] = {
    "pre-transit": Status.LABEL_PURCHASED,
    "transit": Status.IN_TRANSIT,
    "delivered": Status.DELIVERED,
    "failure": Status.FAILURE,
    "unknown": None,
}
"""DHL ``statusCode`` -> status when the text says nothing more specific."""

FALLBACK: Status | None = None
"""Status of a ``statusCode`` that is not in :data:`CODE_DEFAULTS`."""


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


RETURNED = _words(
    r"\breturn(?:ed|ing)? to (?:the )?(?:sender|shipper|origin)",
    r"\b(?:delivered|sent|going) back to (?:the )?(?:sender|shipper)",
    r"\breturn shipment\b",
)
ATTEMPTED = _words(
    r"\bdelivery attempt",
    r"\battempted\b",
    r"\bnot (?:at )?home\b",
    r"\brecipient (?:was )?(?:absent|not available|unavailable)",
    r"\bcould not be delivered\b",
    r"\bunsuccessful delivery\b",
)
DELAY = _words(r"\bdelay(?:ed|s)?\b")
HANDED_IN = _words(
    r"\b(?:posted|dropped off|handed (?:in|over)) by the sender\b",
    r"\bcollected from the sender\b",
)
_LOCKER = (
    r"(?:packstation|parcel ?locker|parcel ?shop|service ?point|pick[- ]?up (?:location|point))"
)
"""Places where a parcel delivered there waits for its recipient; a post office or retail outlet
is also where parcels pass through, so for those the words must say "for collection"."""
READY = _words(
    r"\b(?:available|ready|held) for (?:pick[- ]?up|collection)\b",
    r"\b(?:can|may) (?:now )?be (?:picked up|collected)\b",
    r"\bawaiting collection\b",
    rf"\b(?:delivered|deposited|placed) (?:at|in|into|to) (?:the |a )?(?:dhl )?{_LOCKER}",
    r"\b(?:delivered|deposited|placed|held) (?:at|in|into|to) [^.;:]{0,60}"
    r"\bfor (?:pick[- ]?up|collection)\b",
)
OUT_FOR_DELIVERY = _words(
    r"\bout for delivery\b",
    r"\bwith (?:the )?delivery (?:courier|driver|agent)\b",
    r"\bloaded onto the delivery vehicle\b",
    r"\bon the delivery vehicle\b",
)
PICKED_UP = _words(
    r"\bpicked[- ]up\b",
    r"\bpick[- ]?up\b(?! (?:location|point))",  # a pick-up point is a place, not a pickup
)

REFINEMENTS: Mapping[str, tuple[tuple[re.Pattern[str], Status], ...]] = {
    "transit": (
        (RETURNED, Status.FAILURE),
        (ATTEMPTED, Status.ATTEMPTED_DELIVERY),
        (DELAY, Status.DELAYED),
        (HANDED_IN, Status.CARRIER_PICKED_UP),
        (OUT_FOR_DELIVERY, Status.OUT_FOR_DELIVERY),
        (READY, Status.READY_FOR_PICKUP),
        (PICKED_UP, Status.CARRIER_PICKED_UP),
    ),
    "failure": (
        (RETURNED, Status.FAILURE),
        (ATTEMPTED, Status.ATTEMPTED_DELIVERY),
        (DELAY, Status.DELAYED),
    ),
    # DHL reports a parcel that went back to its sender as "delivered (back to the sender)".
    "delivered": ((RETURNED, Status.FAILURE),),
}
"""Per ``statusCode``: ordered (pattern over the event text, status) pairs; first match wins."""


def normalize_code(code: object) -> str:
    """``statusCode`` as a table key: lower case, ``pre_transit`` / ``Pre Transit`` alike."""
    if not isinstance(code, str):
        return ""
    return "-".join(code.strip().lower().replace("_", " ").replace("-", " ").split())


def map_status(code: object, *texts: object) -> Status | None:
    """The status of one DHL event from its ``statusCode`` and its words.

    ``texts`` are the event's ``status`` and ``description`` (anything that is not a string is
    ignored). Returns None for ``unknown`` and for codes DHL has not documented.
    """
    text = " ".join([t for t in texts if isinstance(t, str)])
    if type(code) is str:
        return _remembered(code, text)
    return _map(code, text)


def _map(code: object, text: str) -> Status | None:
    key = normalize_code(code)
    if key not in CODE_DEFAULTS:
        return FALLBACK
    for pattern, status in REFINEMENTS.get(key, ()):
        if pattern.search(text):
            return status
    return CODE_DEFAULTS[key]


_remembered = lru_cache(maxsize=4096)(_map)
""":func:`_map` of a code and words seen before: DHL repeats the same few texts, and reading
them runs up to seven expressions."""
