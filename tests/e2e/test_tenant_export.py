"""An export round-trips on the real engine: export, offboard behind the export gate, import into an empty
environment, and the tenant's rows come back with their ids, times and history."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleet.rehearse import _state_dir
from services import aws_emulator
from tenancy.app_schema import APP_ROLE, PROVISIONER_ROLE, TENANT_TABLES
from tenancy.loader import parse_tenant_file
from tests.conftest import ROOT
from tests.pgfixtures import AppDatabase


def _tenantctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tenantctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def _rows(database: AppDatabase, tenant_id: str) -> dict[str, list[dict]]:
    with psycopg.connect(database.superuser_dsn) as conn:
        found = {}
        for table in TENANT_TABLES:
            cursor = conn.execute(f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY id", (tenant_id,))  # noqa: S608
            names = [column.name for column in cursor.description]
            found[table] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return found


def test_an_export_round_trips_through_offboarding_into_an_empty_environment(
        rehearsal, tenants_dir, app_db, local_pg, app_template, tmp_path):
    (tenants_dir / "globex.yaml").unlink()  # one tenant
    tenant_id = str(parse_tenant_file(tenants_dir / "acme.yaml")[0].tenant_id)
    assert rehearsal.up().ok
    with psycopg.connect(app_db.app_dsn) as conn:  # the application's history, as it writes it
        conn.execute("SELECT set_tenant_context(%s)", (tenant_id,))
        for n in range(3):
            conn.execute("INSERT INTO enhancement_history (tenant_id, ticket_id, details) VALUES (%s, %s, %s)",
                         (tenant_id, f"T-{n}", '{"tokens": 120}'))
        conn.execute("INSERT INTO ticket_history (tenant_id, subject) VALUES (%s, 'printer')", (tenant_id,))
    before = _rows(app_db, tenant_id)
    key = X25519PrivateKey.generate()
    (tmp_path / "operator.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "operator.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    export_file = tmp_path / "acme.export"
    where = ("--rehearsal", "--state-dir", str(rehearsal.state_base), "--database-url", app_db.provisioner_dsn,
             "--tenants-dir", str(tenants_dir))

    exported = _tenantctl("export", "acme", *where, "--recipient", str(tmp_path / "operator.pub"),
                          "--out", str(export_file))
    offboarded = _tenantctl("destroy", "acme", *where, "--purge-data", "--yes", "--export", str(export_file))

    assert exported.returncode == 0, exported.stderr
    assert offboarded.returncode == 0, offboarded.stdout + offboarded.stderr
    assert "matches tenant acme's row" in offboarded.stderr
    assert not any(_rows(app_db, tenant_id).values())  # offboarded with its history

    # An empty environment: its own database, state folder and tenants folder (the import writes the file).
    name = f"test_{uuid.uuid4().hex[:16]}"
    local_pg.create_database(name, template=app_template)
    empty = AppDatabase(name, local_pg.dsn(dbname=name), local_pg.dsn(APP_ROLE, name),
                        local_pg.dsn(PROVISIONER_ROLE, name), Fernet.generate_key().decode())
    (tmp_path / "dr" / "tenants").mkdir(parents=True)
    state_base = tmp_path / "dr" / "state"
    try:
        imported = _tenantctl("import", str(export_file), "--identity", str(tmp_path / "operator.key"),
                              "--rehearsal", "--state-dir", str(state_base), "--database-url", empty.provisioner_dsn,
                              "--app-database-url", empty.app_dsn, "--tenants-dir", str(tmp_path / "dr" / "tenants"))
        again = _tenantctl("import", str(export_file), "--identity", str(tmp_path / "operator.key"),
                           "--rehearsal", "--state-dir", str(state_base), "--database-url", empty.provisioner_dsn,
                           "--app-database-url", empty.app_dsn, "--tenants-dir", str(tmp_path / "dr" / "tenants"))
        after = _rows(empty, tenant_id)
    finally:
        aws_emulator.stop(_state_dir(state_base, empty.provisioner_dsn))
        local_pg.drop_database(name)

    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert (tmp_path / "dr" / "tenants" / "acme.yaml").read_text() == (tenants_dir / "acme.yaml").read_text()
    assert after["enhancement_history"] == before["enhancement_history"]  # ids, times, details
    assert after["ticket_history"] == before["ticket_history"]
    [row], [old] = after["tenant_configs"], before["tenant_configs"]
    assert (row["id"], row["tenant_id"], row["created_at"]) == (old["id"], old["tenant_id"], old["created_at"])
    assert row["provisioning_owner"] and row["provisioning_owner"] != old["provisioning_owner"]  # adopted anew
    # A second import is refused: the environment has the tenant now, and nothing changes.
    assert again.returncode == 1 and "already has tenant" in again.stderr and "Traceback" not in again.stderr
