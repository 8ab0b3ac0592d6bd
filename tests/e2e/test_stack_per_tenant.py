"""One stack per tenant under the real engine: migration from the single stack, and waves that isolate failures."""

from __future__ import annotations

from components.naming import TENANT_STACK_TYPE
from fleet import engine
from fleet.migrate_stacks import migrate, replacing
from fleet.rehearsal import STACK, spec_maker
from fleet.rollout import run_fleet, select
from tenancy.loader import require_tenants
from tests.conftest import ROOT
from tests.e2e.single_stack import services as _services
from tests.e2e.single_stack import single_stack_up as _single_stack_up
from tests.tenant_text import tenant_yaml


def test_migration_moves_every_tenant_into_its_own_stack_without_creating_or_deleting(rehearsal, app_db):
    tenants = require_tenants(rehearsal.tenants_dir)
    created = _single_stack_up(rehearsal, app_db, tenants)
    rows_before = app_db.execute("SELECT tenant_id, updated_at, webhook_signing_secret_encrypted FROM tenant_configs "
                                 "ORDER BY tenant_id")

    with _services(rehearsal, app_db) as (state, services):
        spec_for = spec_maker(ROOT, rehearsal.tenants_dir, state, rehearsal.state_dir, services)
        dry = migrate(STACK, tenants, spec_for, dry_run=True)
        assert engine.list_stacks(spec_for(STACK, None).backend) == [STACK]  # a dry run changes nothing
        result = migrate(STACK, tenants, spec_for, dry_run=False)
        stacks = engine.list_stacks(spec_for(STACK, None).backend)
        leftover = engine.export_state(engine.open_stack(engine.StackSpec(spec_for(STACK, None).backend, STACK),
                                                         create=False))["deployment"]["resources"]
        after = run_fleet(select(STACK, tenants, stacks), "up", spec_for, concurrency=2)

    assert created["create"] >= 30
    assert [m.slug for m in dry.moves] == ["acme", "globex"] and all(m.note is None for m in dry.moves)
    assert result.ok, [(p.stack, {u: o for u, o in p.ops.items() if o != 'same'}) for p in result.previews]
    assert stacks == [STACK, f"{STACK}.acme", f"{STACK}.globex"]
    assert not [r for r in leftover if r["type"] == TENANT_STACK_TYPE]
    # The engine's own counts for every moved stack: nothing to create, delete or replace.
    assert len(result.previews) == 2 and all(p.ok and not replacing(p) for p in result.previews)
    assert all(p.summary.get("same", 0) + p.summary.get("update", 0) >= 12 and p.summary.get("delete", 0) == 0
               for p in result.previews), [p.summary for p in result.previews]
    # (The one create the engine counts is the `pulumi` provider the StackReference registers: no object.)
    assert all(set(p.summary) <= {"same", "read", "create", "update"} and p.summary.get("create", 0) <= 1
               for p in result.previews), [p.summary for p in result.previews]
    # The only updates: the key gains the `stack` tag that finds an interrupted create again (in place); in a
    # preview its outputs are then unknown, so the alias and the secret that read them, and the dynamic
    # provider, show one too.
    updated = {engine.resource_type(urn) for p in result.previews for urn, op in p.ops.items() if op == "update"}
    assert "aws:kms/key:Key" in updated
    assert updated <= {"aws:kms/key:Key", "aws:kms/alias:Alias", "aws:secretsmanager/secret:Secret",
                       "pulumi:providers:pulumi-python"}, updated
    # What is left becomes the platform stack: it only adds the shared namespace.
    assert result.platform.ok
    assert [(u.rsplit("::", 1)[-1], op) for u, op in replacing(result.platform).items()] == [("shared-namespace",
                                                                                              "create")]
    # The new layout's first up: the tenants' objects stay; only the platform stack gains its namespace.
    assert after.ok, after.as_dict()
    assert all(not replacing(o) for o in after.tenants)
    assert rows_before == app_db.execute("SELECT tenant_id, updated_at, webhook_signing_secret_encrypted "
                                         "FROM tenant_configs ORDER BY tenant_id")


def test_a_failing_tenant_does_not_stop_its_wave_and_stops_the_next(rehearsal, app_db, tenants_dir):
    for slug, tier in (("alpha", "premium"), ("beta", "basic"), ("gamma", "basic"), ("delta", "premium")):
        (tenants_dir / f"{slug}.yaml").write_text(tenant_yaml(slug=slug, tier=tier))
    tenants = require_tenants(tenants_dir)

    with _services(rehearsal, app_db) as (state, services):
        make = spec_maker(ROOT, tenants_dir, state, rehearsal.state_dir, services)

        def spec_for(stack, tenant):
            spec = make(stack, tenant)
            if tenant is not None and tenant.slug == "beta":
                spec.secrets = {}  # its API key was never set: its program stops with a clear error
            return spec

        result = run_fleet(select(STACK, tenants, []), "up", spec_for, concurrency=2, platform_applied=False)

    outcomes = {o.slug: o for o in result.tenants}
    assert result.waves[0] == ["acme", "beta"]  # a canary premium and basic tenant first
    assert outcomes["beta"].status == "failed"
    assert any("beta-servicedesk-api-key" in e for e in outcomes["beta"].errors)
    assert outcomes["acme"].ok and outcomes["acme"].counts()["created"] >= 20  # its wave-mate finished
    assert result.stopped_after_wave == 1 and not result.ok
    assert {slug for slug, o in outcomes.items() if o.status == "skipped"} == {"alpha", "delta", "gamma", "globex"}
    assert {str(r[0]) for r in app_db.execute("SELECT tenant_id FROM tenant_configs")} == {
        str(t.tenant_id) for t in tenants if t.slug == "acme"}
