"""The event loop commands run on: uvloop by default, asyncio's on request, nothing else."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tracker.config_load import ConfigError
from tracker.loop import ENV, loop_factory, loop_name, run


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert loop_name() == "uvloop"
    assert run(loop_module()).startswith("uvloop")


def test_asyncio_on_request(monkeypatch):
    monkeypatch.setenv(ENV, "asyncio")
    assert loop_name() == "asyncio"
    assert run(loop_module()).startswith("asyncio")


def test_an_unknown_loop_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv(ENV, "trio")
    with pytest.raises(ConfigError, match="TRACKER_EVENT_LOOP must be 'uvloop' or 'asyncio'"):
        loop_factory()


def test_the_cli_says_so_without_a_traceback(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("database:\n  url: postgresql://nobody@127.0.0.1:1/none\n")
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "migrate", "--config", str(config)],
        env={**_env(), ENV: "twisted"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "TRACKER_EVENT_LOOP must be 'uvloop' or 'asyncio', not 'twisted'" in result.stderr
    assert "Traceback" not in result.stderr


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}


def test_settle_gc_freezes_what_exists_and_raises_the_thresholds():
    code = (
        "import gc; from tracker.loop import GC_THRESHOLDS, settle_gc; "
        "before = gc.get_freeze_count(); settle_gc(); "
        "print(gc.get_threshold() == GC_THRESHOLDS, before == 0 < gc.get_freeze_count())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.split() == ["True", "True"], result.stderr
