"""The deployment files: the systemd unit as systemd reads it, the Dockerfile's shape (the image
is not built here: no container engine), what the build context lets in, and the configuration
baked into the image."""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.cli import EXIT_CONFIG
from tracker.config import WebConfig
from tracker.config_load import ConfigError, load_config
from tracker.engine.daemon import SHUTDOWN_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "tracker.service"
DOCKERFILE = ROOT / "Dockerfile"
CONTAINER_CONFIG = ROOT / "deploy" / "config.container.yaml"
INSTALLED_TRACKER = "/opt/tracker/bin/tracker"


def unit_service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys keep their case
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def local_unit(tmp_path: Path) -> Path:
    """The unit with its ExecStart pointing at this environment's ``tracker`` (verify checks it)."""
    here = Path(sys.executable).parent / "tracker"
    if not here.exists():
        found = shutil.which("tracker")
        if found is None:
            pytest.skip("no `tracker` executable installed beside this Python")
        here = Path(found)
    unit = tmp_path / "tracker.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_TRACKER, str(here)))
    return unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = local_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # Unknown or misspelt keys are only warnings: none may concern this unit.
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert not complaints, complaints


def test_systemd_analyze_verify_catches_a_misspelt_key(tmp_path):
    """The check above can fail: a typo in the unit is reported."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = local_unit(tmp_path)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_unit_hardening_exposure_is_ok(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = local_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-1000:] + result.stderr
    # systemd's scale: 0 is locked down, 10 is fully exposed; below 4 it says "OK".
    assert float(match.group(1)) < 4.0, result.stdout


def test_unit_stops_gracefully_restarts_on_failure_and_runs_unprivileged():
    service = unit_service()
    # The daemon does not speak sd_notify, so Type=notify would never become ready.
    sources = "\n".join(p.read_text() for p in (ROOT / "tracker").rglob("*.py"))
    if "NOTIFY_SOCKET" not in sources:
        assert service["Type"] == "simple"
    assert service["ExecStart"] == f"{INSTALLED_TRACKER} run --config /etc/tracker/config.yaml"
    assert service["User"] not in ("root", "0")
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the daemon; it stops its own PostgreSQL
    stop_seconds = int(service["TimeoutStopSec"])
    assert stop_seconds >= SHUTDOWN_GRACE_SECONDS + 10
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == str(EXIT_CONFIG)
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "/var/lib/tracker" in service["ReadWritePaths"].split()
    assert service["StateDirectory"] == "tracker"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def exec_form(arguments: str) -> list[str]:
    import json

    value = json.loads(arguments)
    assert isinstance(value, list), f"{arguments} is not the exec (JSON) form"
    return value


def test_dockerfile_builds_from_slim_python_as_a_non_root_user():
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("pip install ." in run for run in runs)
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0", "0:0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    entrypoint = exec_form(dict(instructions)["ENTRYPOINT"])
    command = exec_form(dict(instructions)["CMD"])
    assert entrypoint + command == ["tracker", "run", "--config", "/etc/tracker/config.yaml"]
    exposed = dict(instructions)["EXPOSE"]
    assert exposed == str(WebConfig.model_fields["port"].default)
    assert "/healthz" in dict(instructions)["HEALTHCHECK"]
    assert dict(instructions)["STOPSIGNAL"] == "SIGTERM"


def copy_sources() -> list[str]:
    sources = []
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def test_every_copied_path_exists_and_passes_dockerignore():
    sources = copy_sources()
    assert {"pyproject.toml", "tracker", "carriers", "migrations"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_clutter_out_of_the_context():
    for path in (
        "config.yaml",
        "sandbox.yaml",
        ".git",
        ".venv-ci",
        "tests",
        "data/postgres",
        "tracker/__pycache__",
        "tracker.env",
    ):
        assert ignored(path), f"{path} would be sent to the image build"


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent of it) decides."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if _matches(path, pattern):
            excluded = not negate
    return excluded


def _matches(path: str, pattern: str) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        tail = pattern[3:]
        return any(fnmatch.fnmatch(part, tail) for part in parts)
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)


def test_container_configuration_needs_web_auth_and_uses_the_volume(tmp_path):
    assert "deploy/config.container.yaml" in copy_sources()
    with pytest.raises(ConfigError) as refused:
        load_config(CONTAINER_CONFIG, env={})
    assert "web.auth is required" in str(refused.value)
    config = load_config(
        CONTAINER_CONFIG,
        env={
            "TRACKER_WEB__AUTH__API_TOKEN": "t" * 20,
            "TRACKER_WEB__AUTH__USERNAME": "merchant",
            "TRACKER_WEB__AUTH__PASSWORD": "correct horse",
            "TRACKER_WEB__AUTH__SESSION_SECRET": "s" * 40,
            "TRACKER_DATABASE_URL": "postgresql://tracker@db.example.com/tracker",
        },
    )
    assert config.web.host == "0.0.0.0"
    assert config.database.data_dir == Path("/var/lib/tracker/postgres")
    # The image creates that directory for its user.
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert "/var/lib/tracker/postgres" in runs
