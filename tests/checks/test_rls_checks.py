"""run_rls_checks against a real database: it passes on the contract schema and names each way isolation breaks."""

from __future__ import annotations

import socket
import uuid

import pytest

from tenantctl.checks import rls
from tenantctl.checks.rls import run_rls_checks

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

# Each way of breaking isolation, and the checks that must name it.
BREAKAGES = {
    "rls_disabled_on_one_table": (
        ["ALTER TABLE system_inventory DISABLE ROW LEVEL SECURITY"],
        {rls.RLS_FLAGS, rls.CANARY},
    ),
    "rls_not_forced_and_app_owns_table": (
        ["ALTER TABLE enhancement_history NO FORCE ROW LEVEL SECURITY",
         "ALTER TABLE enhancement_history OWNER TO app_user"],
        {rls.APP_ROLE, rls.RLS_FLAGS, rls.CANARY},
    ),
    "permissive_policy_using_true": (
        ["CREATE POLICY open_door ON ticket_history USING (true)"],
        {rls.POLICIES, rls.CANARY},
    ),
    "policy_dropped_from_one_table": (
        ["DROP POLICY tenant_isolation ON ticket_history"],
        {rls.POLICIES, rls.CANARY},
    ),
    "app_user_bypassrls": (["ALTER ROLE app_user BYPASSRLS"], {rls.APP_ROLE, rls.CANARY}),
    "app_user_superuser": (["ALTER ROLE app_user SUPERUSER"], {rls.APP_ROLE, rls.CANARY}),
    "set_tenant_context_accepts_unknown_tenants": ([LENIENT_SET_TENANT_CONTEXT], {rls.TENANT_CONTEXT}),
    "tenant_configs_policy_shows_other_tenants": (
        ["DROP POLICY tenant_isolation ON tenant_configs", LEAKY_CONFIG_POLICY],
        {rls.CONFIG_VISIBILITY},
    ),
}


def _check(app_db, tenant_id):
    """Run the checks and prove they left no canary behind."""
    before = app_db.history_row_count()
    report = run_rls_checks(app_db.app_dsn, tenant_id)
    assert app_db.history_row_count() == before
    return report


def _failed(report) -> set[str]:
    return {result.name for result in report.failed}


def test_all_checks_pass_on_the_contract_schema(app_db):
    tenant = app_db.add_tenant()
    app_db.add_tenant(name="Other Corp")

    report = _check(app_db, tenant.tenant_id)

    assert report.ok, report.render()
    assert [r.name for r in report.results] == [
        rls.APP_ROLE, rls.RLS_FLAGS, rls.POLICIES, rls.TENANT_CONTEXT, rls.CANARY, rls.CONFIG_VISIBILITY,
    ]


def test_checks_accept_the_tenant_id_as_text(app_db):
    tenant = app_db.add_tenant()

    assert _check(app_db, str(tenant.tenant_id)).ok


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_isolation_breakage_fails_the_check_that_names_it(app_db, breakage):
    statements, expected = BREAKAGES[breakage]
    tenant = app_db.add_tenant()
    app_db.add_tenant(name="Other Corp")
    for statement in statements:
        app_db.execute(statement)

    report = _check(app_db, tenant.tenant_id)

    assert not report.ok
    assert expected <= _failed(report), report.render()
    for name in expected:
        assert name in report.render()


def test_lenient_set_tenant_context_fails_only_that_check(app_db):
    tenant = app_db.add_tenant()
    app_db.execute(LENIENT_SET_TENANT_CONTEXT)

    report = _check(app_db, tenant.tenant_id)

    assert _failed(report) == {rls.TENANT_CONTEXT}
    assert "accepted the unknown tenant id" in report.render()


def test_unprovisioned_tenant_fails_context_and_config_checks(app_db):
    report = _check(app_db, uuid.uuid4())

    assert {rls.TENANT_CONTEXT, rls.CONFIG_VISIBILITY} <= _failed(report)


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
