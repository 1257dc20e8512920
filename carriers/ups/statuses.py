"""UPS activity statuses -> Shopify statuses. Pure: no I/O.

Every UPS activity carries ``status {type, statusCode, code, description}``:

* ``type``, the coarse class of the scan (:data:`TYPE_DEFAULTS`). Source: the "activity status
  type" values of UPS's Tracking API documentation (developer.ups.com, Tracking API reference);
  the shared OpenAPI file only gives the example ``X``. CARRIERS.md gives the starting mapping.
* ``statusCode``, a three-digit package status (:data:`STATUS_CODES`). Source: the "package
  status codes" table of the UPS Tracking API appendix ("see API Codes" in the spec, whose example
  is ``003``); 000-069 as UPS has published them for years. The spec itself holds no code table.
* ``code``, a two-letter scan code (:data:`SCAN_CODES`), e.g. ``OT`` "Out For Delivery Today"
  or ``PU`` "Pickup Scan". UPS has hundreds; only the ones that say more than their ``statusCode``
  are listed. Source: UPS scan codes as they appear in live Track API answers (the spec's
  example is ``SR``).

How one activity is read (:func:`map_status`), most specific first:

1. a ``statusCode`` in :data:`STATUS_CODES` that is not generic decides: "First Attempt Made"
   is an attempted delivery whatever the type (but a label code, under a later type, does not:
   :data:`LABEL_CODES`);
2. otherwise (generic "In Transit" / "Status Not Available", or a code not in the table) a
   ``code`` in :data:`SCAN_CODES` decides, so an out-for-delivery or pickup scan reported as plain
   in-transit is recognised;
3. otherwise the ``type`` decides (:data:`TYPE_DEFAULTS`);
4. an unknown type with nothing else known is :data:`FALLBACK`: no status (kept as an event,
   never written back).

Statuses that stop polling (``FAILURE``) are reserved for codes that say the parcel will not
reach the buyer (voided, refused, returned, lost). An exception of unknown kind reads as
``DELAYED``: most UPS exceptions (address problems, closed businesses, weather) end in a delivery,
and a parcel marked failed would no longer be polled. Requests and notices that move nothing
(address change requested, service upgraded) map to no status.
"""

from __future__ import annotations

from collections.abc import Mapping

from tracker.domain import Status

TYPE_DEFAULTS: Mapping[str, Status | None] = {
    "M": Status.LABEL_PURCHASED,  # Billing Information Received (manifest)
    "MV": Status.FAILURE,  # Billing Information Voided
    "P": Status.CARRIER_PICKED_UP,  # Pickup
    "I": Status.IN_TRANSIT,  # In Transit
    "O": Status.OUT_FOR_DELIVERY,  # Out for Delivery
    "X": Status.DELAYED,  # Exception (refined by statusCode; see the module docstring)
    "D": Status.DELIVERED,  # Delivered
    "RS": Status.FAILURE,  # Returned to Shipper
    "DO": Status.IN_TRANSIT,  # Delivered Origin CFS (freight only): handed to the origin station
    "DD": Status.IN_TRANSIT,  # Delivered Destination CFS (freight only): not yet at the buyer
    "W": Status.IN_TRANSIT,  # Warehousing (freight only)
    "NA": None,  # Not Available
}
"""``status.type`` -> status when neither ``statusCode`` nor ``code`` says more."""

STATUS_CODES: Mapping[str, Status | None] = {
    "000": None,  # Status Not Available
    "003": Status.LABEL_PURCHASED,  # Order Processed: Ready for UPS
    "005": Status.IN_TRANSIT,  # In Transit
    "006": Status.OUT_FOR_DELIVERY,  # On Vehicle for Delivery
    "007": Status.FAILURE,  # Shipment Information Voided
    "010": Status.IN_TRANSIT,  # In Transit: On Time
    "011": Status.DELIVERED,  # Delivered
    "012": Status.IN_TRANSIT,  # Clearance in Progress
    "013": Status.DELAYED,  # Exception
    "014": Status.IN_TRANSIT,  # Clearance Completed
    "016": Status.DELAYED,  # Held in Warehouse
    "017": Status.READY_FOR_PICKUP,  # Held for Customer Pickup
    "018": None,  # Delivery Change Requested: Hold for Pickup
    "019": Status.DELAYED,  # Held for Future Delivery
    "020": None,  # Held for Future Delivery Requested
    "021": Status.OUT_FOR_DELIVERY,  # On Vehicle for Delivery Today
    "022": Status.ATTEMPTED_DELIVERY,  # First Attempt Made
    "023": Status.ATTEMPTED_DELIVERY,  # Second Attempt Made
    "024": Status.ATTEMPTED_DELIVERY,  # Final Attempt Made
    "025": Status.IN_TRANSIT,  # Transferred to Local Post Office for Delivery
    "026": Status.DELIVERED,  # Delivered by Local Post Office
    "027": None,  # Delivery Address Change Requested
    "028": None,  # Delivery Address Changed
    "029": Status.DELAYED,  # Exception: Action Required
    "030": Status.DELAYED,  # Local Post Office Exception
    "032": Status.DELAYED,  # Adverse Weather May Cause Delay
    "033": None,  # Return to Sender Requested (a request; the return itself is 035/034)
    "034": Status.FAILURE,  # Returned to Sender
    "035": Status.FAILURE,  # Returning to Sender
    "036": Status.FAILURE,  # Returning to Sender: In Transit
    "037": Status.FAILURE,  # Returning to Sender: On Vehicle for Delivery
    "038": Status.CARRIER_PICKED_UP,  # Picked Up
    "039": Status.IN_TRANSIT,  # In Transit by Post Office
    "040": Status.READY_FOR_PICKUP,  # Delivered to UPS Access Point Awaiting Customer Pickup
    "041": None,  # Service Upgrade Requested
    "042": None,  # Service Upgraded
    "043": None,  # Voided Pickup (the pickup request, not the parcel)
    "044": Status.IN_TRANSIT,  # In Transit to UPS
    "045": Status.LABEL_PURCHASED,  # Order Processed: In Transit to UPS
    "046": Status.DELAYED,  # Delay
    "047": Status.DELAYED,  # Delay
    "048": Status.DELAYED,  # Delay
    "049": Status.DELAYED,  # Delay: Action Required
    "050": Status.DELAYED,  # Address Information Required
    "051": Status.DELAYED,  # Delay: Emergency Situation or Severe Weather
    "052": Status.DELAYED,  # Delay: Severe Weather
    "053": Status.DELAYED,  # Delay: Severe Weather, Recovery in Progress
    "054": None,  # Delivery Change Requested
    "055": Status.DELAYED,  # Rescheduled Delivery
    "056": None,  # Service Upgrade Requested
    "057": Status.IN_TRANSIT,  # In Transit to a UPS Access Point
    "058": Status.DELAYED,  # Clearance Information Required
    "059": Status.DELAYED,  # Damage Reported (often still delivered; not final)
    "060": Status.ATTEMPTED_DELIVERY,  # Delivery Attempted
    "061": Status.ATTEMPTED_DELIVERY,  # Delivery Attempted: Adult Signature Required
    "062": Status.ATTEMPTED_DELIVERY,  # Delivery Attempted: Funds Required
    "063": None,  # Delivery Change Completed
    "064": Status.FAILURE,  # Delivery Refused
    "065": None,  # Pickup Attempted (at the shipper; the parcel has not moved)
    "066": Status.ATTEMPTED_DELIVERY,  # Post Office Delivery Attempted
    "067": Status.FAILURE,  # Returned to Sender by Post Office
    "068": Status.FAILURE,  # Sent to Lost and Found
    "069": Status.FAILURE,  # Package Not Claimed
}
"""UPS package status code (``status.statusCode``) -> status, every code UPS publishes."""

GENERIC_STATUS_CODES = frozenset({"000", "005", "010"})
"""Codes that say no more than the type ("Status Not Available", "In Transit", "In Transit: On
Time"): for these the scan code and the type decide."""

LABEL_CODES = frozenset({"003", "045"})
LABEL_TYPES = frozenset({"M"})
"""Label codes ("Order Processed: Ready for UPS", "...: In Transit to UPS") decide only under a
manifest type, or a type that says nothing: under a type that says the parcel is further along,
the type (or scan code) decides. UPS's own example activity is one: type ``X``, statusCode
``003``, "released by the customs agency"."""

SCAN_CODES: Mapping[str, Status] = {
    "MP": Status.LABEL_PURCHASED,  # Shipper created a label, UPS has not received the package
    "PU": Status.CARRIER_PICKED_UP,  # Pickup Scan
    "OT": Status.OUT_FOR_DELIVERY,  # Out For Delivery Today
    "OF": Status.OUT_FOR_DELIVERY,  # Loaded on Delivery Vehicle
    "OD": Status.OUT_FOR_DELIVERY,  # Out for Delivery
}
"""Two-letter scan codes (``status.code``) that refine a generic status code."""

FALLBACK: Status | None = None
"""Status of an activity whose type, status code and scan code are all unknown."""


def normalize_type(value: object) -> str:
    """``status.type`` as a table key: upper case, no spaces."""
    return value.strip().upper() if isinstance(value, str) else ""


def normalize_status_code(value: object) -> str:
    """``status.statusCode`` as a table key: three digits (``"21"`` and ``21`` read as ``021``)."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int) and 0 <= value < 1000:
        return f"{value:03d}"
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 3:
            return text.zfill(3)
        return text.upper()
    return ""


def map_status(
    type_: object, status_code: object = None, scan_code: object = None
) -> Status | None:
    """The status of one UPS activity from its ``type``, ``statusCode`` and ``code``.

    Anything that is not a string (or, for ``statusCode``, a small integer) is read as missing.
    """
    return map_keys(
        normalize_type(type_), normalize_status_code(status_code), normalize_type(scan_code)
    )


def map_keys(kind: str, detail: str, scan: str) -> Status | None:
    """:func:`map_status` of codes already normalized (``normalize_type`` of the type and the
    scan code, ``normalize_status_code`` of the status code)."""
    label_only = (
        detail in LABEL_CODES and TYPE_DEFAULTS.get(kind) is not None and kind not in LABEL_TYPES
    )
    if detail in STATUS_CODES and detail not in GENERIC_STATUS_CODES and not label_only:
        return STATUS_CODES[detail]
    if scan in SCAN_CODES:
        return SCAN_CODES[scan]
    if kind in TYPE_DEFAULTS:
        return TYPE_DEFAULTS[kind]
    if detail in STATUS_CODES:  # a generic code with no usable type: say what the code says
        return STATUS_CODES[detail]
    return FALLBACK
