"""The rehearsal's environment lock: a held one names its holder and stops the run before anything starts;
a preview only reports it."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from fleet import environment_lock as lock
from fleet.rehearse import RehearseFailure
from fleet.state_folder import rehearsal_records
from tests.e2e.conftest import real_engine, rehearsal  # noqa: F401 (fixtures)


@pytest.fixture
def held(rehearsal):  # noqa: F811
    child = subprocess.Popen(["sleep", "60"])
    holder = dataclasses.replace(lock.this_process("rehearse up"), pid=child.pid, session=None,
                                 start_ticks=lock.process_start_ticks(child.pid), token="other-run")  # noqa: S106
    path = lock.lock_path(rehearsal_records(rehearsal.state_dir), "rehearsal")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dataclasses.asdict(holder)))
    yield child
    child.kill()
    child.wait()


def test_a_held_rehearsal_lock_names_its_holder_and_starts_nothing(rehearsal, held, app_db):  # noqa: F811
    with pytest.raises(RehearseFailure) as info:
        rehearsal.up()
    assert f"pid {held.pid}" in str(info.value) and "tenantctl unlock --rehearsal" in str(info.value)
    assert "postgres" not in str(info.value) and app_db.provisioner_dsn not in str(info.value)
    assert not (rehearsal.state_dir / "backend").exists()


def test_a_preview_runs_beside_a_held_lock_and_only_reports_it(rehearsal, held, app_db):  # noqa: F811
    from fleet.rehearse import run_rehearse

    path = lock.lock_path(rehearsal_records(rehearsal.state_dir), "rehearsal")
    before = path.read_bytes()
    said = []
    result = run_rehearse(rehearsal.tenants_dir, rehearsal.database_url, app_db.app_dsn, False, progress=said.append,
                          state_base=rehearsal.state_base, preview=True)
    assert result.ok and path.read_bytes() == before
    assert any(f"pid {held.pid}" in line and "`up` would refuse" in line for line in said)
