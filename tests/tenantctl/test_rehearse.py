"""`tenantctl rehearse`: a real `pulumi up`/preview/destroy against local services (see also tests/e2e)."""

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

from services import aws_emulator
from tenantctl.cli import app
from tests.e2e.conftest import real_engine, rehearsal  # noqa: F401 (fixtures)

runner = CliRunner()


def rows(app_db):
    return {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")}


def tenant_ids(tenants_dir: Path) -> dict[str, str]:
    from tenancy.loader import load_tenants

    return {t.tenant.slug: str(t.tenant.tenant_id) for t in load_tenants(tenants_dir=tenants_dir).tenants}


def test_offboarding_is_refused_while_history_exists_then_purged_when_asked(rehearsal, app_db, tenants_dir):  # noqa: F811
    ids = tenant_ids(tenants_dir)
    assert rehearsal.up().ok
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (ids["globex"],))
    where = ["destroy", "globex", "--rehearsal", "--state-dir", str(rehearsal.state_base), "--database-url",
             app_db.provisioner_dsn, "--tenants-dir", str(tenants_dir), "--yes", "--without-export"]

    refused = subprocess.run([sys.executable, "-m", "tenantctl", *where], capture_output=True, text=True, timeout=600)

    assert refused.returncode == 1 and "still has history rows" in refused.stderr, refused.stderr[-2000:]
    assert ids["globex"] in rows(app_db) and app_db.history_row_count() == 1
    purged = subprocess.run([sys.executable, "-m", "tenantctl", *where, "--purge-data"], capture_output=True,
                            text=True, timeout=600)
    assert purged.returncode == 0, purged.stderr[-2000:]
    assert rows(app_db) == {ids["acme"]} and app_db.history_row_count() == 0


def test_a_failed_check_fails_the_rehearsal_with_a_report(rehearsal, app_db):  # noqa: F811
    app_db.execute("ALTER TABLE system_inventory NO FORCE ROW LEVEL SECURITY")
    app_db.execute("ALTER TABLE system_inventory DISABLE ROW LEVEL SECURITY")

    result = rehearsal.up()

    assert not result.ok
    assert {t.status for t in result.tenants} == {"failed"}
    assert any("rls_enabled_and_forced" in e for t in result.tenants for e in t.errors)


def test_preview_changes_no_row(rehearsal, app_db):  # noqa: F811
    result = rehearsal.preview()

    assert result.ok and result.changes > 0 and rows(app_db) == set()


def test_a_restarted_aws_emulator_is_refreshed_and_its_objects_recreated(rehearsal):  # noqa: F811
    assert rehearsal.up().ok
    aws_emulator.stop(rehearsal.state_dir)

    again = rehearsal.up(force=False)  # the refresh of the lost objects forgets the digests: nothing is skipped

    assert again.ok, again.as_dict()
    assert again.summary.get("create", 0) >= 8  # keys, aliases, secrets and versions of both tenants
    assert not again.skipped


def test_invalid_tenant_file_changes_nothing(app_db, tenants_dir, tmp_path):
    (tenants_dir / "broken.yaml").write_text("- nope\n")
    result = runner.invoke(app, ["rehearse", "--tenants-dir", str(tenants_dir), "--database-url",
                                 app_db.provisioner_dsn, "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 1 and "broken.yaml:1:" in result.stderr
    assert rows(app_db) == set()


@pytest.mark.kubernetes_api
def test_state_file_kubeconfig_and_manifests_folder_are_private(rehearsal):  # noqa: F811
    assert rehearsal.up().ok
    assert oct((rehearsal.state_dir / "state.json").stat().st_mode & 0o777) == "0o600"
    assert oct((rehearsal.state_dir / "kubeconfig").stat().st_mode & 0o777) == "0o600"  # names the admin's key
    assert oct((rehearsal.state_dir / "kube").stat().st_mode & 0o777) == "0o700"  # etcd holds Secrets in clear
    assert all(oct(key.stat().st_mode & 0o777) == "0o600" for key in (rehearsal.state_dir / "kube" / "pki").iterdir())
    assert oct((rehearsal.state_dir / "manifests").stat().st_mode & 0o777) == "0o700"


def test_destroy_removes_everything_and_stops_the_emulator(rehearsal, app_db):  # noqa: F811
    assert rehearsal.up().ok
    from fleet.rehearse import run_rehearse

    result = run_rehearse(rehearsal.tenants_dir, rehearsal.database_url, app_db.app_dsn, True,
                          state_base=rehearsal.state_base)

    assert result.ok and sorted(result.removed_tenants) == ["acme", "globex"]
    assert rows(app_db) == set() and not rehearsal.state_dir.exists()
    # The database outlives the rehearsal: its claim goes with the environment (fleet rule 1).
    assert app_db.execute("SELECT count(*) FROM tenantctl_environments") == [(0,)]


@pytest.mark.xdist_group("embedded-postgres")
def test_embedded_default_from_the_command_line(repo_root):
    """No URL: its own PostgreSQL, kept between runs; JSON names the engine; --destroy removes it all."""
    base = Path(tempfile.mkdtemp(prefix="rehearse-"))
    os.chmod(base, 0o755)  # noqa: S103 (the postgres OS user must reach the cluster directory)
    try:
        command = [sys.executable, "-m", "tenantctl", "rehearse", "--json", "--state-dir", str(base)]
        preview = subprocess.run([*command, "--preview"], cwd=repo_root, capture_output=True, text=True, timeout=600)
        assert preview.returncode == 0, preview.stderr
        # A fresh environment: the platform stack is previewed; tenant stacks read it, so they wait for its up.
        waiting = json.loads(preview.stdout)
        assert {t["status"] for t in waiting["tenants"]} == {"skipped"} and waiting["summary"]["create"] >= 2
        first = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        assert report["engine"].startswith("v3.") and report["changes"] > waiting["changes"]
        assert report["rows_lost"] == 0 and {t["status"] for t in report["tenants"]} == {"created"}
        again = subprocess.run([*command, "--preview"], cwd=repo_root, capture_output=True, text=True, timeout=600)
        assert json.loads(again.stdout)["changes"] == 0 and len(json.loads(again.stdout)["tenants"]) == 2
        gone = subprocess.run([*command, "--destroy"], cwd=repo_root, capture_output=True, text=True, timeout=600)
        assert gone.returncode == 0, gone.stderr
        assert not (base / "embedded").exists()
    finally:
        aws_emulator.stop(base / "embedded")
        shutil.rmtree(base, ignore_errors=True)


def test_a_taken_emulator_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        (tmp_path / "aws-emulator").write_text(f"999999 {port}\n")
        with pytest.raises(aws_emulator.AwsEmulatorError, match=f"port {port} is taken"):
            aws_emulator.ensure_running(tmp_path)


def test_two_rehearsals_on_one_state_folder_cannot_collide(rehearsal):  # noqa: F811
    import fcntl

    from fleet.rehearse import RehearseFailure

    rehearsal.state_dir.mkdir(parents=True, exist_ok=True)
    with (rehearsal.state_dir / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RehearseFailure, match="another rehearsal is running"):
            rehearsal.up()


def test_a_database_that_is_not_utf8_is_refused_up_front(local_pg, tenants_dir, tmp_path):
    from psycopg import sql

    from fleet.rehearse import RehearseFailure, run_rehearse

    name = f"ascii_{tmp_path.name[-8:]}".replace("-", "_")
    with __import__("psycopg").connect(local_pg.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
                     .format(sql.Identifier(name)))
    try:
        with pytest.raises(RehearseFailure, match="SQL_ASCII encoding"):
            run_rehearse(tenants_dir, local_pg.dsn(dbname=name), None, False, state_base=tmp_path / "state")
    finally:
        local_pg.drop_database(name)


def test_a_taken_receiver_port_moves_the_receiver_and_reruns_the_checks(rehearsal):  # noqa: F811
    import socket

    from fleet.rehearsal import STATE_FILE, RehearsalState

    assert rehearsal.up().ok
    port = RehearsalState.load(rehearsal.state_dir / STATE_FILE).environment["receiver_port"]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        again = rehearsal.up()

    assert again.ok, again.as_dict()
    assert {t.slug: t.status for t in again.tenants} == {"acme": "updated", "globex": "updated"}
    assert RehearsalState.load(rehearsal.state_dir / STATE_FILE).environment["receiver_port"] != port


def test_ctrl_c_during_a_rehearsal_ends_it_promptly_with_a_way_forward(app_db, tenants_dir, tmp_path, repo_root):
    import signal
    import time

    command = [sys.executable, "-m", "tenantctl", "rehearse", "--tenants-dir", str(tenants_dir),
               "--database-url", app_db.provisioner_dsn, "--app-database-url", app_db.app_dsn,
               "--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "state").glob("*/backend/.pulumi")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the engine is at work
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=90)
    finally:
        process.kill()
        aws_emulator.stop(next((tmp_path / "state").glob("*"), tmp_path))

    assert process.returncode != 0
    assert "Traceback" not in err
    assert "interrupted" in err, err[-2000:]
