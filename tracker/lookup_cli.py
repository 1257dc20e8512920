"""``tracker detect`` and ``tracker track``: what they print, and the exit codes they end with.

The lookups themselves are in :mod:`tracker.lookup`; the exit codes are those of
:mod:`tracker.cli`. ``detect`` exits 0 when the number may belong to a carrier and 5 when it
belongs to none. ``track`` exits 0 when the carrier found the number, 5 when it does not know it,
6 when it could not be asked or refused the credentials, 2 for a carrier that is unknown or not
configured.
"""

from __future__ import annotations

import argparse
import sys

from tracker.cli import EXIT_CARRIER_DOWN, EXIT_CONFIG, EXIT_NOT_TRACKED, EXIT_OK, setup_logging
from tracker.config_load import load_config
from tracker.loop import run as run_loop


def run_detect(args: argparse.Namespace) -> int:
    from carriers.detect import detect
    from tracker.lookup import detect_report

    candidates = detect(args.number)
    print(detect_report(args.number, candidates, as_json=args.json))
    return EXIT_OK if candidates else EXIT_NOT_TRACKED


def run_track(args: argparse.Namespace) -> int:
    from carriers.base import CarrierAuthError, CarrierError, Outcome
    from tracker.lookup import (
        LookupRefused,
        choose_carrier,
        result_document,
        track_one,
        track_report,
    )

    config = load_config(args.config)
    setup_logging(config, args.log_level or "WARNING")
    try:
        carrier = choose_carrier(args.number, args.carrier, config)
    except LookupRefused as exc:
        print(f"tracker track: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = run_loop(track_one(args.number, carrier, config))
    except CarrierAuthError as exc:
        print(f"{carrier} refused the credentials: {exc}", file=sys.stderr)
        return EXIT_CARRIER_DOWN
    except CarrierError as exc:
        print(f"{carrier} could not be asked: {exc}", file=sys.stderr)
        return EXIT_CARRIER_DOWN
    print(track_report(result_document(carrier, result), as_json=args.json))
    return EXIT_OK if result.outcome is Outcome.FOUND else EXIT_NOT_TRACKED
