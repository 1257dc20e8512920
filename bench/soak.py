"""Weeks of parcels in minutes: ``tracker demo`` on a fast clock, its memory and work sampled.

    python bench/soak.py [--minutes 30] [--orders 2000] [--speed 60] [--every 30]

Runs ``tracker demo`` (real processes: the daemon and status table, the Shopify and carrier
sandboxes in a child process, embedded PostgreSQL) with the sandbox clocks at ``--speed``
parcel hours per second; the demo's configuration shortens the polling intervals by the same
factor (down to a poll every 3 s), and the end of polling too (the confirming poll a day after
delivery, expiry after 30 days without a scan), and the store keeps selling, so the daemon
syncs, polls, stops polling, writes back and serves as it would for ``minutes x speed / 24``
days. Every ``--every`` seconds it reads the memory (PSS,
``/proc/<pid>/smaps_rollup``) of the daemon, the sandbox process and PostgreSQL, the data
directory's size, ``/api/counts`` and ``/metrics``. At the end it stops the demo with SIGINT,
as Ctrl-C would, and times the shutdown.

Prints one JSON line: the samples, the daemon's memory at the end of the first fifth (after
warm-up), at the end and at most, its growth per hour over the last four fifths (a least-squares
slope), polls and written events per minute, the demo's log lines at WARNING or above, the
shutdown time, and any process of the demo still alive afterwards. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

READY = re.compile(r"Status table: (http://\S+)")
METRICS = {
    "polls": "tracker_polls_total",
    "events_found": "tracker_events_found_total",
    "events_written": "tracker_events_written_total",
    "writeback_backlog": "tracker_writeback_backlog",
    "due": "tracker_due_shipments",
}
LOUD = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--speed", type=float, default=60.0, help="parcel hours per second")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()

    log_path = Path(tempfile.mkstemp(prefix="soak-", suffix=".log")[1])
    with log_path.open("w") as log:
        command = [sys.executable, "-m", "tracker", "demo", "--port", "0"]
        command += ["--orders", str(args.orders), "--speed", str(args.speed)]
        demo = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        url = _wait_for(log_path, demo)
        started = time.monotonic()
        samples = []
        while True:
            samples.append(_sample(url, demo.pid, time.monotonic() - started))
            left = args.minutes * 60 - (time.monotonic() - started)
            if left <= 0 or demo.poll() is not None:
                break
            time.sleep(min(args.every, left))
        family = _family(demo.pid)
    finally:
        stopping = time.monotonic()
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    shutdown = time.monotonic() - stopping
    time.sleep(2)
    left_alive = sorted(pid for pid in family if Path(f"/proc/{pid}").exists())
    loud = [line.rstrip() for line in log_path.read_text(errors="replace").splitlines()
            if LOUD.search(line)]  # fmt: skip
    print(json.dumps(_summary(args, samples, shutdown, demo.returncode, left_alive, loud)))
    log_path.unlink()


def _wait_for(log_path: Path, demo: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        found = READY.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1).rstrip("/")
        if demo.poll() is not None:
            break
        time.sleep(0.5)
    raise SystemExit(f"the demo did not start; its output:\n{log_path.read_text()}")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(text[text.rindex(")") + 2 :].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _family(root: int) -> dict[int, str]:
    """The demo and every process it started, PostgreSQL's included (pg_ctl leaves the server
    to init: it is found by its data directory, under the demo's temporary directory)."""
    tree = _children()
    roots = [root]
    for pid in _all_pids():
        if "tracker-demo-" in _cmdline(pid) and pid != root:
            roots.append(pid)
    family: dict[int, str] = {}
    while roots:
        pid = roots.pop()
        if pid not in family:
            family[pid] = _cmdline(pid)
            roots.extend(tree.get(pid, ()))
    return family


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _data_dir_mb(family: dict[int, str]) -> float | None:
    for command in family.values():
        found = re.search(r"-D\s+(\S*tracker-demo-\S*)", command)
        if found:
            total = 0
            for folder, _, files in os.walk(found.group(1)):
                for name in files:
                    try:
                        total += os.stat(os.path.join(folder, name)).st_size
                    except OSError:
                        continue
            return round(total / 2**20, 1)
    return None


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


def _metrics(text: str) -> dict[str, float]:
    sums = dict.fromkeys(METRICS, 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        for key, metric in METRICS.items():
            if name == metric:
                sums[key] += float(line.rsplit(" ", 1)[1])
    return sums


def _sample(url: str, root: int, seconds: float) -> dict[str, Any]:
    family = _family(root)
    sandbox = [pid for pid, command in family.items() if " sandbox " in f" {command} "]
    postgres = [pid for pid, command in family.items() if "postgres" in command]
    counts = json.loads(_get(f"{url}/api/counts"))
    return {
        "s": round(seconds),
        "daemon_mb": round(_pss_mb(root), 1),
        "sandbox_mb": round(sum(_pss_mb(pid) for pid in sandbox), 1),
        "postgres_mb": round(sum(_pss_mb(pid) for pid in postgres), 1),
        "postgres_processes": len(postgres),
        "data_dir_mb": _data_dir_mb(family),
        "shipments": counts["tabs"].get("all"),
        "tabs": counts["tabs"],
        **_metrics(_get(f"{url}/metrics")),
    }


def _slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return round(slope * 3600, 2)


def _summary(
    args: argparse.Namespace,
    samples: list[dict[str, Any]],
    shutdown: float,
    exit_code: int | None,
    left_alive: list[int],
    loud: list[str],
) -> dict[str, Any]:
    warm = samples[len(samples) // 5] if samples else {}
    settled = [s for s in samples if s["s"] >= warm.get("s", 0)]
    first, last = samples[0], samples[-1]
    minutes = max(last["s"] - first["s"], 1) / 60
    return {
        "minutes": args.minutes,
        "orders": args.orders,
        "speed": args.speed,
        "parcel_days": round(last["s"] * args.speed / 24, 1),
        "daemon_mb_after_warmup": warm.get("daemon_mb"),
        "daemon_mb_last": last["daemon_mb"],
        "daemon_mb_max": max(s["daemon_mb"] for s in samples),
        "daemon_mb_per_hour": _slope_per_hour([(s["s"], s["daemon_mb"]) for s in settled]),
        "sandbox_mb_per_hour": _slope_per_hour([(s["s"], s["sandbox_mb"]) for s in settled]),
        "postgres_mb_last": last["postgres_mb"],
        "data_dir_mb": [first["data_dir_mb"], last["data_dir_mb"]],
        "shipments": [first["shipments"], last["shipments"]],
        "polls_per_min": round((last["polls"] - first["polls"]) / minutes, 1),
        "events_written_per_min": round(
            (last["events_written"] - first["events_written"]) / minutes, 1
        ),
        "writeback_backlog_last": last["writeback_backlog"],
        "loud_log_lines": len(loud),
        "loud_log_sample": loud[:5],
        "shutdown_seconds": round(shutdown, 2),
        "exit_code": exit_code,
        "processes_left": left_alive,
        "samples": samples,
    }


if __name__ == "__main__":
    main()
