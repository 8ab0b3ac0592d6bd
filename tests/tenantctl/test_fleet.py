"""Which stacks a change touches, and in which waves they roll out (no engine: selection is pure)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tenantctl.fleet import select, waves
from tenantctl.model import Tenant
from tenantctl.plan import ChangedTenants, changed_since
from tests.tenantctl.tenant_text import tenant_yaml


def tenant(slug: str, tier: str = "basic", previous: list[str] | None = None) -> Tenant:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(tenant_yaml(slug, tier=tier))
    if previous:
        data["previous_slugs"] = previous
    return Tenant.model_validate(data)


FLEET = [tenant("acme", "premium"), tenant("globex"), tenant("initech"), tenant("umbrella", "premium")]
STACKS = ["prod", "prod.acme", "prod.globex", "prod.initech", "prod.umbrella", "dev", "dev.acme"]


def slugs(selection) -> list[str]:
    return [t.slug for t in selection.tenants]


def test_without_a_change_set_everything_is_selected_and_the_platform_too():
    selection = select("prod", FLEET, STACKS)
    assert selection.platform and slugs(selection) == ["acme", "globex", "initech", "umbrella"]
    assert selection.removed == [] and selection.renames == []


def test_a_tenant_file_change_touches_only_its_stack():
    selection = select("prod", FLEET, STACKS, changes=ChangedTenants({"globex"}, set(), False))
    assert not selection.platform and slugs(selection) == ["globex"]


def test_shared_code_touches_every_stack_and_the_platform():
    selection = select("prod", FLEET, STACKS, changes=ChangedTenants({"globex"}, set(), True))
    assert selection.platform and len(selection.tenants) == 4


def test_a_tenant_file_without_a_stack_is_always_selected():
    selection = select("prod", [*FLEET, tenant("hooli")], STACKS, changes=ChangedTenants(set(), set(), False))
    assert slugs(selection) == ["hooli"]


def test_a_stack_without_a_tenant_file_is_removed_and_other_environments_are_left_alone():
    selection = select("prod", FLEET[:3], STACKS)
    assert selection.removed == ["umbrella"]  # dev.acme belongs to another environment


def test_a_renamed_tenant_moves_its_stack_instead_of_a_removal_and_a_creation():
    renamed = [tenant("acme-corp", "premium", previous=["acme"]), *FLEET[1:]]
    selection = select("prod", renamed, STACKS)
    assert selection.renames == [("acme", "acme-corp")] and selection.removed == []


def test_only_restricts_to_named_tenants_and_reports_unknown_ones():
    selection = select("prod", FLEET, STACKS, only={"initech", "nosuch"})
    assert slugs(selection) == ["initech"] and selection.missing == ["nosuch"] and not selection.platform


def test_a_fresh_environment_always_gets_its_platform_stack():
    selection = select("stage", FLEET, STACKS, only={"acme"})
    assert selection.platform and slugs(selection) == ["acme"]


def test_waves_start_with_a_premium_and_a_basic_canary_then_double():
    fleet = [tenant(f"t{n:03d}", "premium" if n % 5 == 0 else "basic") for n in range(1, 40)]
    rollout = waves(fleet)
    canary = rollout[0]
    assert [t.tier.value for t in canary] == ["premium", "basic"]
    assert [len(w) for w in rollout] == [2, 4, 8, 16, 9]
    assert sorted(t.slug for w in rollout for t in w) == sorted(t.slug for t in fleet)


def test_a_single_tier_fleet_has_a_one_tenant_canary():
    assert [len(w) for w in waves([tenant("aaa"), tenant("bbb"), tenant("ccc")])] == [1, 2]


@pytest.fixture
def repo(tmp_path):
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    (tmp_path / "tenants").mkdir()
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text("name: tenant-onboarding\nruntime: python\nstackConfigDir: stacks\n")
    for slug in ("acme", "globex"):
        (tmp_path / "tenants" / f"{slug}.yaml").write_text(tenant_yaml(slug, tenant_id=str(uuid.uuid4())))
        (tmp_path / "stacks" / f"Pulumi.prod.{slug}.yaml").write_text("config: {}\n")
    (tmp_path / "stacks" / "Pulumi.prod.yaml").write_text("config: {}\n")
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    return tmp_path


def test_a_tenant_stack_file_change_touches_that_tenant(repo):
    (repo / "stacks" / "Pulumi.prod.globex.yaml").write_text("config: {aws:region: eu-west-1}\n")
    changes = changed_since(repo, repo / "tenants", "main")
    assert changes.slugs == {"globex"} and not changes.program_changed


def test_a_platform_stack_file_change_touches_every_tenant(repo):
    (repo / "stacks" / "Pulumi.prod.yaml").write_text("config: {tenant-onboarding:webhookBaseUrl: https://x}\n")
    assert changed_since(repo, repo / "tenants", "main").program_changed


def test_a_program_change_touches_every_tenant_and_docs_touch_none(repo):
    (repo / "README.md").write_text("docs\n")
    assert changed_since(repo, repo / "tenants", "main") == ChangedTenants(set(), set(), False)
    (repo / "program").mkdir()
    (repo / "program" / "tenant.py").write_text("# changed\n")
    assert changed_since(repo, repo / "tenants", "main").program_changed


def test_a_targeted_run_looks_up_only_the_stacks_it_can_touch():
    from tenantctl.fleet import candidate_stacks

    renamed = [tenant("acme-corp", "premium", previous=["acme"]), *FLEET[1:]]
    assert candidate_stacks("prod", renamed, {"acme-corp"}, None) == ["prod", "prod.acme", "prod.acme-corp"]
    changes = ChangedTenants({"globex"}, {"hooli"}, False)
    assert candidate_stacks("prod", FLEET, None, changes) == ["prod", "prod.globex", "prod.hooli"]
    # Shared code, or no selection at all: every stack must be listed.
    assert candidate_stacks("prod", FLEET, None, ChangedTenants(set(), set(), True)) is None
    assert candidate_stacks("prod", FLEET, None, None) is None
