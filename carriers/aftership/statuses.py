"""AfterShip tags and subtags -> Shopify statuses. Pure: no I/O.

AfterShip normalizes every carrier scan into one of nine *tags* (its "delivery statuses") and,
below each tag, a *subtag* (its "delivery sub-statuses") named ``<Tag>_<NNN>``. Both sit on every
checkpoint and on the tracking itself.

Sources:

* Tags, :data:`TAG_STATUS`: the "Delivery Statuses" enum of the Tracking API docs
  (``/docs/tracking/<version>/enum/delivery-statuses``: Pending, InfoReceived, InTransit,
  OutForDelivery, AttemptFail, Delivered, AvailableForPickup, Exception, Expired; the same in the
  generated SDKs' ``tag`` parameter), and CARRIERS.md.
* Subtags, :data:`SUBTAG_STATUS`: the "Delivery Sub-statuses" enum of the Tracking API docs
  (``/docs/tracking/<version>/enum/delivery-sub-statuses``, read for 2025-04 and 2026-07; the
  rows past ``Exception_005`` as public integrations reproduce the same table). ``Delivered_005``
  first appears in 2026-07, ``Exception_016`` to ``Exception_018`` in AfterShip's support
  article on new sub-statuses (March 2026). ``OutForDelivery_002`` is a retired subtag older
  trackings may still carry. ``Pending_002`` to ``Pending_006`` appear in enum lists without a
  meaning we could confirm; they keep their tag's status.

How a checkpoint is read: a known subtag decides (an Exception is a delay or a failure only by
its subtag); an unknown subtag falls back to its tag (from the ``tag`` field, else from the
subtag's ``<Tag>_`` prefix); an unknown tag maps to :data:`FALLBACK` (no status: the scan is
kept and shown, never written back). ``Expired`` (no news for 30 days) is no status either.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tracker.domain import Status

TAG_STATUS: Mapping[str, Status | None] = MappingProxyType(
    {
        "InfoReceived": Status.LABEL_PURCHASED,
        "Pending": Status.CONFIRMED,
        "InTransit": Status.IN_TRANSIT,
        "OutForDelivery": Status.OUT_FOR_DELIVERY,
        "AttemptFail": Status.ATTEMPTED_DELIVERY,
        "AvailableForPickup": Status.READY_FOR_PICKUP,
        "Delivered": Status.DELIVERED,
        "Exception": Status.FAILURE,
        "Expired": None,
    }
)
"""Tag -> status when the subtag is missing or not in :data:`SUBTAG_STATUS`."""

_DELAYED, _FAILURE = Status.DELAYED, Status.FAILURE

SUBTAG_STATUS: Mapping[str, Status | None] = MappingProxyType(
    {
        # Pending: new tracking, nothing from the carrier yet.
        "Pending_001": Status.CONFIRMED,  # no information yet / yet to be tracked
        "Pending_002": Status.CONFIRMED,  # meanings of _002.._006 not confirmed: tag's status
        "Pending_003": Status.CONFIRMED,
        "Pending_004": Status.CONFIRMED,
        "Pending_005": Status.CONFIRMED,
        "Pending_006": Status.CONFIRMED,
        "InfoReceived_001": Status.LABEL_PURCHASED,  # carrier has the shipper's request
        "InTransit_001": Status.IN_TRANSIT,  # shipment on the way
        "InTransit_002": Status.CARRIER_PICKED_UP,  # acceptance scan: accepted by the carrier
        "InTransit_003": Status.IN_TRANSIT,  # arrival scan at a hub or sorting center
        "InTransit_004": Status.IN_TRANSIT,  # arrived at the destination country
        "InTransit_005": Status.IN_TRANSIT,  # customs clearance completed
        "InTransit_006": Status.IN_TRANSIT,  # handed over to customs
        "InTransit_007": Status.IN_TRANSIT,  # departure scan
        "InTransit_008": Status.IN_TRANSIT,  # problem resolved, moving again
        "InTransit_009": Status.IN_TRANSIT,  # forwarded to a different delivery address
        "OutForDelivery_001": Status.OUT_FOR_DELIVERY,  # out for delivery
        "OutForDelivery_002": Status.READY_FOR_PICKUP,  # retired: at sorting center for pickup
        "OutForDelivery_003": Status.OUT_FOR_DELIVERY,  # customer contacted before delivery
        # An appointment may be days away: the parcel is not on the van yet.
        "OutForDelivery_004": Status.IN_TRANSIT,  # delivery appointment scheduled
        "AttemptFail_001": Status.ATTEMPTED_DELIVERY,  # failed attempt, notice left
        "AttemptFail_002": Status.ATTEMPTED_DELIVERY,  # addressee not available
        "AttemptFail_003": Status.ATTEMPTED_DELIVERY,  # business closed
        "AvailableForPickup_001": Status.READY_FOR_PICKUP,  # at a pickup point
        "Delivered_001": Status.DELIVERED,  # delivered
        "Delivered_002": Status.DELIVERED,  # picked up by the customer
        "Delivered_003": Status.DELIVERED,  # signed by the customer
        "Delivered_004": Status.DELIVERED,  # delivered, cash on delivery collected
        "Delivered_005": Status.DELIVERED,  # delivered to a neighbour
        "Exception_001": _FAILURE,  # delivery failed (generic exception)
        "Exception_002": _FAILURE,  # customer moved
        "Exception_003": _FAILURE,  # customer refused delivery
        "Exception_004": _DELAYED,  # delayed: customs clearance
        "Exception_005": _DELAYED,  # delayed: external factors
        "Exception_006": _DELAYED,  # held for payment by the customer
        "Exception_007": _FAILURE,  # incorrect address
        "Exception_008": _FAILURE,  # pickup missed: not collected from the pickup point
        "Exception_009": _FAILURE,  # rejected by the carrier
        "Exception_010": _FAILURE,  # returning to sender
        "Exception_011": _FAILURE,  # returned to sender
        "Exception_012": _FAILURE,  # shipment damaged
        "Exception_013": _FAILURE,  # shipment lost
        "Exception_016": _DELAYED,  # delayed: processing issue in the carrier network
        "Exception_017": _DELAYED,  # delayed: extreme weather
        "Exception_018": _DELAYED,  # on hold: incorrect or missing documents
        "Expired_001": None,  # no tracking information for 30 days
    }
)
"""Subtag -> status. ``Exception_014`` and ``_015`` are unconfirmed: they fall back to FAILURE."""

FALLBACK: Status | None = None
"""Status of a checkpoint whose tag and subtag are both unknown."""

_TAGS_FOLDED: Mapping[str, str] = MappingProxyType({t.casefold(): t for t in TAG_STATUS})
_SUBTAGS_FOLDED: Mapping[str, str] = MappingProxyType({s.casefold(): s for s in SUBTAG_STATUS})


def canonical_tag(tag: object, subtag: object = None) -> str | None:
    """The documented spelling of ``tag`` (any case), else of the subtag's prefix, else None."""
    for candidate in (tag, subtag.partition("_")[0] if isinstance(subtag, str) else None):
        if isinstance(candidate, str):
            found = _TAGS_FOLDED.get(candidate.strip().casefold())
            if found is not None:
                return found
    return None


def canonical_subtag(subtag: object) -> str | None:
    """The documented spelling of a known ``subtag`` (any case), else None."""
    if not isinstance(subtag, str):
        return None
    return _SUBTAGS_FOLDED.get(subtag.strip().casefold())


def map_status(tag: object, subtag: object = None) -> Status | None:
    """The status of one checkpoint (or tracking) from its ``tag`` and ``subtag``."""
    return status_of(tag, subtag, canonical_subtag(subtag))


def status_of(tag: object, subtag: object, known_subtag: str | None) -> Status | None:
    """:func:`map_status` with ``canonical_subtag(subtag)`` already known."""
    if known_subtag is not None:
        return SUBTAG_STATUS[known_subtag]
    known_tag = canonical_tag(tag, subtag)
    if known_tag is None:
        return FALLBACK
    return TAG_STATUS[known_tag]
