"""The engine's own stack locks on a file backend: a lock left by a killed run is cleared, a live one is named.

A `pulumi up` that is killed leaves `.pulumi/locks/organization/<project>/<stack>/<id>.json` behind, and
every later run of that stack fails on it. The engine records the holder's pid, host and start time, so
the lock can be judged here, and only here (fleet rule 5): on this host, the holder is provably gone
when the lock predates this machine's boot, when its pid is not running, or when that pid now belongs to
a process started after the lock was taken. Anything else (another host, a live holder, a record that
cannot be read) is reported with how to clear it by hand, and kept. The engine's CLI writes state only
from that pid, so once it is gone no write of the killed run can follow the removal.
A preview takes no lock and clears none (rule 2): it reports what `up` would clear.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from components.naming import PROJECT
from tenantctl import engine, process_records


class StackLocked(engine.EngineError):
    """A stack lock whose holder may still be running."""


@dataclass(frozen=True)
class EngineLock:
    path: Path
    pid: int | None
    host: str | None
    user: str | None
    taken_at: datetime | None

    def describe(self) -> str:
        when = self.taken_at.isoformat(timespec="seconds") if self.taken_at else "an unknown time"
        return f"pid {self.pid} of {self.user or '?'} on {self.host or '?'} since {when}"


def recover(backend: engine.Backend, stack: str, clear: bool = True) -> list[str]:
    """Notes on the stack's stale locks, cleared when `clear`; StackLocked when one may be held."""
    notes = []
    for lock in stack_locks(backend, stack):
        gone = why_gone(lock)
        if gone is None:
            raise StackLocked(
                f"stack {stack} is locked by {lock.describe()}, which may still be running: wait for it, or, once "
                f"you know it is gone, `pulumi cancel --stack {stack}` (or delete {lock.path})")
        if clear:
            lock.path.unlink(missing_ok=True)
            notes.append(f"cleared a stale lock of stack {stack}: {lock.describe()} ({gone})")
        else:
            notes.append(f"stack {stack} has a stale lock: {lock.describe()} ({gone}); `up` clears it")
    return notes


def stack_locks(backend: engine.Backend, stack: str) -> list[EngineLock]:
    folder = engine.file_backend_dir(backend)
    if folder is None:
        return []
    locks = folder / ".pulumi" / "locks" / "organization" / PROJECT / stack
    return [_read(path) for path in sorted(locks.glob("*.json"))] if locks.is_dir() else []


def why_gone(lock: EngineLock) -> str | None:
    """Why the lock's holder is provably gone, or None."""
    if lock.pid is None or lock.taken_at is None or lock.host != socket.gethostname():
        return None
    if lock.taken_at < datetime.fromtimestamp(process_records.boot_time(), UTC):
        return "taken before this machine booted"
    started = process_records.started_at(lock.pid)
    if started is None:
        return "its process is not running"
    if started > lock.taken_at:
        return f"pid {lock.pid} is now a process started after the lock"
    return None


def _read(path: Path) -> EngineLock:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return EngineLock(path, None, None, None, None)
    return EngineLock(path, record.get("pid"), record.get("hostname"), record.get("username"),
                      _timestamp(record.get("timestamp")))


def _timestamp(value: object) -> datetime | None:
    """Go's RFC 3339 with nanoseconds, cut to what Python parses."""
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{main}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
