"""Reading a tenant's rows under its own context and restoring them into another database, on real PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from cryptography.fernet import Fernet

from fleet.tenant_export import ExportError, current_tenant, read_snapshot, restore_rows
from tenancy.app_schema import APP_ROLE, PROVISIONER_ROLE, TENANT_TABLES
from tests.pgfixtures import AppDatabase


@pytest.fixture
def empty_db(local_pg, app_template):
    """A second, empty application database: the environment an export is imported into."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    local_pg.create_database(name, template=app_template)
    try:
        yield AppDatabase(name, local_pg.dsn(dbname=name), local_pg.dsn(APP_ROLE, name),
                          local_pg.dsn(PROVISIONER_ROLE, name), Fernet.generate_key().decode())
    finally:
        local_pg.drop_database(name)


def add_history(database: AppDatabase, tenant_id, n: int = 2) -> None:
    with psycopg.connect(database.app_dsn) as conn:
        conn.execute("SELECT set_tenant_context(%s)", (tenant_id,))
        for i in range(n):
            conn.execute("INSERT INTO enhancement_history (tenant_id, ticket_id, details) VALUES (%s, %s, %s)",
                         (tenant_id, f"T-{i}", '{"a": 1}'))
            conn.execute("INSERT INTO ticket_history (tenant_id, subject) VALUES (%s, %s)", (tenant_id, f"s{i}"))


def all_rows(database: AppDatabase, tenant_id) -> dict[str, list[tuple]]:
    return {table: database.execute(f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY id",  # noqa: S608
                                    (tenant_id,)) for table in TENANT_TABLES}


def test_a_snapshot_holds_the_tenants_rows_only_and_the_ciphertexts_as_they_are(app_db):
    other = app_db.add_tenant()
    add_history(app_db, other.tenant_id, 3)
    tenant = app_db.add_tenant()
    add_history(app_db, tenant.tenant_id)

    snapshot = read_snapshot(app_db.provisioner_dsn, str(tenant.tenant_id), "file")

    counts = {table: len(rows) for table, rows in snapshot.rows.tables.items()}
    assert counts == {"tenant_configs": 1, "enhancement_history": 2, "ticket_history": 2, "system_inventory": 0}
    assert {row["tenant_id"] for rows in snapshot.rows.tables.values() for row in rows} == {str(tenant.tenant_id)}
    [stored] = app_db.execute("SELECT webhook_signing_secret_encrypted FROM tenant_configs WHERE tenant_id = %s",
                              (tenant.tenant_id,))
    assert snapshot.rows.config_row["webhook_signing_secret_encrypted"] == stored[0]


def test_a_tenant_without_a_row_has_nothing_to_export(app_db):
    with pytest.raises(ExportError, match="has no tenant_configs row for tenant"):
        read_snapshot(app_db.provisioner_dsn, str(uuid.uuid4()), "file")


def test_rows_restored_into_an_empty_database_equal_the_exported_ones_and_new_ids_come_after(app_db, empty_db):
    tenant = app_db.add_tenant()
    add_history(app_db, tenant.tenant_id, 3)
    rows = read_snapshot(app_db.provisioner_dsn, str(tenant.tenant_id), "file").rows

    restored = restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", None, "f")

    assert restored.inserted == {"tenant_configs": 1, "enhancement_history": 3, "ticket_history": 3}
    assert all_rows(empty_db, tenant.tenant_id) == all_rows(app_db, tenant.tenant_id)  # ids, times, ciphertexts
    add_history(empty_db, tenant.tenant_id, 1)  # the application's next insert does not collide
    top = max(row["id"] for row in rows.tables["enhancement_history"])
    assert empty_db.execute("SELECT max(id) FROM enhancement_history")[0][0] > top
    assert empty_db.execute("SELECT provisioning_owner FROM tenant_configs") == [(None,)]  # for the stack to adopt


def test_an_environment_that_has_the_tenant_is_refused_and_nothing_changes(app_db, empty_db):
    tenant = app_db.add_tenant()
    rows = read_snapshot(app_db.provisioner_dsn, str(tenant.tenant_id), "file").rows
    restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", None, "f")
    empty_db.execute("UPDATE tenant_configs SET provisioning_owner = 'stack-token'")  # adopted by its stack
    before = all_rows(empty_db, tenant.tenant_id)

    with pytest.raises(ExportError, match=f"environment dr already has tenant {tenant.tenant_id}"):
        restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", None, "f")

    assert all_rows(empty_db, tenant.tenant_id) == before


def test_a_row_id_held_by_another_tenant_is_refused_and_nothing_changes(app_db, empty_db):
    tenant = app_db.add_tenant()
    add_history(app_db, tenant.tenant_id)
    rows = read_snapshot(app_db.provisioner_dsn, str(tenant.tenant_id), "file").rows
    squatter = empty_db.add_tenant()
    empty_db.execute("UPDATE tenant_configs SET id = %s", (rows.config_row["id"],))

    held = "f: tenant_configs: row id .* is held by another tenant's row in .*; nothing imported"
    with pytest.raises(ExportError, match=held):
        restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", None, "f")

    assert empty_db.history_row_count() == 0
    assert empty_db.execute("SELECT tenant_id FROM tenant_configs") == [(squatter.tenant_id,)]


def test_a_database_of_another_environment_is_refused(app_db, empty_db):
    tenant = app_db.add_tenant()
    rows = read_snapshot(app_db.provisioner_dsn, str(tenant.tenant_id), "file").rows
    empty_db.execute("INSERT INTO tenantctl_environments (environment_id, name) VALUES (%s, 'prod')",
                     (uuid.uuid4(),))

    with pytest.raises(ExportError, match="belongs to environment 'prod'"):
        restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", str(uuid.uuid4()), "f")

    assert empty_db.execute("SELECT count(*) FROM tenant_configs") == [(0,)]


def test_a_rerun_after_an_interruption_finishes_the_import(app_db, empty_db):
    """Killed between the two commits: the history is there, the row is not; the re-run writes the row only."""
    tenant = app_db.add_tenant()
    add_history(app_db, tenant.tenant_id)
    rows = read_snapshot(app_db.provisioner_dsn, str(tenant.tenant_id), "file").rows
    restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", None, "f")
    empty_db.execute("DELETE FROM tenant_configs")

    again = restore_rows(empty_db.provisioner_dsn, empty_db.app_dsn, rows, "dr", None, "f")

    assert again.resumed and again.inserted == {"tenant_configs": 1}
    assert all_rows(empty_db, tenant.tenant_id) == all_rows(app_db, tenant.tenant_id)


def test_the_gate_reads_the_row_and_counts_under_the_tenants_context(app_db):
    tenant = app_db.add_tenant()
    add_history(app_db, tenant.tenant_id)

    now = current_tenant(app_db.provisioner_dsn, str(tenant.tenant_id), "prod")

    assert now.row["tenant_id"] == str(tenant.tenant_id)
    assert now.counts == {"tenant_configs": 1, "enhancement_history": 2, "ticket_history": 2, "system_inventory": 0}
