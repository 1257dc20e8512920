"""docs/CONFIG.md is generated from the configuration model and must stay equal to it."""

from __future__ import annotations

import difflib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from tracker.config import Config
from tracker.config_doc import REGENERATE, format_duration, render, sections, undocumented_fields

ROOT = Path(__file__).resolve().parents[1]
CHECKED_IN = ROOT / "docs" / "CONFIG.md"


def test_checked_in_reference_matches_the_model():
    generated = render()
    current = CHECKED_IN.read_text(encoding="utf-8")
    if current != generated:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                "docs/CONFIG.md (checked in)",
                "docs/CONFIG.md (from the model)",
                n=1,
            )
        )
        raise AssertionError(
            f"docs/CONFIG.md is out of date with tracker/config.py; regenerate it with\n"
            f"    {REGENERATE}\n{diff[:4000]}"
        )


def test_every_field_has_a_description():
    missing = undocumented_fields()
    assert not missing, (
        "configuration fields without Field(description=...): "
        f"{', '.join(missing)}; add one, then run {REGENERATE}"
    )


def test_every_model_field_is_in_the_reference():
    """Every key the model accepts appears in the text, nested sections included."""
    text = render()
    expected = {
        "database.url",
        "shops[].access_token",
        "shops[].writeback",
        "carriers.<code>.api_key",
        "carriers.<code>.requests_per_day",
        "web.auth.session_secret",
        "polling.circuit_open_for",
        "log.json_lines",
    }
    paths = {key.path for section in sections() for key in section.keys}
    assert expected <= paths
    for name in Config.model_fields:
        assert f"| `{name}` |" in text
    for path in paths:
        assert f"`{path}`" in text


def test_rows_state_type_default_and_environment_name():
    text = render()
    assert (
        "| `polling.in_transit_every`<br>`TRACKER_POLLING__IN_TRANSIT_EVERY` | duration | `4h` |"
        in text
    )
    assert "| `web.port`<br>`TRACKER_WEB__PORT` | integer (>= 0, <= 65535) | `8080` |" in text
    assert "`shops[].domain`<br>`TRACKER_SHOPS__<N>__DOMAIN` | string | **required** |" in text
    assert "`shops[].access_token`<br>`TRACKER_SHOPS__<N>__ACCESS_TOKEN` | string, *secret*" in text
    assert (
        "`log.level`<br>`TRACKER_LOG__LEVEL` | one of `DEBUG`, `INFO`, `WARNING`, `ERROR`" in text
    )


def test_a_new_field_shows_up_and_an_undocumented_one_is_reported():
    class Inner(BaseModel):
        documented: int = Field(3, ge=1, description="Has a | pipe.")
        bare: timedelta = timedelta(minutes=90)

    class Outer(BaseModel):
        """Outer model."""

        inner: Inner = Field(default_factory=Inner, description="The inner part.")

    text = render(Outer)
    assert "| `inner.documented`<br>`TRACKER_INNER__DOCUMENTED` | integer (>= 1) | `3` |" in text
    assert "Has a \\| pipe." in text
    assert "| `inner.bare`<br>`TRACKER_INNER__BARE` | duration | `90m` |  |" in text
    assert undocumented_fields(Outer) == ["inner.bare"]


def test_durations_are_written_the_way_the_file_accepts_them():
    assert format_duration(timedelta(days=30)) == "30d"
    assert format_duration(timedelta(hours=36)) == "36h"
    assert format_duration(timedelta(seconds=10)) == "10s"
    assert format_duration(timedelta(milliseconds=1500)) == "1500ms"
    from tracker.config_types import _parse_duration

    for value in (timedelta(days=2), timedelta(minutes=5), timedelta(milliseconds=250)):
        assert _parse_duration(format_duration(value)) == value


def test_module_prints_the_reference():
    result = subprocess.run(
        [sys.executable, "-m", "tracker.config_doc"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == render()
