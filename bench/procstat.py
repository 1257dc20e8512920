"""CPU counters from ``/proc`` (Linux): the machine's, and a local PostgreSQL server's."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class MachineCpu:
    busy: float  # seconds of all cores, neither idle nor waiting for I/O
    total: float

    @classmethod
    def read(cls) -> MachineCpu:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
        idle = fields[3] + fields[4]
        return cls((total - idle) / TICKS, total / TICKS)


def busy_percent(before: MachineCpu, after: MachineCpu) -> float | None:
    """Share of all cores' time spent busy between the two readings."""
    total = after.total - before.total
    return round(100 * (after.busy - before.busy) / total, 1) if total > 0 else None


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def postmaster_of(backend_pid: int) -> int | None:
    """The parent of a local PostgreSQL backend, if that process is visible here."""
    fields = _stat(backend_pid)
    return int(fields[1]) if fields else None


def server_cpu_seconds(postmaster: int) -> float | None:
    """CPU time of the server: the postmaster, its live children and its reaped ones."""
    own = _stat(postmaster)
    if own is None:
        return None
    # Fields after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15).
    ticks = sum(int(v) for v in own[11:15])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS
