"""``tracker.text.clean_text``: what text from outside is reduced to before it is stored."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tracker.text import _DROPPED, _SPACES, MAX_TEXT, clean_text


def by_the_expressions(value: str, limit: int = MAX_TEXT) -> str:
    """The definition, without the shortcut for text that is already clean."""
    text = _SPACES.sub(" ", _DROPPED.sub("", value)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


@given(st.text(), st.integers(min_value=2, max_value=600))
def test_the_shortcut_never_changes_the_result(value, limit):
    assert clean_text(value, limit) == by_the_expressions(value, limit)


@given(st.text(alphabet=st.sampled_from("ab \t\n\x00\u200e\u202e\xa0\ud800é漢"), max_size=40))
def test_the_shortcut_never_changes_the_result_on_the_awkward_characters(value):
    assert clean_text(value) == by_the_expressions(value)


def test_what_is_dropped_and_kept():
    assert clean_text("Arrived\x00 at\tthe\n\u202efacility  ") == "Arrived at the facility"
    assert clean_text("Zürich 漢字 \u2013 déjà vu") == "Zürich 漢字 \u2013 déjà vu"
    assert clean_text("x" * 600) == "x" * 499 + "…"
    assert clean_text(None) == clean_text(42) == ""
    assert not re.search(r"[\x00-\x1f]", clean_text("".join(map(chr, range(40)))))


def test_a_text_known_clean_is_still_cut_to_a_shorter_limit():
    text = "Arrived at the facility " + "x" * 200  # clean, and short enough to be remembered
    assert clean_text(text) == text
    assert clean_text(text, 30) == by_the_expressions(text, 30)
    assert len(clean_text(text, 30)) == 30
