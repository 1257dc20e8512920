"""``tracker detect`` and ``tracker track``: one number, from the command line."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp

from carriers.base import Outcome, TrackResult
from carriers.detect import Candidate, detect
from carriers.registry import available_factories
from tracker.config import Config
from tracker.domain import current_status


class LookupRefused(Exception):
    """The lookup cannot be made as asked (unknown or unconfigured carrier)."""


def detect_report(number: str, candidates: list[Candidate], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "number": number,
                "candidates": [
                    {"carrier": c.carrier, "checksum_valid": c.checksum_valid, "product": c.product}
                    for c in candidates
                ],
            }
        )
    if not candidates:
        return f"{number}: no carrier recognises this number"
    lines = [f"{number}:"]
    for c in candidates:
        check = "check digit valid" if c.checksum_valid else "format only"
        lines.append(f"  {c.carrier:<10} {c.product} ({check})")
    return "\n".join(lines)


def choose_carrier(number: str, carrier: str | None, config: Config) -> str:
    if carrier is None:
        candidates = detect(number)
        configured = [c.carrier for c in candidates if c.carrier in config.carriers]
        if configured:
            return configured[0]
        if candidates:
            raise LookupRefused(
                f"{number} looks like {candidates[0].carrier}, which is not configured "
                f"(add carriers.{candidates[0].carrier} to the configuration)"
            )
        raise LookupRefused(f"no carrier recognises {number}; name one with --carrier")
    if carrier not in available_factories():
        known = ", ".join(sorted(available_factories()))
        raise LookupRefused(f"unknown carrier {carrier!r}; known: {known}")
    if carrier not in config.carriers:
        raise LookupRefused(f"carriers.{carrier} is not configured (credentials and base_url)")
    return carrier


async def track_one(number: str, carrier: str, config: Config) -> TrackResult:
    factory = available_factories()[carrier]
    async with aiohttp.ClientSession() as session:
        adapter = factory(config.carriers[carrier], session)
        results = await adapter.track([number])
    return results[number]


def result_document(carrier: str, result: TrackResult) -> dict[str, Any]:
    newest = current_status(list(result.events))
    return {
        "carrier": carrier,
        "tracking_number": result.tracking_number,
        "status": newest.status.value if newest and newest.status else None,
        "estimated_delivery_at": _iso(result.estimated_delivery_at),
        "error": None
        if result.outcome is Outcome.FOUND
        else f"{result.outcome.value}: {result.message}",
        "events": [
            {
                "status": e.status.value if e.status else None,
                "happened_at": _iso(e.happened_at),
                "message": e.message,
                "city": e.city,
                "province": e.province,
                "country": e.country,
                "zip": e.zip,
                "carrier_code": e.carrier_code,
            }
            for e in result.events
        ],
    }


def track_report(document: dict[str, Any], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(document)
    lines = [
        f"{document['tracking_number']} ({document['carrier']}): "
        f"{document['status'] or 'no status'}"
        + (
            f", expected {document['estimated_delivery_at']}"
            if document["estimated_delivery_at"]
            else ""
        )
    ]
    if document["error"]:
        lines.append(f"  {document['error']}")
    for event in document["events"]:
        place = ", ".join(p for p in (event["city"], event["province"], event["country"]) if p)
        lines.append(
            f"  {event['happened_at']}  {(event['status'] or '-'):<19} {event['message']}"
            + (f" ({place})" if place else "")
        )
    return "\n".join(lines)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
