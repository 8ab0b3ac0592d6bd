"""Stale engine stack locks on a file backend: cleared only when the holder is provably gone (fleet rule 5)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tenantctl import process_records, stack_locks
from tenantctl.engine import Backend
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


def test_a_lock_taken_before_the_last_boot_is_cleared(backend):
    path = _lock(backend.backend_dir, os.getpid(), datetime(2000, 1, 1, tzinfo=UTC))

    notes = stack_locks.recover(backend, STACK)

    assert not path.exists() and "before this machine booted" in notes[0]


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
