"""A run killed while the engine holds a stack's lock recovers with one re-run (fleet rules 5 and 6): tenantctl's
record beside that lock is left by the killed run, and judged and cleared by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fleet.rehearsal import STACK
from tests.conftest import ROOT


def _session_processes(sid: int) -> list[int]:
    """Every live process of a session (the engine starts each plugin in a process group of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[3]) == sid:
                found.append(int(entry.name))
    return found


def _kill_session(sid: int) -> None:
    for pid in _session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _recorded_sessions(runs: Path) -> list[int]:
    sessions = []
    for path in runs.glob("*.json"):
        try:
            sessions.append(json.loads(path.read_text())["session"]["pid"])
        except (OSError, ValueError, KeyError):
            continue
    return sessions


def test_a_run_killed_while_a_stack_is_locked_leaves_no_process_and_recovers_with_one_rerun(rehearsal, app_db,
                                                                                            tmp_path):
    command = [sys.executable, "-m", "tenantctl", "rehearse", "--json", "--tenants-dir", str(rehearsal.tenants_dir),
               "--database-url", rehearsal.database_url, "--app-database-url", app_db.app_dsn,
               "--state-dir", str(rehearsal.state_base)]
    locks = rehearsal.state_dir / "backend" / ".pulumi" / "locks"
    runs = rehearsal.state_dir / "runs"
    log = tmp_path / "killed-run.log"
    with log.open("w") as output:
        run = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output, start_new_session=True)
    sessions: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while not any(p.parent.name.startswith(f"{STACK}.") for p in locks.rglob("*.json")):
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        sessions = _recorded_sessions(runs)
        os.kill(run.pid, signal.SIGKILL)  # tenantctl alone, as a lost runner or an OOM kill would
        run.wait()
        # Its stack workers notice, cancel their engines, and end their sessions: nothing of the run remains.
        deadline = time.monotonic() + 60
        while any(_session_processes(sid) for sid in sessions) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {sid: _session_processes(sid) for sid in sessions}
    finally:
        for sid in [run.pid, *sessions]:
            _kill_session(sid)
    assert sessions and not any(left.values()), left
    records = sorted(p.name for p in locks.rglob("*.tenantctl.json"))
    assert any(name.startswith(f"{STACK}.") for name in records), records  # the killed run's own records

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)

    report = json.loads(again.stdout)
    assert again.returncode == 0, (again.stderr[-2000:], report.get("errors"))
    assert not list(locks.rglob("*.json"))
    notes = [note for tenant in report["tenants"] for note in tenant["recovered"]]
    assert any("interrupted run" in note or "tenantctl's record" in note for note in notes), notes
    assert "Traceback" not in again.stderr
