"""run_rls_checks against a real database: it passes on the contract schema and names each way isolation breaks."""

from __future__ import annotations

import socket
import uuid

import pytest

from checks import rls
from checks.rls import run_rls_checks

LEAKY_CONFIG_POLICY = (
    "CREATE POLICY tenant_isolation ON tenant_configs"
    " USING (tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid OR name LIKE 'Other%')"
    " WITH CHECK (tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)"
)
LENIENT_SET_TENANT_CONTEXT = (
    "CREATE OR REPLACE FUNCTION set_tenant_context(p_tenant_id uuid) RETURNS void"
    " LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp"
    " AS $$ SELECT set_config('app.current_tenant_id', p_tenant_id::text, false) $$"
)

OPEN_WHEN_NEVER_SET = (
    "CREATE POLICY tenant_isolation ON enhancement_history"
    " USING (current_setting('app.current_tenant_id', true) IS NULL"
    "        OR tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)"
    " WITH CHECK (current_setting('app.current_tenant_id', true) IS NULL"
    "        OR tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)"
)
DEFINER_FUNCTION = (
    "CREATE FUNCTION recent_tickets() RETURNS SETOF ticket_history LANGUAGE sql SECURITY DEFINER"
    " SET search_path = public AS $$ SELECT * FROM ticket_history ORDER BY created_at DESC $$"
)

# Each way of breaking isolation: the statements (run as superuser), the checks that must fail, and a
# word the report must use to name the broken object.
BREAKAGES = {
    "rls_disabled_on_one_table": (
        ["ALTER TABLE system_inventory DISABLE ROW LEVEL SECURITY"],
        {rls.RLS_FLAGS, rls.CROSS_TENANT, rls.NO_CONTEXT}, "system_inventory",
    ),
    "rls_not_forced_and_app_owns_table": (
        ["ALTER TABLE enhancement_history NO FORCE ROW LEVEL SECURITY",
         "ALTER TABLE enhancement_history OWNER TO app_user"],
        {rls.APP_ROLE, rls.RLS_FLAGS, rls.CROSS_TENANT}, "enhancement_history",
    ),
    "permissive_policy_using_true": (
        ["CREATE POLICY open_door ON ticket_history USING (true)"],
        {rls.CROSS_TENANT, rls.NO_CONTEXT}, "ticket_history",
    ),
    "policy_dropped_from_one_table": (
        ["DROP POLICY tenant_isolation ON ticket_history"],
        {rls.CROSS_TENANT}, "ticket_history",
    ),
    "app_user_bypassrls": (["ALTER ROLE app_user BYPASSRLS"], {rls.APP_ROLE, rls.CROSS_TENANT}, "BYPASSRLS"),
    "app_user_superuser": (["ALTER ROLE app_user SUPERUSER"], {rls.APP_ROLE, rls.CROSS_TENANT}, "superuser"),
    "set_tenant_context_accepts_unknown_tenants": ([LENIENT_SET_TENANT_CONTEXT], {rls.TENANT_CONTEXT}, "unknown"),
    "tenant_configs_policy_shows_other_tenants": (
        ["DROP POLICY tenant_isolation ON tenant_configs", LEAKY_CONFIG_POLICY],
        {rls.CROSS_TENANT}, "tenant_configs",
    ),
    "permissive_update_policy": (
        ["CREATE POLICY fix_anything ON ticket_history FOR UPDATE USING (true)"],
        {rls.CROSS_TENANT}, "UPDATE",
    ),
    "permissive_delete_policy": (
        ["CREATE POLICY clean_anything ON system_inventory FOR DELETE USING (true)"],
        {rls.CROSS_TENANT}, "DELETE",
    ),
    "permissive_insert_policy": (
        ["CREATE POLICY write_anything ON enhancement_history FOR INSERT WITH CHECK (true)"],
        {rls.CROSS_TENANT}, "INSERT",
    ),
    "reporting_view_owned_by_superuser": (
        ["CREATE VIEW tenant_report AS SELECT tenant_id, status FROM enhancement_history",
         "GRANT SELECT ON tenant_report TO app_user"],
        {rls.OWNER_RIGHTS}, "tenant_report",
    ),
    "security_definer_function_owned_by_superuser": (
        [DEFINER_FUNCTION, "GRANT EXECUTE ON FUNCTION recent_tickets() TO app_user"],
        {rls.OWNER_RIGHTS}, "recent_tickets()",
    ),
    "new_tenant_table_without_rls": (
        ["CREATE TABLE tenant_notes (id serial PRIMARY KEY, tenant_id uuid NOT NULL, note text DEFAULT '')",
         "GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_notes TO app_user",
         "GRANT USAGE ON SEQUENCE tenant_notes_id_seq TO app_user"],
        {rls.RLS_FLAGS, rls.CROSS_TENANT, rls.NO_CONTEXT}, "tenant_notes",
    ),
    "truncate_granted_to_app_user": (
        ["GRANT TRUNCATE ON enhancement_history TO app_user"], {rls.TABLE_PRIVILEGES}, "TRUNCATE",
    ),
    "truncate_granted_to_public": (
        ["GRANT TRUNCATE ON ticket_history TO PUBLIC"], {rls.TABLE_PRIVILEGES}, "PUBLIC",
    ),
    "policy_open_when_context_never_set": (
        ["DROP POLICY tenant_isolation ON enhancement_history", OPEN_WHEN_NEVER_SET],
        {rls.NO_CONTEXT}, "never set",
    ),
    "default_tenant_context_for_the_role": (
        ["ALTER ROLE app_user SET app.current_tenant_id = '00000000-0000-0000-0000-000000000000'"],
        {rls.NO_CONTEXT}, "ALTER ROLE",
    ),
}
SAFE_VARIANTS = {
    "security_invoker_view": [
        "CREATE VIEW tenant_report WITH (security_invoker = true) AS SELECT tenant_id, status FROM enhancement_history",
        "GRANT SELECT ON tenant_report TO app_user",
    ],
    "definer_function_owned_by_the_rls_bound_owner": [
        DEFINER_FUNCTION, "ALTER FUNCTION recent_tickets() OWNER TO app_owner",
        "GRANT EXECUTE ON FUNCTION recent_tickets() TO app_user",
    ],
    "new_tenant_table_with_forced_rls": [
        "CREATE TABLE tenant_notes (id serial PRIMARY KEY, tenant_id uuid NOT NULL, note text DEFAULT '')",
        "ALTER TABLE tenant_notes ENABLE ROW LEVEL SECURITY", "ALTER TABLE tenant_notes FORCE ROW LEVEL SECURITY",
        "CREATE POLICY tenant_isolation ON tenant_notes"
        " USING (tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_notes TO app_user",
        "GRANT USAGE ON SEQUENCE tenant_notes_id_seq TO app_user",
    ],
}
ALL_CHECKS = [rls.APP_ROLE, rls.RLS_FLAGS, rls.OWNER_RIGHTS, rls.TABLE_PRIVILEGES, rls.TENANT_CONTEXT,
              rls.CROSS_TENANT, rls.NO_CONTEXT]


@pytest.fixture(autouse=True)
def _restore_app_user_defaults(app_db):
    yield
    app_db.execute("ALTER ROLE app_user RESET ALL")


def _check(app_db, tenant_id, peers=()):
    """Run the checks and prove they left nothing behind."""
    before = app_db.history_row_count(), app_db.execute("SELECT count(*) FROM tenant_configs")
    report = run_rls_checks(app_db.app_dsn, tenant_id, peer_tenant_ids=peers)
    assert (app_db.history_row_count(), app_db.execute("SELECT count(*) FROM tenant_configs")) == before
    return report


def _failed(report) -> set[str]:
    return {result.name for result in report.failed}


def test_all_checks_pass_on_the_contract_schema(app_db):
    tenant = app_db.add_tenant()
    other = app_db.add_tenant(name="Other Corp")
    app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s), (%s)", (tenant.tenant_id, other.tenant_id))

    report = _check(app_db, tenant.tenant_id, peers=[other.tenant_id])

    assert report.ok, report.render()
    assert [r.name for r in report.results] == ALL_CHECKS


def test_checks_accept_the_tenant_id_as_text(app_db):
    tenant = app_db.add_tenant()

    assert _check(app_db, str(tenant.tenant_id)).ok


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_isolation_breakage_fails_the_check_that_names_it(app_db, breakage):
    statements, expected, named = BREAKAGES[breakage]
    tenant = app_db.add_tenant()
    other = app_db.add_tenant(name="Other Corp")
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s), (%s)",
                   (tenant.tenant_id, other.tenant_id))
    for statement in statements:
        app_db.execute(statement)

    report = _check(app_db, tenant.tenant_id, peers=[other.tenant_id])

    assert not report.ok
    assert expected <= _failed(report), report.render()
    failed_details = " ".join(r.detail for r in report.failed)
    assert named in failed_details, report.render()


@pytest.mark.parametrize("variant", list(SAFE_VARIANTS))
def test_safe_variants_of_those_objects_pass(app_db, variant):
    tenant = app_db.add_tenant()
    for statement in SAFE_VARIANTS[variant]:
        app_db.execute(statement)

    report = _check(app_db, tenant.tenant_id)

    assert report.ok, report.render()


def test_breakages_fail_verify_from_the_command_line(app_db, tenants_dir):
    """verify exits 1 and names the object, for a broken setup found only by behaviour or the catalogue."""
    import subprocess
    import sys

    from tenancy.loader import parse_tenant_file
    from tests.conftest import ROOT

    acme = parse_tenant_file(tenants_dir / "acme.yaml")[0]
    app_db.add_tenant(acme.tenant_id)
    app_db.execute("CREATE POLICY fix_anything ON ticket_history FOR UPDATE USING (true)")
    app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (gen_random_uuid())")

    result = subprocess.run(
        [sys.executable, "-m", "tenantctl", "verify", "acme", "--tenants-dir", str(tenants_dir), "--checks", "rls",
         "--app-database-url", app_db.app_dsn],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "ticket_history" in result.stdout and "blind UPDATE" in result.stdout
    assert "Traceback" not in result.stderr


def test_lenient_set_tenant_context_fails_only_that_check(app_db):
    tenant = app_db.add_tenant()
    app_db.execute(LENIENT_SET_TENANT_CONTEXT)

    report = _check(app_db, tenant.tenant_id)

    assert _failed(report) == {rls.TENANT_CONTEXT}
    assert "accepted the unknown tenant id" in report.render()


def test_unprovisioned_tenant_fails_context_and_isolation_checks(app_db):
    report = _check(app_db, uuid.uuid4())

    assert {rls.TENANT_CONTEXT, rls.CROSS_TENANT} <= _failed(report)
    assert "not visible under its own context" in report.render()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_database_is_a_failed_report_without_the_password():
    port = _closed_port()

    report = run_rls_checks(f"postgresql://app_user:hunter2-password@127.0.0.1:{port}/app", uuid.uuid4(),
                            connect_timeout=2)

    assert [(r.name, r.ok) for r in report.results] == [(rls.CONNECTION, False)]
    assert f"127.0.0.1:{port}" in report.render()
    assert "hunter2-password" not in report.render()


def test_malformed_database_url_is_not_echoed():
    report = run_rls_checks("app_user:hunter2-password@db.internal", uuid.uuid4())

    assert _failed(report) == {rls.CONNECTION}
    assert "hunter2-password" not in report.render()


def test_tenant_id_that_is_not_a_uuid_is_a_failed_report():
    report = run_rls_checks("postgresql://app_user@127.0.0.1:1/app", "acme")

    assert not report.ok
    assert "not a UUID" in report.render()
