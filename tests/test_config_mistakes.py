"""``tracker check-config`` on every kind of mistake: exit code 2, one clear message naming
the file and the key, never a traceback.

tests/test_config.py checks what :func:`tracker.config_load.load_config` says about the common
mistakes; here each mistake goes through the command a user runs, in this process (the CLI's
own code, output captured) and, for a few, in a real ``tracker`` process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.cli import EXIT_CONFIG, EXIT_OK, main

SHOP = "shops:\n  - domain: acme.myshopify.com\n    access_token: shpat_x\n"

# name -> (file text, the key (or place) the message must name, words it must say)
MISTAKES: dict[str, tuple[str, str, str]] = {
    "YAML syntax": ("web:\n  host: [127.0.0.1\n", "line 3, column 1", "not valid YAML"),
    "tab indentation": ("web:\n\thost: x\n", "line 2, column 1", "not valid YAML"),
    "key given twice": ("web:\n  port: 8080\nweb:\n  port: 9\n", "line 3", "'web' is given twice"),
    "nested key given twice": (
        "polling:\n  batch_size: 10\n  lease: 5m\n  batch_size: 20\n",
        "line 4",
        "'batch_size' is given twice",
    ),
    "top level is a list": ("- web\n- shops\n", "top level", "must be a mapping"),
    "top level is text": ("just some words\n", "top level", "must be a mapping"),
    "wrong type": ("polling:\n  batch_size: many\n", "polling.batch_size", "valid integer"),
    "section of the wrong type": ("web: 8080\n", "web", "valid dictionary"),
    "list of the wrong type": (
        "shops:\n  domain: acme.myshopify.com\n",
        "shops",
        "valid list",
    ),
    "true for a number": ("web:\n  port: true\n", "web.port", "true/false"),
    "yes for a number": ("polling:\n  batch_size: yes\n", "polling.batch_size", "true/false"),
    "unknown key": ("web:\n  prot: 8080\n", "web.prot", "unknown key"),
    "unknown section": ("pollling:\n  batch_size: 5\n", "pollling", "unknown key"),
    "missing required": ("shops:\n  - access_token: shpat_x\n", "shops.0.domain", "missing"),
    "out of range": ("web:\n  port: 99999\n", "web.port", "less than or equal to 65535"),
    "no days": ("attention:\n  not_found_days: 0\n", "attention.not_found_days", "greater than 0"),
    "not-a-number days": (
        "attention:\n  not_found_days: .nan\n",
        "attention.not_found_days",
        "finite number",
    ),
    "bad database URL": (
        "database:\n  url: mysql://root:hunter2@db/tracker\n",
        "database.url",
        "not a PostgreSQL URL",
    ),
    "bad public URL": ("web:\n  public_url: tracker.example.com\n", "web.public_url", "http(s)"),
    "bad shop API URL": (
        SHOP + "    api_url: ftp://shop.example\n",
        "shops.0.api_url",
        "http(s)",
    ),
    "bad carrier URL": (
        "carriers:\n  dhl:\n    api_key: k\n    base_url: api.dhl.com\n",
        "dhl.base_url",
        "http(s)",
    ),
    "bad shop domain": (
        "shops:\n  - domain: acme.com\n    access_token: x\n",
        "shops.0.domain",
        "not a shop domain",
    ),
    "bad API version": (SHOP + "    api_version: 2025-02\n", "shops.0.api_version", ""),
    "negative duration": ("sync:\n  interval: -5\n", "sync.interval", "negative"),
    "negative duration text": ("writeback:\n  lease: -2m\n", "writeback.lease", "not a duration"),
    "zero interval": (
        "polling:\n  sweep_interval: 0s\n",
        "polling.sweep_interval",
        "longer than 0",
    ),
    "endless duration": ("sync:\n  interval: .inf\n", "sync.interval", "longer than 3650 days"),
    "absurd duration": (f"sync:\n  interval: {'9' * 400}s\n", "sync.interval", "longer than"),
    "not-a-number duration": ("sync:\n  interval: .nan\n", "sync.interval", "not a duration"),
    "bad duration text": ("sync:\n  interval: soon\n", "sync.interval", "not a duration"),
    "ISO duration misspelt": ("sync:\n  interval: PT4X\n", "sync.interval", "timedelta"),
    "unknown carrier": ("carriers:\n  pigeon:\n    api_key: x\n", "carriers", "unknown carrier"),
    "unknown carrier key": (
        "carriers:\n  dhl:\n    apikey: x\n",
        "carriers.dhl.apikey",
        "unknown key",
    ),
    "duplicate store": (SHOP + SHOP.removeprefix("shops:\n"), "shops", "listed twice"),
    "store without credentials": (
        "shops:\n  - domain: acme.myshopify.com\n",
        "shops.0",
        "needs access_token",
    ),
    "public host without auth": ("web:\n  host: 0.0.0.0\n", "web", "web.auth is required"),
    "auth too weak": (
        "web:\n  auth:\n    api_token: short\n    username: me\n    password_hash: x\n"
        "    session_secret: s\n",
        "web.auth",
        "at least 16 characters",
    ),
    "pool bounds crossed": (
        "database:\n  pool_min_size: 9\n  pool_max_size: 2\n",
        "database",
        "larger than pool_max_size",
    ),
    "bad log level": ("log:\n  level: LOUD\n", "log.level", "'DEBUG'"),
}


@pytest.fixture(autouse=True)
def no_tracker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's ``TRACKER_*`` variables (and the test database's) stay out of these files."""
    for name in list(os.environ):
        if name.startswith("TRACKER_"):
            monkeypatch.delenv(name)


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clear_message(err: str, path: Path, key: str, words: str) -> None:
    """``configuration error:`` and one line, ``<file>: <key...>: <problem>``."""
    assert "Traceback" not in err
    header, *lines = err.rstrip("\n").split("\n")
    assert header == "configuration error:", err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{path}: "), err
    assert key in lines[0], err
    assert words in lines[0], err
    assert len(lines[0]) < 300, err


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_is_one_clear_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mistake: str
) -> None:
    text, key, words = MISTAKES[mistake]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = check_config(path, capsys)
    assert code == EXIT_CONFIG, (out, err)
    assert out == ""
    assert_one_clear_message(err, path, key, words)


def test_a_database_url_that_is_wrong_is_not_repeated_with_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database:\n  url: mysql://root:hunter2@db/tracker\n")
    code, _, err = check_config(path, capsys)
    assert code == EXIT_CONFIG
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("variable", "value", "key", "words"),
    [
        ("TRACKER_WEB__PORT", "eighty", "web.port (from TRACKER_WEB__PORT)", "valid integer"),
        ("TRACKER_SYNC__INTERVAL", "-1", "sync.interval (from TRACKER_SYNC__INTERVAL)",
         "not a duration"),
        ("TRACKER_DATABASE_URL", "db.example:5432", "database.url (from TRACKER_DATABASE_URL)",
         "not a PostgreSQL URL"),
        ("TRACKER_WEB__PROT", "8080", "web.prot (from TRACKER_WEB__PROT)", "unknown key"),
        ("TRACKER_SHOPS__99999999__ACCESS_TOKEN", "shpat_x",
         "TRACKER_SHOPS__99999999__ACCESS_TOKEN", "list index 99999999 is too large"),
    ],
)  # fmt: skip
def test_an_environment_override_with_a_bad_value_names_the_variable(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    key: str,
    words: str,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SHOP)
    monkeypatch.setenv(variable, value)
    code, _, err = check_config(path, capsys)
    assert code == EXIT_CONFIG
    if variable.startswith("TRACKER_SHOPS__9"):  # refused while the variables are read
        assert err == f"configuration error:\n{key}: {words} (at most 999)\n"
    else:
        assert_one_clear_message(err, path, key, words)


def test_files_that_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        tmp_path / "missing.yaml": "no such file",
        tmp_path / "a-directory.yaml": "cannot read",
        tmp_path / "latin1.yaml": "cannot read",
        tmp_path / "dangling.yaml": "no such file",
    }
    (tmp_path / "a-directory.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"web:\n  host: caf\xe9\n")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    for path, words in cases.items():
        code, out, err = check_config(path, capsys)
        assert code == EXIT_CONFIG, path
        assert out == ""
        assert "Traceback" not in err
        assert err.startswith(f"configuration error:\n{path}: {words}"), err
        assert err.count("\n") == 2, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_file_without_read_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SHOP)
    path.chmod(0)
    code, _, err = check_config(path, capsys)
    assert code == EXIT_CONFIG
    assert err.startswith(f"configuration error:\n{path}: cannot read: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing configured yet\n", "---\n"])
def test_an_empty_file_means_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """Not a mistake: every key may come from TRACKER_* variables (README, "Configuration")."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    code, out, err = check_config(path, capsys)
    assert (code, err) == (EXIT_OK, "")
    assert out.startswith(f"{path}: OK: 0 shops, carriers: none")


def test_many_mistakes_are_listed_each_on_its_line_up_to_a_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("".join(f"key{n}: 1\n" for n in range(100)))
    code, _, err = check_config(path, capsys)
    assert code == EXIT_CONFIG
    lines = err.rstrip("\n").split("\n")[1:]
    assert len(lines) == 21
    assert lines[0] == f"{path}: key0: unknown key (misspelt? see config.example.yaml)"
    assert lines[-1] == f"{path}: ... and 80 more problems"


def test_yaml_merge_keys_are_not_mistaken_for_a_key_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "shops:\n"
        "  - &shop {domain: a.myshopify.com, access_token: x, api_version: 2026-10}\n"
        "  - <<: *shop\n"
        "    domain: b.myshopify.com\n"
    )
    code, out, err = check_config(path, capsys)
    assert (code, err) == (EXIT_OK, "")
    assert "2 shops" in out


@pytest.mark.parametrize("mistake", ["absurd duration", "key given twice", "bad carrier URL"])
def test_a_real_tracker_process_exits_2_without_a_traceback(tmp_path: Path, mistake: str) -> None:
    text, key, words = MISTAKES[mistake]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert_one_clear_message(result.stderr, path, key, words)
