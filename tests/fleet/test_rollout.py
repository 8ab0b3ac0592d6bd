"""Which stacks a change touches, and in which waves they roll out (no engine: selection is pure)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from fleet.plan import ChangedTenants, changed_since
from fleet.rollout import SelectionRefused, select, waves
from fleet.stack_identity import StackIdentity
from tenancy.model import Tenant
from tests.tenant_text import tenant_yaml


def tenant(slug: str, tier: str = "basic", previous: list[str] | None = None) -> Tenant:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(tenant_yaml(slug, tier=tier))
    if previous:
        data["previous_slugs"] = previous
    return Tenant.model_validate(data)


FLEET = [tenant("acme", "premium"), tenant("globex"), tenant("initech"), tenant("umbrella", "premium")]
STACKS = ["prod", "prod.acme", "prod.globex", "prod.initech", "prod.umbrella", "dev", "dev.acme"]
# What each stack's tags say: every prod stack belongs to the tenant of the same slug.
IDENTITIES = {f"prod.{t.slug}": StackIdentity(f"prod.{t.slug}", str(t.tenant_id)) for t in FLEET}


def removal_of(slug: str) -> dict[str, str]:
    """The git range's view of a removal: the tenant_id that a file at the base ref had, and its slug there."""
    return {str(next(t for t in FLEET if t.slug == slug).tenant_id): slug}


def slugs(selection) -> list[str]:
    return [t.slug for t in selection.tenants]


def test_without_a_change_set_everything_is_selected_and_the_platform_too():
    selection = select("prod", FLEET, STACKS, identities=IDENTITIES)
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


def test_a_stack_without_a_tenant_file_is_an_orphan_left_alone_and_other_environments_are_ignored():
    selection = select("prod", FLEET[:3], STACKS, identities=IDENTITIES)
    assert selection.removed == [] and selection.orphans == ["umbrella"]  # dev.acme belongs to another environment


def test_only_a_tenant_id_removed_in_the_git_range_is_a_removal():
    selection = select("prod", FLEET[:3], STACKS, identities=IDENTITIES, removed_ids=removal_of("umbrella"))
    assert selection.removed == ["umbrella"] and selection.orphans == []


def test_a_removal_whose_stack_belongs_to_another_tenant_is_an_orphan():
    other = {**IDENTITIES, "prod.umbrella": StackIdentity("prod.umbrella", str(uuid.uuid4()))}
    selection = select("prod", FLEET[:3], STACKS, identities=other, removed_ids=removal_of("umbrella"))
    assert selection.removed == [] and selection.orphans == ["umbrella"]


def test_removals_and_orphans_above_the_bound_refuse_the_run_naming_the_stacks():
    # A partial checkout, or another tenants folder: two stacks have no file, and nothing was removed in git.
    with pytest.raises(SelectionRefused) as refused:
        select("prod", FLEET[:2], STACKS, identities=IDENTITIES)
    assert "prod.initech" in str(refused.value) and "prod.umbrella" in str(refused.value)
    assert "--max-removals" in str(refused.value)
    with pytest.raises(SelectionRefused):
        select("prod", FLEET[:2], STACKS, identities=IDENTITIES, removed_ids=removal_of("umbrella"))
    allowed = select("prod", FLEET[:2], STACKS, identities=IDENTITIES, removed_ids=removal_of("umbrella"),
                     max_removals=2)
    assert allowed.removed == ["umbrella"] and allowed.orphans == ["initech"]


def test_an_empty_tenants_folder_is_refused_not_a_fleet_removal():
    with pytest.raises(SelectionRefused):
        select("prod", [], STACKS, identities=IDENTITIES)


def test_tombstoned_stacks_are_neither_removals_nor_orphans():
    tomb = {**IDENTITIES, "prod.umbrella": StackIdentity("prod.umbrella", str(FLEET[3].tenant_id),
                                                         offboarded_at="2026-12-01T00:00:00Z")}
    selection = select("prod", FLEET[:3], STACKS, identities=tomb)
    assert selection.orphans == [] and selection.removed == [] and selection.tombstoned == ["umbrella"]


def test_a_changed_tenant_id_is_refused_naming_both_ids():
    changed = tenant("globex")
    with pytest.raises(SelectionRefused) as refused:
        select("prod", [FLEET[0], changed, *FLEET[2:]], STACKS, identities=IDENTITIES)
    assert str(FLEET[1].tenant_id) in str(refused.value) and str(changed.tenant_id) in str(refused.value)


def test_a_renamed_tenant_moves_its_stack_instead_of_a_removal_and_a_creation():
    acme = FLEET[0]
    renamed = [acme.model_copy(update={"slug": "acme-corp", "previous_slugs": ["acme"]}), *FLEET[1:]]
    selection = select("prod", renamed, STACKS, identities=IDENTITIES)
    assert selection.renames == [("acme", "acme-corp")] and selection.removed == [] and selection.orphans == []


def test_previous_slugs_never_take_over_another_tenants_stack():
    # A new tenant (its own tenant_id) whose previous_slugs names a removed tenant's stack.
    newcomer = tenant("acme-corp", "premium", previous=["acme"])
    with pytest.raises(SelectionRefused) as refused:
        select("prod", [newcomer, *FLEET[1:]], STACKS, identities=IDENTITIES)
    assert "prod.acme" in str(refused.value) and str(FLEET[0].tenant_id) in str(refused.value)


def test_previous_slugs_never_take_over_a_stack_of_unknown_identity():
    unknown = {**IDENTITIES, "prod.acme": StackIdentity("prod.acme", None)}
    renamed = [FLEET[0].model_copy(update={"slug": "acme-corp", "previous_slugs": ["acme"]}), *FLEET[1:]]
    with pytest.raises(SelectionRefused, match="prod.acme"):
        select("prod", renamed, STACKS, identities=unknown)


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
    from fleet.rollout import candidate_stacks

    renamed = [tenant("acme-corp", "premium", previous=["acme"]), *FLEET[1:]]
    assert candidate_stacks("prod", renamed, {"acme-corp"}, None) == ["prod", "prod.acme", "prod.acme-corp"]
    changes = ChangedTenants({"globex"}, {"hooli"}, False)
    assert candidate_stacks("prod", FLEET, None, changes) == ["prod", "prod.globex", "prod.hooli"]
    # Shared code, or no selection at all: every stack must be listed.
    assert candidate_stacks("prod", FLEET, None, ChangedTenants(set(), set(), True)) is None
    assert candidate_stacks("prod", FLEET, None, None) is None


def _commit(repo, message: str) -> None:
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=repo, check=True)


def _loaded(repo):
    from tenancy.loader import require_tenants

    return require_tenants(repo / "tenants", allow_none=True)


def test_a_file_removed_in_a_commit_of_the_range_is_a_removal(repo):
    from fleet.removals import removed_since

    globex_id = str(next(t for t in _loaded(repo) if t.slug == "globex").tenant_id)
    (repo / "tenants" / "globex.yaml").unlink()
    _commit(repo, "offboard globex")
    assert removed_since(repo, repo / "tenants", "main~1", _loaded(repo)) == {globex_id: "globex"}


def test_a_file_missing_only_from_the_checkout_is_not_a_removal(repo):
    from fleet.removals import removed_since

    (repo / "tenants" / "globex.yaml").unlink()  # a partial or sparse checkout: HEAD still has the file
    assert removed_since(repo, repo / "tenants", "main", _loaded(repo)) == {}


def test_a_renamed_file_with_the_same_tenant_id_is_not_a_removal(repo):
    from fleet.removals import removed_since

    text = (repo / "tenants" / "globex.yaml").read_text().replace("slug: globex", "slug: globex-inc")
    (repo / "tenants" / "globex.yaml").unlink()
    (repo / "tenants" / "globex-inc.yaml").write_text(text + "previous_slugs: [globex]\n")
    _commit(repo, "rename")
    assert removed_since(repo, repo / "tenants", "main~1", _loaded(repo)) == {}


def test_another_tenants_folder_has_no_removals_it_is_refused(repo, tmp_path):
    from fleet.removals import removed_since
    from tenancy.identity_changes import GitRefError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(GitRefError):
        removed_since(repo, elsewhere, "main", [])


def test_a_new_file_claiming_a_live_stacks_tenant_id_without_previous_slugs_is_refused():
    # A rename that forgot previous_slugs: a second stack for one tenant_id would fight over its row.
    acme = FLEET[0]
    renamed = [acme.model_copy(update={"slug": "acme-corp"}), *FLEET[1:]]
    with pytest.raises(SelectionRefused) as refused:
        select("prod", renamed, STACKS, identities=IDENTITIES)
    assert "prod.acme" in str(refused.value) and "previous_slugs" in str(refused.value)
