"""Carrier detection from the tracking number alone."""

from __future__ import annotations

import pytest

from carriers.detect import detect, gs1_check_digit, resolve_carrier


def sscc(prefix_and_serial: str) -> str:
    return "00" + prefix_and_serial + str(gs1_check_digit(prefix_and_serial))


@pytest.mark.parametrize(
    ("number", "carrier"),
    [
        ("1Z999AA10123456784", "ups"),
        ("1z 999 aa1 0123 4567 84", "ups"),
        ("123456789012", "fedex"),
        ("RR123456785SE", "postnord"),
        ("RR123456785DK", "postnord"),
        ("JJD000000000000000001", "dhl"),
        (sscc("37312345600000001"), "postnord"),
        (sscc("34043416109404255"), "dhl"),
    ],
)
def test_best_candidate(number, carrier):
    assert detect(number)[0].carrier == carrier


def test_a_wrong_check_digit_is_reported_as_such():
    valid = detect("1Z999AA10123456784")
    broken = detect("1Z999AA10123456785")
    assert valid[0].checksum_valid is True
    assert all(not c.checksum_valid for c in broken if c.carrier == "ups")


def test_valid_candidates_come_first():
    candidates = detect(sscc("34043416109404255"))
    flags = [c.checksum_valid for c in candidates]
    assert flags == sorted(flags, reverse=True)
    assert candidates[0].checksum_valid


def test_nothing_fits():
    assert detect("HELLO") == []


@pytest.mark.parametrize(
    ("given", "number", "expected"),
    [
        (None, "1Z999AA10123456784", ("ups", "detected")),
        ("dhl", "1Z999AA10123456784", ("ups", "detected")),
        ("ups", "1Z999AA10123456784", ("ups", "shopify")),
        ("dhl", "JJD000000000000000001", ("dhl", "shopify")),
        ("dhl", "SOMETHING", ("dhl", "shopify")),
        (None, "SOMETHING", (None, "unknown")),
    ],
)
def test_resolve_carrier(given, number, expected):
    assert resolve_carrier(given, number) == expected
