"""Every engine process of a run lives in a session the run owns, and dies with the run (fleet rule 6).

Each stack runs in a worker process of its own (`stack_run.process_pool`). A worker starts a new session
before it runs anything, and records it (its pid and start time, and its parent's) in the environment's
`runs/` folder. The Pulumi CLI, the language host and every provider plugin it starts stay in that session:
the engine gives each plugin a process group of its own, but not a session of its own, so a process group
is not enough to find them.

- A worker whose job is done ends whatever is left in its session (a plugin the engine did not reap).
- A worker whose parent died (a SIGKILL of tenantctl, a lost CI runner) notices within a second, ends its
  session with SIGINT (the CLI cancels cleanly and saves its state), then SIGTERM, then SIGKILL, and exits.
- A run that finds the record of a session whose parent is gone ends that session's processes the same
  way before it goes on. Only processes of a recorded session, started after the record, are signalled.

The engine is ended before its plugins, never beside them: a plugin stopped under a live engine fails the
operation it was running, and the engine records a failed create as one that made nothing (it drops the
pending create from the checkpoint), though AWS may have made the object; the next run then makes a
second one (issue 19: a tenant's second KMS key). Signalled alone, the CLI waits for its in-flight
operations, records them, and stops its plugins itself; cut short (SIGTERM, SIGKILL), it leaves them
pending in the checkpoint, where the next `up` finds them (fleet.pending_operations). Only what outlives
it is ended after it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from services import process_records

WATCH_INTERVAL_S = 0.5
GRACE_S = 10.0  # SIGINT: the CLI cancels the update and writes its checkpoint; give it that long


def become_session(runs_dir: Path) -> Path | None:
    """In a worker, before anything runs: a session of its own, recorded, watched for its parent's death.
    Returns the record, which `end_session` drops."""
    os.setsid()
    me, parent = process_records.record_of(os.getpid()), process_records.record_of(os.getppid())
    if me is None or parent is None:
        return None
    runs_dir.mkdir(parents=True, exist_ok=True)
    record = runs_dir / f"{me.pid}.json"
    temporary = record.with_suffix(".tmp")
    temporary.write_text(json.dumps({"session": me.as_dict(), "parent": parent.as_dict()}))
    temporary.replace(record)
    threading.Thread(target=_watch_parent, args=(parent, record), name="parent-watch", daemon=True).start()
    return record


def end_session(record: Path | None = None, grace_s: float = GRACE_S) -> None:
    """In a worker: end every other process of its session, then drop its record."""
    stop_session(os.getsid(0), process_records.record_of(os.getpid()), grace_s, spare=os.getpid())
    if record is not None:
        record.unlink(missing_ok=True)


def reap_dead_runs(runs_dir: Path, say: Callable[[str], None] = lambda _line: None) -> list[str]:
    """End the sessions that a dead run left behind; the notes say what was ended."""
    notes = []
    for path in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        session = process_records.ProcessRecord.from_dict(data.get("session"))
        parent = process_records.ProcessRecord.from_dict(data.get("parent"))
        if session is None or parent is None:
            path.unlink(missing_ok=True)
            continue
        if process_records.is_running(parent) or session.boot_id != process_records.boot_id():
            if session.boot_id != process_records.boot_id():
                path.unlink(missing_ok=True)  # a reboot ended every process of it
            continue
        ended = stop_session(session.pid, session)
        path.unlink(missing_ok=True)
        if ended:
            note = f"ended {len(ended)} process(es) left by an interrupted run (session {session.pid})"
            notes.append(note)
            say(note)
    return notes


def stop_session(sid: int, since: process_records.ProcessRecord | None, grace_s: float = GRACE_S,
                 spare: int | None = None) -> list[int]:
    """End every process of session `sid` started no earlier than `since` (the session's recorded leader) but
    `spare`: first the engine (`engine_processes`), then whatever of the others outlives it (its plugins), each
    with SIGINT, SIGTERM, then SIGKILL and a bounded wait. Returns the pids that were signalled."""
    members = [record for record in session_members(sid, since) if record.pid != spare]
    engines = _engines(members)
    _stop(engines, grace_s)
    _stop([record for record in members if record not in engines], grace_s)
    return [record.pid for record in members]


def engine_processes(sid: int, since: process_records.ProcessRecord | None,
                     spare: int | None = None) -> list[process_records.ProcessRecord]:
    """The processes of session `sid` (as `session_members`, but `spare`) whose parent is none of them: the
    Pulumi CLIs a worker started (and a plugin whose CLI is gone), not the plugins a CLI started."""
    return _engines([record for record in session_members(sid, since) if record.pid != spare])


def _engines(members: list[process_records.ProcessRecord]) -> list[process_records.ProcessRecord]:
    pids = {record.pid for record in members}
    return [record for record in members if _parent_pid(record.pid) not in pids]


def _stop(targets: list[process_records.ProcessRecord], grace_s: float) -> None:
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        alive = [r for r in targets if process_records.is_running(r)]
        if not alive:
            break
        for record in alive:
            try:
                os.kill(record.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while any(process_records.is_running(r) for r in alive) and time.monotonic() < deadline:
            _reap_children()
            time.sleep(0.1)


def session_members(sid: int, since: process_records.ProcessRecord | None) -> list[process_records.ProcessRecord]:
    """The running processes of session `sid`, started no earlier than `since` (a pid reused after the
    session's processes ended is not one of them)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) != sid or fields[0] in ("Z", "X"):
            continue
        record = process_records.record_of(int(entry.name))
        if record is not None and (since is None or record.started_ticks >= since.started_ticks):
            members.append(record)
    return members


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _watch_parent(parent: process_records.ProcessRecord, record: Path) -> None:
    while process_records.is_running(parent):
        time.sleep(WATCH_INTERVAL_S)
    end_session(record)
    os._exit(1)


def _reap_children() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
