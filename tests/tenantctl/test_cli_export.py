"""`tenantctl export|import` at the command line, and the export gate of `tenantctl destroy`."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()
TENANT_ID = "20ab6862-0914-44a5-8827-42ff80980e24"


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", (tmp_path / "backend").as_uri())
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(tenant_yaml("acme", tenant_id=TENANT_ID))
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(repo_root / "stacks", tmp_path / "stacks")
    key = X25519PrivateKey.generate()
    (tmp_path / "operator.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "operator.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return tmp_path


@pytest.fixture
def seeded(app_db):
    app_db.add_tenant(TENANT_ID)
    app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (TENANT_ID,))
    return app_db


def export(project, db, out: str = "acme.export", *extra: str):
    return runner.invoke(app, ["export", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants"),
                               "--database-url", db.provisioner_dsn, "--recipient", str(project / "operator.pub"),
                               "--out", str(project / out), *extra])


def destroy(project, db, *extra: str):
    return runner.invoke(app, ["destroy", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants"),
                               "--database-url", db.provisioner_dsn, "--purge-data", "--yes", *extra])


@pytest.fixture
def offboardings(monkeypatch):
    """The offboarding worker replaced by a recorder (the engine steps are tests/fleet/test_offboard_stack.py's)."""
    from fleet import offboarding
    from fleet.stack_run import StackOutcome

    calls = []

    def fake(spec, **options):
        calls.append(spec.name)
        return StackOutcome(spec.name, "offboard", status="ok")

    monkeypatch.setattr(offboarding, "offboard_in_worker", fake)
    return calls


def test_export_writes_a_private_file_whose_manifest_names_the_tenant_and_never_overwrites(project, seeded):
    result = export(project, seeded)

    assert result.exit_code == 0, result.stderr
    path = project / "acme.export"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    manifest = json.loads(path.read_text())["manifest"]
    assert manifest["tenant_id"] == TENANT_ID and manifest["environment"] == "prod"
    assert manifest["tables"]["ticket_history"] == 1
    [stored] = seeded.execute("SELECT servicedesk_api_key_encrypted FROM tenant_configs")
    assert stored[0] not in path.read_text()
    # Recorded beside the state for `up`'s removal gate: the manifest's identity, row and counts, no secret.
    record_file = project / "backend" / ".tenantctl" / "exports" / "prod" / f"{TENANT_ID}.json"
    record = json.loads(record_file.read_text())
    assert record["row"] == {k: manifest["row"][k] for k in ("id", "sha256", "created_at", "updated_at")}
    assert record["tables"] == manifest["tables"] and record["file"]["name"] == "acme.export"
    assert record["file"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stored[0] not in record_file.read_text() and "encryption" not in record
    before = path.read_bytes()
    again = export(project, seeded)
    assert again.exit_code == 1 and "the file exists" in again.stderr and path.read_bytes() == before


def test_destroy_refuses_without_an_export_or_without_export(project, seeded, offboardings):
    result = destroy(project, seeded)

    assert result.exit_code == 1 and "offboarding needs an export of tenant acme made within 24 h" in result.stderr
    assert "tenantctl export acme --env prod" in result.stderr and offboardings == []
    assert seeded.history_row_count() == 1


def test_destroy_goes_on_with_a_fresh_export_of_the_row_as_it_is(project, seeded, offboardings):
    assert export(project, seeded).exit_code == 0

    result = destroy(project, seeded, "--export", str(project / "acme.export"))

    assert result.exit_code == 0, result.stderr
    assert "matches tenant acme's row" in result.stderr and offboardings == ["prod.acme"]


def test_destroy_without_export_goes_on_and_says_so(project, seeded, offboardings):
    result = destroy(project, seeded, "--without-export")

    assert result.exit_code == 0, result.stderr
    assert "without an export" in result.stderr and offboardings == ["prod.acme"]


def test_destroy_refuses_a_stale_export(project, seeded, offboardings):
    from fleet.tenant_export import read_snapshot
    from tenancy.tenant_export import build_export, dumps, load_recipient

    snapshot = read_snapshot(seeded.provisioner_dsn, TENANT_ID, "")
    document = build_export(snapshot.rows, tenant_id=TENANT_ID, slug="acme", environment="prod", environment_id=None,
                            recipient=load_recipient((project / "operator.pub").read_bytes(), "k"),
                            tool_version="t", now=datetime.now(UTC) - timedelta(hours=25))
    (project / "old.export").write_text(dumps(document))

    result = destroy(project, seeded, "--export", str(project / "old.export"))

    assert result.exit_code == 1 and "25.0 h old" in result.stderr and offboardings == []


def test_destroy_refuses_an_export_older_than_the_row_or_its_history(project, seeded, offboardings):
    assert export(project, seeded).exit_code == 0
    seeded.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (TENANT_ID,))  # the app wrote meanwhile

    result = destroy(project, seeded, "--export", str(project / "acme.export"))

    assert result.exit_code == 1 and "ticket_history: 1 exported, 2 now" in result.stderr and offboardings == []


def test_destroy_refuses_another_tenants_export(project, seeded, app_db, offboardings):
    other = app_db.add_tenant()
    (project / "tenants" / "globex.yaml").write_text(tenant_yaml("globex", tenant_id=str(other.tenant_id)))
    result = runner.invoke(app, ["export", "globex", "--env", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--recipient",
                                 str(project / "operator.pub"), "--out", str(project / "globex.export")])
    assert result.exit_code == 0, result.stderr

    refused = destroy(project, seeded, "--export", str(project / "globex.export"))

    assert refused.exit_code == 1 and f"it is tenant {other.tenant_id}'s, not {TENANT_ID}'s" in refused.stderr
    assert offboardings == []


def test_destroy_refuses_a_tampered_export_and_both_flags(project, seeded, offboardings):
    assert export(project, seeded).exit_code == 0
    path = project / "acme.export"
    document = json.loads(path.read_text())
    document["parts"]["ticket_history"] = document["parts"]["tenant_configs"]
    path.write_text(json.dumps(document))

    tampered = destroy(project, seeded, "--export", str(path))
    both = destroy(project, seeded, "--export", str(path), "--without-export")

    assert tampered.exit_code == 1 and "part ticket_history: checksum mismatch" in tampered.stderr
    assert both.exit_code == 1 and "exclude each other" in both.stderr
    assert offboardings == [] and "Traceback" not in tampered.stderr + both.stderr


def test_import_with_the_wrong_key_changes_nothing(project, seeded, app_db):
    assert export(project, seeded).exit_code == 0
    other = X25519PrivateKey.generate()
    (project / "other.key").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    result = runner.invoke(app, ["import", str(project / "acme.export"), "--identity", str(project / "other.key"),
                                 "--env", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--app-database-url", app_db.app_dsn])

    assert result.exit_code == 1 and "not to the given private key" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_refuses_an_environment_that_has_the_tenant(project, seeded):
    """Exported and imported back into the same database, where the tenant's row is managed by its stack."""
    assert export(project, seeded).exit_code == 0
    seeded.execute("UPDATE tenant_configs SET provisioning_owner = 'stack-token'")
    before = seeded.execute("SELECT * FROM tenant_configs")

    result = runner.invoke(app, ["import", str(project / "acme.export"), "--identity", str(project / "operator.key"),
                                 "--env", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", seeded.provisioner_dsn, "--app-database-url", seeded.app_dsn])

    assert result.exit_code == 1 and f"environment prod already has tenant {TENANT_ID}" in result.stderr
    assert seeded.execute("SELECT * FROM tenant_configs") == before and seeded.history_row_count() == 1
