"""What ``/proc`` says about a process and the machine: CPU time, memory, listen drops."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_busy", "cpu_seconds", "listen_drops", "rss_kib"]

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` (on loopback, system time includes the
    softirq TCP work run in its context, the receiver's side included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_busy() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine, all cores, since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    total = sum(ticks[:8])
    return (total - idle) / _TICK, total / _TICK


def listen_drops() -> int:
    """SYNs and ACKs the kernel dropped on full accept queues, machine-wide, since boot.

    A server whose accept backlog is too short for a connect storm shows here:
    each drop costs the client a retransmission (1 s or more).
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            table = dict(zip(head.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0)) + int(table.get("ListenDrops", 0))
    return 0
