"""The upgrade guard on synthetic exported states (no engine); tests/e2e/test_migration_safety.py runs it for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.naming import TENANT_STACK_TYPE
from fleet import engine, upgrade_guard

ROOT_URN = "urn:pulumi:prod::tenant-onboarding::pulumi:pulumi:Stack::tenant-onboarding-prod"


def exported(*resources: dict) -> dict:
    return {"version": 3, "deployment": {"resources": [
        {"urn": ROOT_URN, "type": "pulumi:pulumi:Stack"}, *resources]}}


def tenant_stack(slug: str) -> dict:
    return {"urn": f"urn:pulumi:prod::tenant-onboarding::{TENANT_STACK_TYPE}::{slug}", "type": TENANT_STACK_TYPE,
            "parent": ROOT_URN}


SHARED_NAMESPACE = {"urn": "urn:pulumi:prod::tenant-onboarding::kubernetes:core/v1:Namespace::shared-namespace",
                    "type": "kubernetes:core/v1:Namespace", "parent": ROOT_URN}


def test_a_single_stack_state_names_every_tenant_it_holds():
    assert upgrade_guard.tenant_stacks_in(exported(tenant_stack("globex"), tenant_stack("acme"))) == ["acme", "globex"]


def test_a_platform_stack_state_holds_no_tenant():
    assert upgrade_guard.tenant_stacks_in(exported(SHARED_NAMESPACE)) == []
    assert upgrade_guard.tenant_stacks_in({"version": 3, "deployment": {}}) == []  # a stack never applied


def test_the_refusal_names_the_tenants_and_the_command_on_one_line(monkeypatch):
    monkeypatch.setattr(upgrade_guard, "unmigrated_tenants", lambda spec: ["acme", "globex"])
    spec = engine.StackSpec(engine.Backend(project_root=Path(".")), "prod")
    with pytest.raises(engine.EngineError) as refused:
        upgrade_guard.refuse_unmigrated(spec, "preview")
    message = str(refused.value)
    assert "acme, globex" in message and "`tenantctl migrate-stacks --env prod`" in message
    assert "\n" not in message


@pytest.mark.parametrize("operation", ["destroy", "destroy-preview", "refresh"])
def test_only_up_and_preview_are_guarded(monkeypatch, operation):
    monkeypatch.setattr(upgrade_guard, "unmigrated_tenants", lambda spec: pytest.fail("read the state"))
    upgrade_guard.refuse_unmigrated(engine.StackSpec(engine.Backend(project_root=Path(".")), "prod"), operation)


def test_the_refusal_names_the_rehearsals_own_migrate_command(monkeypatch):
    """The rehearsal is migrated with `tenantctl migrate-stacks --rehearsal`: `--env rehearsal` would name a stack of
    the project's backend instead (fleet rule 1)."""
    monkeypatch.setattr(upgrade_guard, "unmigrated_tenants", lambda spec: ["acme"])
    spec = engine.StackSpec(engine.Backend(project_root=Path(".")), "rehearsal")
    with pytest.raises(engine.EngineError) as refused:
        upgrade_guard.refuse_unmigrated(spec, "up", "tenantctl migrate-stacks --rehearsal")
    assert "run `tenantctl migrate-stacks --rehearsal` first" in str(refused.value)
    assert "--env" not in str(refused.value)
