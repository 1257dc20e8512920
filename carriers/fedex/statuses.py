"""FedEx scan codes -> Shopify statuses. Pure: no I/O.

Every scan in FedEx's Track API answer carries two codes: ``eventType``, the scan itself (``AR``
arrived, ``OD`` on vehicle for delivery, ...), and ``derivedStatusCode``, FedEx's coarser reading
of it (``IT`` for every in-transit scan, ``IN`` for "label created"). The status of an event is
read from ``eventType`` when :data:`EVENT_CODES` knows it, else from ``derivedStatusCode``; a code
in neither table maps to no status (:data:`FALLBACK`), and the scan is still kept with its words.

Sources of the tables:

* The Track API spec (``fedex-track.json``) names only examples (``PU, DE, DP, HL, OC``) and links
  to FedEx's "Track Service Scan Codes" page for the full list. That list, the same one FedEx
  published as the ``TrackStatusDetail`` / ``TrackEvent`` code table of its Web Services Track
  Service guides, is :data:`EVENT_CODES`, grouped as FedEx groups it: status codes, regulatory
  (customs) codes, and possession codes. Two codes are used twice by FedEx: ``EA`` (Enroute to
  Airport / Export Approved, both in transit) and ``CA`` / ``RC`` (status codes, and possession
  codes "Carrier" / "Recipient"); the status meaning wins.
* ``AE`` / ``AO`` (arriving early / on time) were announced in the Track API change log of
  2021-10-15 as new ``eventType`` values.
* :data:`OBSERVED_CODES` are codes the live API is reported to send that no published table
  lists: ``IN`` (the ``derivedStatusCode`` of a label-created scan) and ``HP`` (ready for recipient
  pickup).
* CARRIERS.md gives the starting points (``OC, PU, IT, AR, DP, AF, OD, DL, HL, DE, DY, SE, RS,
  CA``), which these tables follow.

Exceptions are refined by their words (:data:`REFINEMENTS`): a delivery exception (``DE``) is an
attempted delivery unless it says the parcel was refused or is going back; a shipment exception
(``SE``) is a delay unless it says the parcel is damaged, lost or undeliverable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from tracker.domain import Status

_IN_TRANSIT = Status.IN_TRANSIT

STATUS_CODES: Mapping[str, Status | None] = {
    "AA": _IN_TRANSIT,  # At Airport
    "AC": _IN_TRANSIT,  # At Canada Post facility
    "AD": Status.OUT_FOR_DELIVERY,  # At Delivery (courier at the delivery address)
    "AE": None,  # Shipment arriving early (a forecast, not a movement)
    "AF": _IN_TRANSIT,  # At local FedEx facility
    "AO": None,  # Shipment arriving on time (a forecast, not a movement)
    "AP": None,  # At Pickup (courier at the shipper; "PU" follows)
    "AR": _IN_TRANSIT,  # Arrived at FedEx location
    "AX": _IN_TRANSIT,  # At USPS facility
    "CA": Status.FAILURE,  # Shipment cancelled
    "CH": None,  # Location changed
    "DD": Status.DELAYED,  # Delivery delay
    "DE": Status.ATTEMPTED_DELIVERY,  # Delivery exception (refined below)
    "DL": Status.DELIVERED,  # Delivered
    "DP": _IN_TRANSIT,  # Departed FedEx location
    "DR": None,  # Vehicle furnished but not used
    "DS": None,  # Vehicle dispatched (to a pickup)
    "DY": Status.DELAYED,  # Delay
    "EA": _IN_TRANSIT,  # Enroute to airport
    "ED": Status.OUT_FOR_DELIVERY,  # Enroute to delivery
    "EO": _IN_TRANSIT,  # Enroute to origin airport
    "EP": None,  # Enroute to pickup (not picked up yet)
    "FD": _IN_TRANSIT,  # At FedEx destination
    "HL": Status.READY_FOR_PICKUP,  # Hold at location
    "IT": _IN_TRANSIT,  # In transit
    "IX": _IN_TRANSIT,  # In transit (see details)
    "LO": _IN_TRANSIT,  # Left origin
    "LP": None,  # Return label link cancelled by shipment originator
    "OC": Status.LABEL_PURCHASED,  # Order created / shipment information sent to FedEx
    "OD": Status.OUT_FOR_DELIVERY,  # Out for delivery
    "OF": _IN_TRANSIT,  # At FedEx origin facility
    "OX": _IN_TRANSIT,  # Shipment information sent to USPS (handed on for final delivery)
    "PD": Status.DELAYED,  # Pickup delay
    "PF": _IN_TRANSIT,  # Plane in flight
    "PL": _IN_TRANSIT,  # Plane landed
    "PM": _IN_TRANSIT,  # In progress
    "PU": Status.CARRIER_PICKED_UP,  # Picked up
    "PX": Status.CARRIER_PICKED_UP,  # Picked up (see details)
    "RC": None,  # CDO (customer delivery option) cancelled
    "RD": None,  # Return label link expired
    "RG": None,  # Return label link expiring soon
    "RM": None,  # CDO modified
    "RP": None,  # Return label link emailed to return sender
    "RR": None,  # CDO requested
    "RS": Status.FAILURE,  # Return to shipper
    "SE": Status.DELAYED,  # Shipment exception (refined below)
    "SF": _IN_TRANSIT,  # At sort facility
    "SP": None,  # Split status (pieces of one shipment in different states)
    "TR": _IN_TRANSIT,  # Transfer
}
"""FedEx's published scan status codes."""

REGULATORY_CODES: Mapping[str, Status | None] = {
    "CC": _IN_TRANSIT,  # Cleared customs
    "CD": Status.DELAYED,  # Clearance delay
    "CP": _IN_TRANSIT,  # Clearance in progress
    # "EA" Export approved and "SP" Split status share their codes with STATUS_CODES.
}
"""FedEx's regulatory (customs) codes."""

POSSESSION_CODES: Mapping[str, Status | None] = {
    "BR": None,  # Broker
    "CU": None,  # Customs
    "SH": None,  # Shipper
    "TP": None,  # Transfer partner
    # "CA" Carrier and "RC" Recipient share their codes with STATUS_CODES.
}
"""Who holds the parcel: no status of its own."""

OBSERVED_CODES: Mapping[str, Status | None] = {
    "IN": Status.LABEL_PURCHASED,  # derivedStatusCode "Initiated" / "Label created"
    "HP": Status.READY_FOR_PICKUP,  # Ready for recipient pickup
}
"""Codes the live API sends that no published table lists."""

EVENT_CODES: Mapping[str, Status | None] = {
    **POSSESSION_CODES,
    **REGULATORY_CODES,
    **STATUS_CODES,
    **OBSERVED_CODES,
}
"""Every code this module knows -> its status (None: a scan with no Shopify status)."""

FALLBACK: Status | None = None
"""Status of a code in no table."""


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


GOING_BACK = _words(
    r"\brefused\b",
    r"\breturn(?:ed|ing)?(?: package)? to (?:the )?(?:shipper|sender|origin)\b",
    r"\bundeliverable\b",
)
ATTEMPT = _words(
    r"\bnot (?:available|in|at home|home)\b",
    r"\bbusiness (?:was )?closed\b",
    r"\bno one (?:was )?(?:available|home)\b",
    r"\battempt",
)
BROKEN = _words(
    r"\bdamaged?\b",
    r"\bdestroyed\b",
    r"\blost\b",
    r"\bdisposed\b",
    r"\b(?:unable to|cannot|can not|could not) (?:be )?deliver(?:ed)?\b",
    r"\bundeliverable\b",
    r"\brefused\b",
    r"\breturn(?:ed|ing)?(?: package)? to (?:the )?(?:shipper|sender)\b",
)

REFINEMENTS: Mapping[str, tuple[tuple[re.Pattern[str], Status], ...]] = {
    "DE": ((ATTEMPT, Status.ATTEMPTED_DELIVERY), (GOING_BACK, Status.FAILURE)),
    "SE": ((BROKEN, Status.FAILURE),),
}
"""Per code: ordered (pattern over the scan's words, status) pairs; first match wins."""


def normalize_code(code: object) -> str:
    """A code as a table key: upper case, no surrounding blanks; "" if not a string."""
    return code.strip().upper() if isinstance(code, str) else ""


def map_status(event_type: object, derived_code: object = None, *texts: object) -> Status | None:
    """The status of one FedEx scan from its ``eventType``, ``derivedStatusCode`` and words.

    ``texts`` are the scan's ``eventDescription`` and ``exceptionDescription`` (anything that is
    not a string is ignored). The ``eventType`` decides when it is known, even when it means no
    status; otherwise the ``derivedStatusCode``; otherwise :data:`FALLBACK`.
    """
    key = normalize_code(event_type)
    if key not in EVENT_CODES:
        key = normalize_code(derived_code)
        if key not in EVENT_CODES:
            return FALLBACK
    if key in REFINEMENTS:
        return _refined(key, " ".join([t for t in texts if isinstance(t, str)]))
    return EVENT_CODES[key]


@lru_cache(maxsize=2048)
def _refined(key: str, text: str) -> Status | None:
    """The status of code ``key`` refined by the words ``text`` (remembered: FedEx repeats the
    same exception texts, and each reading runs several expressions)."""
    for pattern, status in REFINEMENTS[key]:
        if pattern.search(text):
            return status
    return EVENT_CODES[key]
