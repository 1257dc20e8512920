"""USPS scan event codes -> Shopify statuses. Pure: no I/O.

Where the tables come from:

* The Tracking API v3 spec (``usps-tracking-v3.yaml``) names no values itself: ``status``,
  ``statusCategory``, ``eventCode`` and ``reasonCode`` all point to Publication 199 (the IMpb
  Implementation Guide), Appendix G-4 "USPS Domestic Tracking Scan Events" and G-5 "Scan Event
  Codes - International Mail". :data:`EVENT_CODES` holds the Appendix G-4 event codes that
  could be confirmed from public copies of that table and of USPS's customer extract
  descriptions, each under the status category USPS.com shows for it.
* :data:`INTERNATIONAL_CODES` are the UPU EMSEVT item events postal operators exchange for
  international items. Whether USPS passes them through ``eventCode`` is not confirmed; they
  are mapped so that such scans get a status if it does.

How one scan gets its status (:func:`map_status`), from that scan alone:

1. its ``eventCode``, when the tables know it (an explicit None there means "information only");
   a code no table knows gives no status (:data:`FALLBACK`);
2. then the scan's words (``eventType``) refine a few codes (:data:`REFINEMENTS`): a parcel
   going back to its sender fails even when the code says "processed" or "delivered", and an
   in-transit scan that says it is running late is a delay.

The answer's ``statusCategory`` never decides a scan's status. It describes whichever scan is
newest, so it changes as new scans arrive, while a scan's status is part of the key its event is
stored (and written back to Shopify) under: a status taken from the category would give the same
scan a new key on the next poll, and the customer would see it twice. The category is kept in the
result's ``raw_status`` only. The price: a scan whose code no table knows stays without a status
even when it is the newest and the category says "Delivered", so it does not make the parcel
delivered; only a scan with a known code (or its code, once added to the tables) can.

Unknown codes are never guessed from their words alone: such scans are kept with their text and
no status, and never written back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from tracker.domain import Status


class EventCode(NamedTuple):
    """One row of a code table: USPS's own name for the scan, and what it means for Shopify."""

    description: str
    status: Status | None


_LABEL = Status.LABEL_PURCHASED
_PICKED_UP = Status.CARRIER_PICKED_UP
_TRANSIT = Status.IN_TRANSIT
_OUT = Status.OUT_FOR_DELIVERY
_ATTEMPT = Status.ATTEMPTED_DELIVERY
_PICKUP = Status.READY_FOR_PICKUP
_DELAYED = Status.DELAYED
_DELIVERED = Status.DELIVERED
_FAILURE = Status.FAILURE

EVENT_CODES: Mapping[str, EventCode] = {
    # Pre-Shipment: USPS knows the label, not the parcel.
    "MA": EventCode("Pre-Shipment Info Sent to USPS, USPS Awaiting Item", _LABEL),
    "GX": EventCode("Shipping Label Created, USPS Awaiting Item", _LABEL),
    "89": EventCode("Merchant Order Receipt Notification, USPS Awaiting Item", _LABEL),
    # Accepted: USPS (or its shipping partner) has the parcel.
    "03": EventCode("Accept or Pickup (USPS picked up item / in possession of item)", _PICKED_UP),
    "OA": EventCode("Origin Acceptance", _PICKED_UP),
    "AD": EventCode("Acceptance at Destination", _PICKED_UP),
    "UA": EventCode("Accepted at USPS Facility", _PICKED_UP),
    "PA": EventCode("Passive Acceptance (Shipment Acceptance)", _PICKED_UP),
    "TM": EventCode("Shipment Received, Package Acceptance Pending", _PICKED_UP),
    "83": EventCode("Tendered to Postal Service", _PICKED_UP),
    "80": EventCode("Picked Up by Shipping Partner", _PICKED_UP),
    # In Transit.
    "06": EventCode("Forwarded", _TRANSIT),
    "07": EventCode("Arrival at Unit (Arrived at Post Office)", _TRANSIT),
    "10": EventCode("Processed through USPS Facility", _TRANSIT),
    "19": EventCode("DC eVS Arrive", _TRANSIT),
    "41": EventCode("Received at Opening Unit", _TRANSIT),
    "42": EventCode("USPS Handoff to Shipping Partner", _TRANSIT),
    "81": EventCode("Arrived Shipping Partner Facility", _TRANSIT),
    "82": EventCode("Departed Shipping Partner Facility", _TRANSIT),
    "EF": EventCode("Departed USPS Facility", _TRANSIT),
    "SF": EventCode("Departed Post Office", _TRANSIT),
    "PC": EventCode("Sorting / Processing Complete", _TRANSIT),
    "U1": EventCode("Arrived at USPS Regional Facility", _TRANSIT),
    "T1": EventCode("Departed USPS Regional Facility", _TRANSIT),
    "NT": EventCode("In Transit to Next Facility", _TRANSIT),
    # In transit, but off course or behind schedule.
    "08": EventCode("Missent", _DELAYED),
    "15": EventCode("Mis-shipped", _DELAYED),
    "71": EventCode("Rescheduled to Next Delivery Day", _DELAYED),
    # Out for Delivery.
    "OF": EventCode("Out for Delivery", _OUT),
    # Delivered (to the addressee, an agent, or picked up by them at the Post Office).
    "01": EventCode("Delivered", _DELIVERED),
    "17": EventCode("Picked Up by Agent", _DELIVERED),
    "43": EventCode("Picked Up (Delivered, Individual Picked Up at Postal Facility)", _DELIVERED),
    # Delivery Attempt: a notice was left; the parcel will be tried again or can be collected.
    "02": EventCode("Notice Left", _ATTEMPT),
    "30": EventCode("Delivery Attempted - No Access to Delivery Location", _ATTEMPT),
    "51": EventCode("Notice Left (Business Closed)", _ATTEMPT),
    "52": EventCode("Notice Left (No Authorized Recipient Available)", _ATTEMPT),
    "53": EventCode("Notice Left (Receptacle Blocked)", _ATTEMPT),
    "54": EventCode("Notice Left (Receptacle Full / Item Oversized)", _ATTEMPT),
    "55": EventCode("Notice Left (No Secure Location Available)", _ATTEMPT),
    "56": EventCode("Notice Left (No Authorized Recipient Available)", _ATTEMPT),
    # Available for Pickup.
    "14": EventCode("Arrival at Pickup Point", _PICKUP),
    "16": EventCode("Available for Pickup", _PICKUP),
    # Alert: the parcel will not reach the addressee (refused, undeliverable, going back).
    "04": EventCode("Refused", _FAILURE),
    "05": EventCode("Undeliverable as Addressed", _FAILURE),
    "09": EventCode("Return to Sender", _FAILURE),
    "11": EventCode("Dead Letter", _FAILURE),
    "21": EventCode("No Such Number", _FAILURE),
    "22": EventCode("Insufficient Address", _FAILURE),
    "23": EventCode("Moved, Left No Address", _FAILURE),
    "24": EventCode("Forward Expired", _FAILURE),
    "25": EventCode("Addressee Unknown", _FAILURE),
    "26": EventCode("Vacant", _FAILURE),
    "27": EventCode("Unclaimed", _FAILURE),
    "28": EventCode("Deceased", _FAILURE),
    "29": EventCode("Return to Sender - Other", _FAILURE),
    "31": EventCode("Return to Sender - Not Picked Up", _FAILURE),
    "44": EventCode("Customer Recall", _FAILURE),
    # Information only: shown, never a status.
    "DX": EventCode("Delivery Status Not Updated", None),
    "GC": EventCode("Return Receipt Associated", None),
}
"""Publication 199 Appendix G-4 domestic scan event codes."""

INTERNATIONAL_CODES: Mapping[str, EventCode] = {
    "EXA": EventCode("Item presented to export Customs", _TRANSIT),
    "EXB": EventCode("Item held by export Customs", _TRANSIT),
    "EXC": EventCode("Item returned from export Customs", _TRANSIT),
    "EXD": EventCode("Item held at outward office of exchange", _TRANSIT),
    "EMA": EventCode("Posting / collection", _PICKED_UP),
    "EMB": EventCode("Arrival at outward office of exchange", _TRANSIT),
    "EMC": EventCode("Departure from outward office of exchange", _TRANSIT),
    "EMJ": EventCode("Arrival at transit office of exchange", _TRANSIT),
    "EMK": EventCode("Departure from transit office of exchange", _TRANSIT),
    "EMD": EventCode("Arrival at inward office of exchange", _TRANSIT),
    "EDA": EventCode("Held at inward office of exchange", _TRANSIT),
    "EDB": EventCode("Item presented to import Customs", _TRANSIT),
    "EME": EventCode("Handed over to Customs", _TRANSIT),
    "EDC": EventCode("Item returned from Customs", _TRANSIT),
    "EMF": EventCode("Departure from inward office of exchange", _TRANSIT),
    "EDD": EventCode("Item into sorting centre", _TRANSIT),
    "EDE": EventCode("Item out of sorting centre", _TRANSIT),
    "EMG": EventCode("Arrival at delivery office", _TRANSIT),
    "EDF": EventCode("Item held at delivery depot / delivery office", _TRANSIT),
    "EDG": EventCode("Item out for delivery", _OUT),
    "EDH": EventCode("Item arrival at collection point for pick-up", _PICKUP),
    "EMH": EventCode("Attempted / unsuccessful delivery", _ATTEMPT),
    "EMI": EventCode("Final delivery", _DELIVERED),
}
"""UPU EMSEVT international item events (see the module docstring)."""

FALLBACK: Status | None = None
"""Status of a scan whose code no table knows."""


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


RETURNED = _words(
    r"\breturn(?:ed|ing)? to (?:the )?(?:sender|shipper)",
    r"\bto (?:the )?original sender\b",
    r"\bback to (?:the )?sender\b",
)
RUNNING_LATE = _words(r"\barriving late\b", r"\brunning late\b", r"\bdelay(?:ed|s)?\b")

REFINEMENTS: Mapping[Status, tuple[tuple[re.Pattern[str], Status], ...]] = {
    _TRANSIT: ((RETURNED, _FAILURE), (RUNNING_LATE, _DELAYED)),
    _DELAYED: ((RETURNED, _FAILURE),),
    _DELIVERED: ((RETURNED, _FAILURE),),
}
"""Per status from the code: ordered (pattern over ``eventType``, status); first match wins."""


def normalize_code(code: object) -> str:
    """``eventCode`` as a table key: trimmed, upper case, one-digit numbers zero-padded."""
    if isinstance(code, bool):
        return ""
    if isinstance(code, int):
        code = str(code)
    if not isinstance(code, str):
        return ""
    key = code.strip().upper()
    return key.zfill(2) if key.isdigit() and len(key) == 1 else key


def lookup_code(code: object) -> EventCode | None:
    """The table row for ``code``, domestic first, or None when no table has it."""
    key = normalize_code(code)
    return EVENT_CODES.get(key) or INTERNATIONAL_CODES.get(key)


def map_status(code: object, event_type: object = "") -> Status | None:
    """The status of one USPS scan, from its ``eventCode`` and ``eventType`` alone.

    Nothing about the rest of the answer (the scan's place in the list, ``statusCategory``)
    may go in: the status is part of the scan's stored key (see the module docstring).
    """
    row = lookup_code(code)
    status = FALLBACK if row is None else row.status
    if status is None or status not in REFINEMENTS:
        return status
    if type(event_type) is str:
        return _refined(status, event_type)
    return _refine(status, event_type if isinstance(event_type, str) else "")


def _refine(status: Status, text: str) -> Status:
    for pattern, refined in REFINEMENTS[status]:
        if pattern.search(text):
            return refined
    return status


_refined = lru_cache(maxsize=2048)(_refine)
""":func:`_refine` of words seen before: USPS repeats the same few ``eventType`` texts, and
reading one runs several expressions."""
