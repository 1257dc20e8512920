"""What an operator reads: the start-up banner, and one clean line (no traceback) for each
foreseeable mistake, made for real: a port that is taken, a database that is not there, a
data directory that cannot be created, a completion script run by a real bash."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.processes import TrackerProcess, write_config
from tracker.db.pool import server_label

ROOT = Path(__file__).resolve().parents[1]


def tracker(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket is listening on for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_clean(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_port_in_use_names_the_port_and_the_setting(tmp_path, database_url, taken_port):
    config = write_config(
        tmp_path / "config.yaml",
        {"database": {"url": database_url}, "web": {"port": taken_port}},
    )
    stderr = assert_clean(tracker("run", "--config", str(config), cwd=tmp_path), 4)
    assert f"cannot start: port {taken_port} on 127.0.0.1 is in use" in stderr
    assert "set web.port to a free port" in stderr


def test_sandbox_port_in_use_names_the_option(tmp_path, taken_port):
    result = tracker("sandbox", "--shopify-port", str(taken_port), "--orders", "2", cwd=tmp_path)
    stderr = assert_clean(result, 4)
    assert f"port {taken_port} on 127.0.0.1 is in use" in stderr
    assert "--shopify-port" in stderr


def test_unreachable_database_names_the_host_and_never_the_password(tmp_path):
    port = closed_port()
    url = f"postgresql://alice:pw-do-not-show@127.0.0.1:{port}/shop"
    config = write_config(tmp_path / "config.yaml", {"database": {"url": url}})
    for command in ("run", "migrate"):
        stderr = assert_clean(tracker(command, "--config", str(config), cwd=tmp_path), 3)
        assert stderr.startswith(
            f"database error: cannot connect to PostgreSQL at alice@127.0.0.1:{port}/shop: "
            "connection refused"
        ), stderr
        assert "pw-do-not-show" not in stderr


def test_a_url_that_is_not_postgresql_is_a_clean_error(tmp_path):
    config = write_config(
        tmp_path / "config.yaml",
        {"database": {"url": "mysql://alice:pw-do-not-show@127.0.0.1/shop"}},
    )
    # Caught when the configuration is read: a configuration error, naming the key, not the URL.
    stderr = assert_clean(tracker("migrate", "--config", str(config), cwd=tmp_path), 2)
    assert "database.url: is not a PostgreSQL URL" in stderr
    assert "pw-do-not-show" not in stderr


def test_data_dir_that_cannot_be_created_names_the_path(tmp_path):
    # A directory under a regular file cannot be created, even by root (chmod would not stop root).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = write_config(
        tmp_path / "config.yaml", {"database": {"data_dir": str(blocker / "sub" / "pg")}}
    )
    stderr = assert_clean(tracker("run", "--config", str(config), cwd=tmp_path), 4)
    assert f"cannot create the database directory {blocker / 'sub'}" in stderr
    assert "database.data_dir" in stderr


def test_data_dir_that_is_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "pg-is-a-file"
    blocker.write_text("")
    config = write_config(tmp_path / "config.yaml", {"database": {"data_dir": str(blocker)}})
    stderr = assert_clean(tracker("migrate", "--config", str(config), cwd=tmp_path), 4)
    assert f"database directory {blocker} exists and is not a directory" in stderr


def test_sandbox_config_file_under_a_file_is_a_clean_error(tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    result = tracker(
        "sandbox", "--write-config", str(blocker / "sandbox.yaml"), "--orders", "2", cwd=tmp_path
    )
    stderr = assert_clean(result, 4)
    assert f"{blocker}: exists and is not a directory" in stderr


async def test_run_prints_table_database_stores_and_carriers_without_secrets(
    tmp_path, database_url
):
    shopify = f"http://127.0.0.1:{closed_port()}"
    config = write_config(
        tmp_path / "config.yaml",
        {
            "database": {"url": database_url},
            "web": {"port": 0},
            "log": {"level": "WARNING"},
            "shops": [
                {
                    "domain": "one.myshopify.com",
                    "access_token": "shpat_secret_one",
                    "api_url": shopify,
                },
                {
                    "domain": "two.myshopify.com",
                    "access_token": "shpat_secret_two",
                    "api_url": shopify,
                },
            ],
            "carriers": {
                "ups": {"client_id": "ups-id", "client_secret": "ups-secret-value"},
                "dhl": {"api_key": "dhl-key-value"},
            },
        },
    )
    daemon = TrackerProcess(
        "daemon", "run", "--config", str(config), "--log-level", "INFO",
        cwd=tmp_path, logs=tmp_path / "logs",
    )  # fmt: skip
    try:
        url = await daemon.status_table()
        assert url.startswith("http://127.0.0.1:")
        await daemon.wait_for_line("Webhooks: ")
        lines = daemon.stdout().splitlines()
        start = lines.index(f"Status table: {url}")
        assert lines[start + 1 : start + 5] == [
            f"Database: PostgreSQL at {server_label(database_url)}",
            "Stores: one.myshopify.com, two.myshopify.com",
            "Carriers: dhl, ups",
            "Webhooks: off (web.public_url is empty; orders are read every 5m)",
        ]
        assert urlsplit(database_url).path.lstrip("/") in lines[start + 1]
        output = daemon.stdout() + daemon.stderr()
        for secret in ("shpat_secret_one", "shpat_secret_two", "ups-secret-value", "dhl-key-value"):
            assert secret not in output
        # --log-level INFO wins over log.level WARNING from the file.
        assert " INFO tracker.engine.daemon: daemon " in daemon.stderr()
        assert await daemon.stop() == 0
    finally:
        daemon.kill()


def test_log_level_flag_quiets_what_the_file_allows(tmp_path, database_url):
    config = write_config(
        tmp_path / "config.yaml", {"database": {"url": database_url}, "log": {"level": "DEBUG"}}
    )
    loud = tracker("migrate", "--config", str(config), cwd=tmp_path)
    quiet = tracker("migrate", "--config", str(config), "--log-level", "ERROR", cwd=tmp_path)
    assert loud.returncode == quiet.returncode == 0
    assert " DEBUG " in loud.stderr
    assert quiet.stderr == ""


# Shell completion, run by a real bash.


def complete(script: str, words: list[str], cwd: Path) -> list[str]:
    """What bash offers for the last of ``words`` (the word being typed, maybe empty)."""
    program = (
        f"{script}\n"
        "COMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + ")\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_tracker_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def bash_script() -> str:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    result = tracker("completion", "bash")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bash_completes_commands_options_choices_and_files(bash_script, tmp_path):
    (tmp_path / "prod.yaml").write_text("")
    (tmp_path / "other.txt").write_text("")
    commands = complete(bash_script, ["tracker", ""], tmp_path)
    for name in ("run", "demo", "migrate", "check-config", "webhooks", "completion", "--version"):
        assert name in commands
    assert complete(bash_script, ["tracker", "che"], tmp_path) == ["check-config"]
    assert complete(bash_script, ["tracker", "run", "--log-level", ""], tmp_path) == [
        "DEBUG",
        "INFO",
        "WARNING",
        "ERROR",
    ]
    assert complete(bash_script, ["tracker", "run", "--"], tmp_path) == [
        "--config",
        "--help",
        "--log-level",
    ]
    assert complete(bash_script, ["tracker", "run", "--config", "pr"], tmp_path) == ["prod.yaml"]
    assert complete(bash_script, ["tracker", "webhooks", ""], tmp_path)[0] == "register"
    assert "--config" in complete(bash_script, ["tracker", "webhooks", "register", "--"], tmp_path)
    # The value of --config is skipped: the command after it is still known.
    assert complete(bash_script, ["tracker", "sync", "--config", "prod.yaml", "--f"], tmp_path) == [
        "--full"
    ]
    assert complete(bash_script, ["tracker", "completion", ""], tmp_path) == [
        "bash",
        "zsh",
        "--help",
    ]


def test_zsh_script_loads_and_completes(tmp_path):
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (apt-get install zsh): only the bash script was run")
    script = tracker("completion", "zsh").stdout
    (tmp_path / "tracker.zsh").write_text(script)
    # bashcompinit calls the function from its compgen, under `emulate -L sh` (0-based arrays).
    program = (
        "autoload -U compinit && compinit -u\n"
        f"source {tmp_path / 'tracker.zsh'}\n"
        'print -r -- "registered: ${_comps[tracker]}"\n'
        "as_bashcompinit() { emulate -L sh; setopt kshglob noshglob braceexpand\n"
        "  COMP_WORDS=(tracker run --log-level ''); COMP_CWORD=3; COMPREPLY=()\n"
        "  _tracker_complete\n"
        '  print -l -- "${COMPREPLY[@]}"; }\n'
        "as_bashcompinit\n"
    )
    result = subprocess.run(
        [zsh, "-f", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "registered: _bash_complete -F _tracker_complete"
    assert lines[1:] == ["DEBUG", "INFO", "WARNING", "ERROR"]


def test_completion_of_an_unknown_shell_is_a_usage_error():
    result = tracker("completion", "fish")
    assert result.returncode == 2
    assert "invalid choice: 'fish'" in result.stderr
