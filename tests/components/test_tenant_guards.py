"""The engine's guards on a tenant's data-bearing resources, and the offboarding mark that alone lifts them."""

from __future__ import annotations

import pytest

from components.settings import SettingsError, read_offboarding
from components.tenant_stack import KMS_DELETION_WINDOW_DAYS, SECRET_RECOVERY_WINDOW_DAYS

GUARDED = {
    "acme-kms-key": "protect",
    "acme-tenant-config": "protect",
    "acme-namespace": "protect",
    "acme-credentials": "retain_on_delete",
}


def _tenant_run(tenants_dir, slug: str = "acme", **config: str):
    from tests.conftest import ROOT
    from tests.program_runs import run_stack, stack_config

    values, secret_keys = stack_config(ROOT, tenants_dir, **config)
    return {r.name: r for r in run_stack(ROOT, f"dev.{slug}", values, secret_keys).resources}


def _guards(resources) -> dict[str, str]:
    return {name: "protect" if r.protect else "retain_on_delete"
            for name, r in resources.items() if r.protect or r.retain_on_delete}


def test_a_tenant_stack_guards_its_key_row_namespace_and_secret_and_nothing_else(tenants_dir):
    assert _guards(_tenant_run(tenants_dir)) == GUARDED


def test_a_basic_tenant_has_no_namespace_to_guard(tenants_dir):
    assert _guards(_tenant_run(tenants_dir, "globex")) == {
        "globex-kms-key": "protect", "globex-tenant-config": "protect", "globex-credentials": "retain_on_delete"}


def test_the_offboarding_mark_lifts_every_guard(tenants_dir):
    resources = _tenant_run(tenants_dir, offboarding="true")
    assert set(GUARDED) <= set(resources)
    assert _guards(resources) == {}


def test_offboarding_false_keeps_the_guards(tenants_dir):
    assert _guards(_tenant_run(tenants_dir, offboarding="false")) == GUARDED


def test_the_plan_shows_the_guards_too(example_plan):
    guarded = {r.name for r in example_plan.run.resources if r.protect or r.retain_on_delete}
    assert set(GUARDED) <= guarded


def test_a_restored_secret_can_still_be_decrypted():
    """The key outlives the secret's recovery window, so a secret restored on its last day has its key."""
    assert 7 <= SECRET_RECOVERY_WINDOW_DAYS < KMS_DELETION_WINDOW_DAYS <= 30


def test_the_windows_reach_the_resources(plans_by_slug):
    resources = {r.type: r for r in plans_by_slug["acme"].resources}
    assert resources["aws:kms/key:Key"].inputs["deletionWindowInDays"] == KMS_DELETION_WINDOW_DAYS
    assert (resources["aws:secretsmanager/secret:Secret"].inputs["recoveryWindowInDays"]
            == SECRET_RECOVERY_WINDOW_DAYS)


class _Config:
    def __init__(self, value):
        self.value = value

    def get(self, key):
        return self.value

    def get_bool(self, key):
        return {"true": True, "false": False}[self.value]


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("true", True), ("false", False)])
def test_read_offboarding(value, expected):
    assert read_offboarding(_Config(value)) is expected


def test_read_offboarding_refuses_anything_but_a_bool():
    class Odd(_Config):
        def get_bool(self, key):
            raise ValueError("not a bool")

    with pytest.raises(SettingsError, match="offboarding must be true or false"):
        read_offboarding(Odd("maybe"))
