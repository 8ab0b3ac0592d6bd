"""db/app_schema.sql on a real PostgreSQL: idempotent loading, role attributes, RLS and set_tenant_context."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors, sql

from tenancy import app_schema
from tenancy.app_schema import (
    APP_ROLE,
    HISTORY_TABLES,
    OWNER_ROLE,
    PROVISIONER_ROLE,
    TENANT_TABLES,
    TENANT_VARIABLE,
)


def _policy_count(app_db) -> int:
    return app_db.execute("SELECT count(*) FROM pg_policies WHERE tablename = ANY(%s)", (list(TENANT_TABLES),))[0][0]


def test_schema_loads_twice_without_error(app_db):
    tenant = app_db.add_tenant()

    app_schema.load_schema(app_db.superuser_dsn)
    app_schema.load_schema(app_db.superuser_dsn)

    assert _policy_count(app_db) == len(TENANT_TABLES)
    assert app_db.execute("SELECT tenant_id FROM tenant_configs") == [(tenant.tenant_id,)]


def test_ensure_schema_loads_only_when_absent(local_pg):
    name = f"empty_{uuid.uuid4().hex[:12]}"
    dsn = local_pg.create_database(name)
    try:
        assert not app_schema.schema_present(dsn)
        assert app_schema.ensure_schema(dsn) is True
        assert app_schema.schema_present(dsn)
        assert app_schema.ensure_schema(dsn) is False
    finally:
        local_pg.drop_database(name)


def test_load_schema_failure_names_the_database_not_the_password(app_db, tmp_path):
    broken = tmp_path / "broken.sql"
    broken.write_text("CREATE TABLE tenant_configs (;")
    dsn = app_db.superuser_dsn.replace("postgres@", "postgres:hunter2-password@")

    with pytest.raises(app_schema.db.DatabaseError) as raised:
        app_schema.load_schema(dsn, broken)

    assert "broken.sql" in str(raised.value) and app_db.name in str(raised.value)
    assert "hunter2-password" not in str(raised.value)


@pytest.mark.parametrize("role", [APP_ROLE, PROVISIONER_ROLE])
def test_application_roles_are_not_superuser_bypassrls_or_owner(app_db, role):
    attributes = app_db.execute("SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (role,))
    owned = app_db.execute("SELECT relname FROM pg_class WHERE relowner = to_regrole(%s)", (role,))

    assert attributes == [(True, False, False)]
    assert owned == []


def test_rls_is_enabled_and_forced_on_every_tenant_table(app_db):
    rows = app_db.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = ANY(%s::regclass[])",
        (list(TENANT_TABLES),),
    )

    assert sorted(rows) == sorted((table, True, True) for table in TENANT_TABLES)


def test_set_tenant_context_refuses_unknown_tenant_and_keeps_previous_context(app_db):
    tenant = app_db.add_tenant()
    with psycopg.connect(app_db.app_dsn) as conn:
        conn.execute("SELECT set_tenant_context(%s)", (tenant.tenant_id,))

        with pytest.raises(errors.NoDataFound, match="unknown tenant"), conn.transaction():
            conn.execute("SELECT set_tenant_context(%s)", (uuid.uuid4(),))

        current = conn.execute("SELECT current_setting(%s)", (TENANT_VARIABLE,)).fetchone()[0]
    assert current == str(tenant.tenant_id)


def test_tenant_tables_and_set_tenant_context_belong_to_a_nologin_owner_bound_by_rls(app_db):
    owners = app_db.execute(
        "SELECT DISTINCT r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls FROM pg_class c"
        " JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = ANY(%s::regclass[])",
        (list(TENANT_TABLES),),
    )
    function_owner = app_db.execute(
        "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'set_tenant_context(uuid)'::regprocedure"
    )

    assert owners == [(OWNER_ROLE, False, False, False)]
    assert function_owner == [(OWNER_ROLE,)]


def test_set_tenant_context_lasts_for_the_transaction_only(app_db):
    # Pooled connections: the next transaction on this connection may serve another tenant.
    tenant = app_db.add_tenant()
    with psycopg.connect(app_db.app_dsn) as conn:
        conn.execute("SELECT set_tenant_context(%s)", (tenant.tenant_id,))
        inside = conn.execute("SELECT tenant_id FROM tenant_configs").fetchall()
        conn.commit()
        after = conn.execute("SELECT tenant_id FROM tenant_configs").fetchall()

    assert inside == [(tenant.tenant_id,)]
    assert after == []


@pytest.mark.parametrize("role", [APP_ROLE, PROVISIONER_ROLE, "public"])
def test_no_role_may_truncate_reference_or_trigger_tenant_tables(app_db, role):
    granted = app_db.execute(
        "SELECT t.name, p.priv FROM unnest(%s::text[]) AS t(name), unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER'])"
        " AS p(priv) WHERE EXISTS (SELECT FROM aclexplode(coalesce((SELECT relacl FROM pg_class"
        " WHERE oid = to_regclass(t.name)), '{}')) a WHERE a.privilege_type = p.priv"
        " AND a.grantee = CASE WHEN %s = 'public' THEN 0 ELSE to_regrole(%s) END)",
        (list(TENANT_TABLES), role, role),
    )

    assert granted == []


def test_app_user_sees_and_writes_only_the_current_tenants_rows(app_db):
    mine, theirs = app_db.add_tenant(), app_db.add_tenant()
    for table in HISTORY_TABLES:
        for tenant in (mine, theirs):
            app_db.execute(sql.SQL("INSERT INTO {} (tenant_id) VALUES (%s)").format(sql.Identifier(table)),
                           (tenant.tenant_id,))

    with psycopg.connect(app_db.app_dsn) as conn:
        conn.execute("SELECT set_tenant_context(%s)", (mine.tenant_id,))
        for table in (*HISTORY_TABLES, "tenant_configs"):
            seen = conn.execute(sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.Identifier(table))).fetchall()
            assert seen == [(mine.tenant_id,)], table
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (theirs.tenant_id,))


def test_no_tenant_context_means_no_rows(app_db):
    tenant = app_db.add_tenant()
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (tenant.tenant_id,))

    with psycopg.connect(app_db.app_dsn, autocommit=True) as conn:
        configs = conn.execute("SELECT count(*) FROM tenant_configs").fetchone()[0]
        history = conn.execute("SELECT count(*) FROM enhancement_history").fetchone()[0]

    assert (configs, history) == (0, 0)


def test_provisioner_inserts_config_only_for_the_tenant_in_context(app_db):
    tenant_id, other_id = uuid.uuid4(), uuid.uuid4()
    insert = (
        "INSERT INTO tenant_configs (tenant_id, name, servicedesk_url, servicedesk_api_key_encrypted,"
        " webhook_signing_secret_encrypted) VALUES (%s, 'Acme', 'https://acme.example.com', 'k', 's')"
    )
    with psycopg.connect(app_db.provisioner_dsn) as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_VARIABLE, str(tenant_id)))
        conn.execute(insert, (tenant_id,))
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"), conn.transaction():
            conn.execute(insert, (other_id,))

    assert app_db.execute("SELECT tenant_id FROM tenant_configs") == [(tenant_id,)]


def test_provisioner_cannot_write_history(app_db):
    tenant = app_db.add_tenant()
    with psycopg.connect(app_db.provisioner_dsn) as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_VARIABLE, str(tenant.tenant_id)))
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant.tenant_id,))
