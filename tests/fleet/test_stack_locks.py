"""Stale engine stack locks on a file backend: cleared only when the holder is provably gone (fleet rule 5)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet import stack_locks
from fleet.engine import Backend
from services import process_records, run_sessions
from tests.conftest import ROOT

STACK = "prod.acme"


def _lock(backend_dir: Path, pid: int, when: datetime, host: str | None = None) -> Path:
    folder = backend_dir / ".pulumi" / "locks" / "organization" / "tenant-onboarding" / STACK
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.urandom(8).hex()}.json"
    # As the engine writes it: Go's RFC 3339 with nanoseconds.
    path.write_text(json.dumps({"pid": pid, "username": "ci", "hostname": host or socket.gethostname(),
                                "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"}))
    return path


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def backend(tmp_path) -> Backend:
    return Backend(project_root=ROOT, backend_dir=tmp_path / "backend", work_dir=tmp_path / "work")


def test_a_lock_whose_engine_died_is_cleared_with_a_message(backend):
    path = _lock(backend.backend_dir, _dead_pid(), datetime.now(UTC))

    notes = stack_locks.recover(backend, STACK)

    assert not path.exists() and len(notes) == 1 and "stale lock" in notes[0] and "not running" in notes[0]


def test_a_lock_whose_pid_now_belongs_to_a_younger_process_is_cleared(backend):
    # This test's own process started after a lock taken earlier since boot: the pid was reused.
    boot = datetime.fromtimestamp(process_records.boot_time(), UTC)
    started = process_records.started_at(os.getpid())
    path = _lock(backend.backend_dir, os.getpid(), boot + (started - boot) / 2)

    notes = stack_locks.recover(backend, STACK)

    assert not path.exists() and "started after the lock" in notes[0]


def test_without_tenantctls_record_a_lock_older_than_this_boot_is_not_judged(backend):
    # Rule 5: the engine's pid and timestamp are evidence on this host and boot only.
    path = _lock(backend.backend_dir, _dead_pid(), datetime(2000, 1, 1, tzinfo=UTC))

    with pytest.raises(stack_locks.StackLocked):
        stack_locks.recover(backend, STACK)
    assert path.exists()


def test_a_live_holder_is_named_and_its_lock_kept(backend):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        path = _lock(backend.backend_dir, holder.pid, datetime.now(UTC) + timedelta(seconds=1))
        with pytest.raises(stack_locks.StackLocked) as held:
            stack_locks.recover(backend, STACK)
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()
    assert f"pid {holder.pid}" in str(held.value) and "pulumi cancel --stack prod.acme" in str(held.value)


def test_a_lock_from_another_host_is_never_judged_here(backend):
    path = _lock(backend.backend_dir, _dead_pid(), datetime.now(UTC), host="other-runner")

    with pytest.raises(stack_locks.StackLocked, match="other-runner"):
        stack_locks.recover(backend, STACK)
    assert path.exists()


def test_a_preview_only_reports_a_stale_lock(backend):
    path = _lock(backend.backend_dir, _dead_pid(), datetime.now(UTC))

    notes = stack_locks.recover(backend, STACK, clear=False)

    assert path.exists() and "`up` clears it" in notes[0]


def test_no_lock_no_note(backend):
    assert stack_locks.recover(backend, STACK) == []


def _record(backend: Backend, **fields) -> Path:
    """tenantctl's record beside the lock, as `holding` writes it, with `fields` changed."""
    from dataclasses import asdict

    from fleet import environment_lock

    path = stack_locks.record_path(backend, STACK)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**asdict(environment_lock.this_process(f"up {STACK}")), **fields}))
    return path


def test_the_record_is_written_beside_the_engines_lock_folder_and_removed_after(backend):
    with stack_locks.holding(backend, STACK, "up"):
        path = stack_locks.record_path(backend, STACK)
        record = json.loads(path.read_text())
    assert path.parent.name == "tenant-onboarding" and path.name == f"{STACK}.tenantctl.json"
    assert {"user", "host", "boot_id", "pid", "start_ticks", "started_at", "session", "ci_run_id"} <= set(record)
    assert record["pid"] == os.getpid() and record["boot_id"] == process_records.boot_id()
    assert not path.exists()


def test_a_killed_runs_record_without_an_engine_lock_is_judged_and_cleared(backend):
    path = _record(backend, pid=_dead_pid(), start_ticks=1)

    notes = stack_locks.recover(backend, STACK)

    assert not path.exists() and "interrupted run" in notes[0] and "no longer running" in notes[0]


def test_the_record_decides_over_the_engines_pid_when_its_session_still_runs(backend):
    # The run's worker (a session leader) is gone, but a process of its session still runs: its engine or a
    # plugin. The engine's pid alone would say "not running"; the record keeps the lock (rules 5 and 6).
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 0.3"], start_new_session=True)
    ticks = process_records.start_ticks(leader.pid)
    leader.wait()
    try:
        lock = _lock(backend.backend_dir, _dead_pid(), datetime.now(UTC))
        _record(backend, pid=leader.pid, session=leader.pid, start_ticks=ticks)
        with pytest.raises(stack_locks.StackLocked, match="tenantctl's record"):
            stack_locks.recover(backend, STACK)
        assert lock.exists()
    finally:
        for member in run_sessions.session_members(leader.pid, None):
            os.kill(member.pid, 9)


def test_with_the_record_a_completed_ci_run_on_another_runner_is_cleared(backend):
    lock = _lock(backend.backend_dir, 4242, datetime.now(UTC), host="runner-7")
    record = _record(backend, host="runner-7", pid=4242, ci_run_id="987", ci_repository="acme/fleet")

    notes = stack_locks.recover(backend, STACK, run_completed=lambda repository, run: (repository, run) == (
        "acme/fleet", "987"))

    assert not lock.exists() and not record.exists() and "acme/fleet#987 has completed" in notes[0]


def test_the_engines_live_pid_keeps_the_lock_whatever_the_record_says(backend):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        lock = _lock(backend.backend_dir, holder.pid, datetime.now(UTC) + timedelta(seconds=1))
        _record(backend, pid=_dead_pid(), start_ticks=1)
        with pytest.raises(stack_locks.StackLocked):
            stack_locks.recover(backend, STACK)
    finally:
        holder.kill()
        holder.wait()
    assert lock.exists()
