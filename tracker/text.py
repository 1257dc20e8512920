"""Text from outside (carriers' scans, Shopify's orders) as it is safe to store, show, send on.

A carrier's or Shopify's JSON may carry anything in a string: NUL (which PostgreSQL's ``text``
refuses, so one such scan fails the whole batch it was polled in, one such order the whole page
it was read in), other control characters, lone surrogates (which cannot be encoded as UTF-8),
bidirectional overrides that make a page read backwards, or kilobytes of text.
:func:`clean_text` keeps the words and drops the rest.
"""

from __future__ import annotations

import re

MAX_TEXT = 500
"""Characters kept of one text by default; longer ones are cut and end with an ellipsis."""

# C0 and C1 controls (tab, newlines and the like become spaces below), the bidirectional
# embedding/override/isolate controls and marks, and lone surrogates.
_DROPPED = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SPACES = re.compile(r"\s+")


_KNOWN_CLEAN: set[str] = set()
"""Texts found clean before. Carriers repeat the same few hundred words (statuses, places,
codes), and a set look-up costs a third of checking a text again. Emptied when full."""
_KNOWN_CLEAN_MAX = 4096
_KNOWN_CLEAN_LONGEST = 256


def clean_text(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as one clean line of at most ``limit`` characters; "" when it is no text."""
    if type(value) is str:  # exactly: a subclass may compare and hash as it likes
        if value in _KNOWN_CLEAN and len(value) <= limit:
            return value
    elif not isinstance(value, str):
        return ""
    if len(value) <= limit and value.isprintable() and "  " not in value and value.strip() == value:
        # Already clean, as nearly every carrier text is: a printable string holds none of the
        # dropped characters (all are of Unicode's "other" categories) and no whitespace but
        # the space. Five times faster than the expressions, and parsers call this a lot.
        if type(value) is str and len(value) <= _KNOWN_CLEAN_LONGEST:
            if len(_KNOWN_CLEAN) >= _KNOWN_CLEAN_MAX:
                _KNOWN_CLEAN.clear()
            _KNOWN_CLEAN.add(value)
        return value
    text = _SPACES.sub(" ", _DROPPED.sub("", value)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
