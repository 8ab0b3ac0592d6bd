"""Two environments on one database (fleet rule 1), on the real engine: the first rehearsal claims the
database, a second one (another state folder, so another environment id) is refused with both ids named and
changes no row, and the first goes on as before."""

from __future__ import annotations

import json

from fleet.state_folder import rehearsal_records
from services import aws_emulator
from tests.e2e.conftest import Rehearsal


def snapshot(app_db):
    return app_db.execute("SELECT tenant_id, name, provisioning_owner, updated_at FROM tenant_configs ORDER BY 1")


def recorded_id(rehearsal: Rehearsal) -> str:
    path = rehearsal_records(rehearsal.state_dir) / "environments" / "rehearsal.json"
    return json.loads(path.read_text())["environment_id"]


def test_a_second_environment_on_the_same_database_is_refused_and_changes_no_row(rehearsal, app_db, tenants_dir,
                                                                                  tmp_path):
    from fleet import rehearsal_cluster
    from fleet.rehearsal import STATE_FILE, RehearsalState

    assert rehearsal.up().ok
    first = recorded_id(rehearsal)
    assert not (rehearsal_records(rehearsal.state_dir) / "locks" / "rehearsal.json").exists()  # released
    before = snapshot(app_db)
    other = Rehearsal(app_db, tenants_dir, tmp_path / "other-state", app_db.provisioner_dsn)
    state = RehearsalState.load(other.state_dir / STATE_FILE)
    state.secret("fernetKey", lambda: app_db.fernet_key)
    state.environment[rehearsal_cluster.MODE_KEY] = rehearsal_cluster.RENDERED  # as the fixture's (conftest.py)
    state.save()
    try:
        refused = other.up()
    finally:
        aws_emulator.stop(other.state_dir)
        rehearsal_cluster.stop_kept(other.state_dir)
    second = recorded_id(other)

    assert not refused.ok and first != second
    assert refused.tenants and all(any(first in e and second in e for e in t.errors) for t in refused.tenants)
    assert snapshot(app_db) == before
    assert app_db.execute("SELECT environment_id::text FROM tenantctl_environments") == [(first,)]
    again = rehearsal.up()
    assert again.ok and again.changes == 0 and recorded_id(rehearsal) == first
