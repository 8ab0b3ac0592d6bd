"""Which processes are ours: a pid recorded with its start time and this machine's boot id (fleet rule 6).

A pid alone is not an identity: after the process ends, the kernel hands the number to another one, and
a later run that signals the recorded pid would stop a stranger. A record holds the pid, the process's
start time (from /proc) and the boot id; a process is the recorded one only while all three match, and
nothing else is ever signalled.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

# SIGINT first (a clean shutdown), then SIGTERM, then SIGKILL, each with a bounded wait.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    started_ticks: int  # clock ticks after boot, as /proc/<pid>/stat says
    boot_id: str

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ProcessRecord | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data["pid"]), int(data["started_ticks"]), str(data["boot_id"]))
        except (KeyError, TypeError, ValueError):
            return None


def record_of(pid: int) -> ProcessRecord | None:
    """The record of a running process, or None when it is not running."""
    ticks = start_ticks(pid)
    return None if ticks is None else ProcessRecord(pid, ticks, boot_id())


def is_running(record: ProcessRecord) -> bool:
    """The recorded process itself is still running (not another one with its pid)."""
    return record.boot_id == boot_id() and start_ticks(record.pid) == record.started_ticks


def stop(record: ProcessRecord, group: bool = False, wait_s: float = STOP_WAIT_S,
         signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> bool:
    """Stop the recorded process (and its process group when `group`) if it is still the recorded one:
    each of `signals` in turn (SIGINT, SIGTERM, then SIGKILL), each with a bounded wait. True when it is gone."""
    for sig in signals:
        if not is_running(record):
            return True
        try:
            os.killpg(record.pid, sig) if group else os.kill(record.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while is_running(record) and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.05)
    return not is_running(record)


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks after boot; None when no such process runs (a zombie is
    no longer running: it only waits for its parent to read its status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count the fields after its closing one.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the line


def started_at(pid: int) -> datetime | None:
    ticks = start_ticks(pid)
    return None if ticks is None else datetime.fromtimestamp(boot_time() + ticks / os.sysconf("SC_CLK_TCK"), UTC)


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _reap(pid: int) -> None:
    """A child of ours that exited is a zombie until reaped; reap it so it stops counting as running."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
