"""The engine's own stack locks on a file backend, and tenantctl's record beside each (fleet rule 5).

A `pulumi up` that is killed leaves `.pulumi/locks/organization/<project>/<stack>/<id>.json` behind, and
every later run of that stack fails on it. Before the engine takes that lock, tenantctl writes its own
record beside the lock's folder, `<stack>.tenantctl.json` (the engine counts every file *inside* the folder
as a lock, so the record stays outside it): the same record as the environment lock's (holder, host, boot
id, pid and start time, session, CI run). It is removed when the operation ends; a killed run leaves it.

A lock is judged here, and only here:
- with tenantctl's record: as the environment lock judges its holder (`environment_lock.stale_reason`: same
  host and another boot, a dead pid whose session holds nothing started after it, a pid reused by a later
  process, a completed CI run), and never while the engine's own pid on this host is still the lock's;
- without it (a `pulumi` run by hand, an older tenantctl): by the engine's pid and timestamp, on this host
  and boot only: its pid is not running, or now belongs to a process started after the lock was taken.
Anything else is reported with how to clear it by hand, and kept. A record without an engine lock is a run
killed before its engine locked, or after it unlocked: judged the same way, and removed once stale.
A preview takes no lock and clears none (rule 2): it reports what `up` would clear.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from components.naming import PROJECT
from fleet import engine, environment_lock
from fleet.atomic_files import link_new
from services import process_records

RECORD_SUFFIX = ".tenantctl.json"


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


def recover(backend: engine.Backend, stack: str, clear: bool = True,
            run_completed: environment_lock.RunCompleted | None = None) -> list[str]:
    """Notes on the stack's stale locks, cleared when `clear`; StackLocked when one may be held."""
    notes = []
    path = record_path(backend, stack)
    holder = _read_record(path) if path is not None else None
    judged = _judge_by_record(holder, run_completed) if holder is not None else None
    locks = stack_locks(backend, stack)
    for lock in locks:
        gone = (judged if not _engine_alive(lock) else None) if holder is not None else why_gone(lock)
        held_by = f"{lock.describe()}, tenantctl's record: {holder.describe()}" if holder else lock.describe()
        if gone is None:
            raise StackLocked(
                f"stack {stack} is locked by {held_by}, which may still be running: wait for it, or, once "
                f"you know it is gone, `pulumi cancel --stack {stack}` (or delete {lock.path})")
        if clear:
            lock.path.unlink(missing_ok=True)
            notes.append(f"cleared a stale lock of stack {stack}: {held_by} ({gone})")
        else:
            notes.append(f"stack {stack} has a stale lock: {held_by} ({gone}); `up` clears it")
    if holder is not None and not locks:
        if judged is None:
            raise StackLocked(f"stack {stack} is being run by {holder.describe()} (tenantctl's record {path}), "
                              f"which may still be running: wait for it, or, once you know it is gone, delete {path}")
        notes.append(f"{'cleared' if clear else 'found'} the record of an interrupted run of stack {stack}: "
                     f"{holder.describe()} ({judged})")
    if path is not None and clear and path.exists():
        if holder is None:  # not written by `holding`, which links only whole records: a hand edit
            notes.append(f"removed the unreadable record {path}")
        path.unlink(missing_ok=True)
    return notes


@contextlib.contextmanager
def holding(backend: engine.Backend, stack: str, operation: str) -> Iterator[None]:
    """tenantctl's record beside the stack's lock for the while: on disk, whole, before the engine locks the
    stack (`recover` first cleared a stale one), removed after it unlocked. Nothing on other backends."""
    path = record_path(backend, stack)
    if path is None:
        yield
        return
    me = environment_lock.this_process(f"{operation} {stack}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not link_new(path, json.dumps(asdict(me), indent=1, sort_keys=True)):
        raise StackLocked(f"stack {stack} is being run by another tenantctl ({path}): wait for it")
    try:
        yield
    finally:
        current = _read_record(path)
        if current is not None and current.token == me.token:
            path.unlink(missing_ok=True)


def record_path(backend: engine.Backend, stack: str) -> Path | None:
    folder = engine.file_backend_dir(backend)
    if folder is None:
        return None
    return folder / ".pulumi" / "locks" / "organization" / PROJECT / f"{stack}{RECORD_SUFFIX}"


def _read_record(path: Path) -> environment_lock.Holder | None:
    try:
        return environment_lock.Holder.from_text(path.read_text(encoding="utf-8"))
    except OSError:
        return None


def _judge_by_record(holder: environment_lock.Holder,
                     run_completed: environment_lock.RunCompleted | None) -> str | None:
    here = environment_lock.this_process("judge")
    return environment_lock.stale_reason(holder, here, run_completed or environment_lock.github_checker())


def _engine_alive(lock: EngineLock) -> bool:
    """The engine's own pid on this host still runs the process that took the lock: whatever a record says."""
    if lock.pid is None or lock.host != socket.gethostname():
        return False
    started = process_records.started_at(lock.pid)
    return started is not None and (lock.taken_at is None or started <= lock.taken_at)


def stack_locks(backend: engine.Backend, stack: str) -> list[EngineLock]:
    folder = engine.file_backend_dir(backend)
    if folder is None:
        return []
    locks = folder / ".pulumi" / "locks" / "organization" / PROJECT / stack
    return [_read(path) for path in sorted(locks.glob("*.json"))] if locks.is_dir() else []


def why_gone(lock: EngineLock) -> str | None:
    """Why the lock's holder is provably gone, by the engine's own record, or None. Only on this host and boot
    (rule 5): the engine records no boot id, and a lock older than this boot may be a clock's error."""
    if lock.pid is None or lock.taken_at is None or lock.host != socket.gethostname():
        return None
    if lock.taken_at < datetime.fromtimestamp(process_records.boot_time(), UTC):
        return None
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
