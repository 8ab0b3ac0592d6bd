"""`tenantctl rehearse`: the whole program with the dynamic providers run for real, against PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenantctl.cli import app
from tenantctl.rehearse_command import run_rehearse

runner = CliRunner()


def rows(app_db):
    return {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")}


def tenant_ids(tenants_dir: Path) -> dict[str, str]:
    from tenantctl.loader import load_tenants

    return {t.tenant.slug: str(t.tenant.tenant_id) for t in load_tenants(tenants_dir=tenants_dir).tenants}


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


def test_first_run_creates_second_changes_nothing(app_db, tenants_dir, state_dir):
    first = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert first.ok, first.as_dict()
    assert {t.slug: t.status for t in first.tenants} == {"acme": "created", "globex": "created"}
    assert all(t.checks == {"rls": True, "webhook": True} for t in first.tenants)
    assert rows(app_db) == set(tenant_ids(tenants_dir).values())
    assert first.changes == 28
    second = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert second.changes == 0 and {t.status for t in second.tenants} == {"unchanged"}


def test_editing_one_tenant_updates_only_it(app_db, tenants_dir, state_dir):
    run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    path = tenants_dir / "globex.yaml"
    path.write_text(path.read_text().replace("max_tokens: 500", "max_tokens: 800"))
    result = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert {t.slug: t.status for t in result.tenants} == {"acme": "unchanged", "globex": "updated"}
    prefs = app_db.execute("SELECT enhancement_preferences FROM tenant_configs WHERE tenant_id = %s",
                           (tenant_ids(tenants_dir)["globex"],))[0][0]
    assert prefs["max_tokens"] == 800


def test_removing_a_tenant_file_removes_exactly_that_tenant(app_db, tenants_dir, state_dir):
    ids = tenant_ids(tenants_dir)
    run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    (tenants_dir / "globex.yaml").unlink()
    result = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert result.removed_tenants == ["globex"]
    assert rows(app_db) == {ids["acme"]}


def test_removal_is_refused_while_history_exists(app_db, tenants_dir, state_dir):
    ids = tenant_ids(tenants_dir)
    run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (ids["globex"],))
    saved = (tenants_dir / "globex.yaml").read_text()
    (tenants_dir / "globex.yaml").unlink()
    refused = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert not refused.ok and "still has history rows" in refused.delete_error
    assert ids["globex"] in rows(app_db)
    # Mark for purge, apply, then remove: the documented way to offboard with data.
    (tenants_dir / "globex.yaml").write_text(saved + "offboarding:\n  purge_data: true\n")
    assert run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir).ok
    (tenants_dir / "globex.yaml").unlink()
    purged = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert purged.ok and purged.removed_tenants == ["globex"]
    assert rows(app_db) == {ids["acme"]} and app_db.history_row_count() == 0


def test_failed_check_fails_the_rehearsal_with_a_report(app_db, tenants_dir, state_dir):
    app_db.execute("ALTER TABLE system_inventory NO FORCE ROW LEVEL SECURITY")
    app_db.execute("ALTER TABLE system_inventory DISABLE ROW LEVEL SECURITY")
    result = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert not result.ok
    assert {t.status for t in result.tenants} == {"failed"}
    assert any("rls_enabled_and_forced" in e for t in result.tenants for e in t.errors)


def test_destroy_removes_everything(app_db, tenants_dir, state_dir):
    run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    result = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, True, state_base=state_dir)
    assert result.ok and sorted(result.removed_tenants) == ["acme", "globex"]
    assert rows(app_db) == set()


def test_invalid_tenant_file_changes_nothing(app_db, tenants_dir, state_dir):
    (tenants_dir / "broken.yaml").write_text("- nope\n")
    result = runner.invoke(app, ["rehearse", "--tenants-dir", str(tenants_dir), "--database-url",
                                 app_db.provisioner_dsn, "--state-dir", str(state_dir)])
    assert result.exit_code == 1 and "broken.yaml:1:" in result.stderr
    assert rows(app_db) == set()


def test_json_output(app_db, tenants_dir, state_dir):
    args = ["rehearse", "--tenants-dir", str(tenants_dir), "--database-url", app_db.provisioner_dsn,
            "--app-database-url", app_db.app_dsn, "--state-dir", str(state_dir), "--json"]
    first = json.loads(runner.invoke(app, args).stdout)
    assert first["changes"] == 28 and {t["status"] for t in first["tenants"]} == {"created"}
    assert json.loads(runner.invoke(app, args).stdout)["changes"] == 0


def test_state_file_is_private(app_db, tenants_dir, state_dir):
    run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    [state_file] = state_dir.glob("*/state.json")
    assert oct(state_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.xdist_group("embedded-postgres")
def test_embedded_default_from_the_command_line(repo_root):
    """No URL: the rehearsal starts its own PostgreSQL, keeps it between runs, and --destroy removes it."""
    base = Path(tempfile.mkdtemp(prefix="rehearse-"))
    os.chmod(base, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    try:
        command = [sys.executable, "-m", "tenantctl", "rehearse", "--json", "--state-dir", str(base)]
        first = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["changes"] == 28
        second = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert json.loads(second.stdout)["changes"] == 0
        gone = subprocess.run([*command, "--destroy"], cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert gone.returncode == 0, gone.stderr
        assert not (base / "embedded").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_database_url_change_and_a_rename_lose_no_row(app_db, tenants_dir, state_dir):
    ids = tenant_ids(tenants_dir)
    first = run_rehearse(tenants_dir, app_db.provisioner_dsn, app_db.app_dsn, False, state_base=state_dir)
    assert first.ok and first.rows_lost == 0
    for tenant_id in ids.values():
        app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s), (%s)", (tenant_id, tenant_id))
    text = (tenants_dir / "acme.yaml").read_text().replace("slug: acme", "slug: acme-corp")
    (tenants_dir / "acme.yaml").unlink()
    (tenants_dir / "acme-corp.yaml").write_text(text + "previous_slugs: [acme]\n")
    moved_url = app_db.provisioner_dsn + "?sslmode=disable"

    second = run_rehearse(tenants_dir, moved_url, app_db.app_dsn, False, state_base=state_dir)

    assert second.ok, second.as_dict()
    assert second.rows_lost == 0 and second.as_dict()["rows_lost"] == 0
    assert rows(app_db) == set(ids.values())
    assert app_db.history_row_count() == 4
    assert {t.slug: t.checks for t in second.tenants}["acme-corp"] == {"rls": True, "webhook": True}
