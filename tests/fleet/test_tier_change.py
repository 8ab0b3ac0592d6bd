"""A tier change under the mock runtime: the resource sets of both tiers, the downgrade's guard and what it says.

The real engine runs an upgrade then a downgrade in tests/e2e/test_tier_change.py; the volume check against a real
API server is tests/fleet/test_namespace_volumes.py.
"""

from __future__ import annotations

import copy

import pytest

from fleet import engine, tier_change
from fleet.namespace_volumes import Volumes
from fleet.tier_change import TierChangeRefused
from tenancy.loader import load_tenants
from tenancy.model import Tier

KEPT_TYPES = ("aws:kms/key:Key", "aws:secretsmanager/secret:Secret", "random:index/randomPassword:RandomPassword",
              "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow")
NAMESPACE_OBJECTS = ["ResourceQuota", "LimitRange", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
                     "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding"]


def _as_basic(tenants_dir, slug: str = "acme") -> None:
    path = tenants_dir / f"{slug}.yaml"
    text = path.read_text().replace("tier: premium", "tier: basic")
    text = text.split("resources:  # namespace ResourceQuota")[0] + text.split("  pods: 20\n")[1]
    path.write_text(text)


def _tenant(tenants_dir, slug: str = "acme"):
    return load_tenants([tenants_dir / f"{slug}.yaml"]).by_slug()[slug]


def _run(tenants_dir, slug: str = "acme"):
    from tests.conftest import ROOT
    from tests.program_runs import run_stack, stack_config

    values, secret_keys = stack_config(ROOT, tenants_dir)
    return run_stack(ROOT, f"dev.{slug}", values, secret_keys).resources


def _state(resources) -> list[dict]:
    """The resources as `pulumi stack export` records them (what tier_change reads)."""
    return [{"urn": r.urn, "type": r.type, "parent": r.parent_urn, "inputs": r.inputs, "protect": r.protect}
            for r in resources]


@pytest.fixture
def premium_state(tenants_dir) -> list[dict]:
    return _state(_run(tenants_dir))


def _kept(resources) -> dict[str, str]:
    return {r.type: r.urn for r in resources if r.type in KEPT_TYPES}


def test_both_tiers_declare_the_key_secrets_and_row_under_the_same_urns(tenants_dir):
    """The engine keeps a resource whose URN stays: a tier change in either direction replaces none of them."""
    premium = _run(tenants_dir)
    _as_basic(tenants_dir)
    basic = _run(tenants_dir)

    assert _kept(premium) == _kept(basic) and len(_kept(basic)) == len(KEPT_TYPES)
    only_premium = {r.name for r in premium} - {r.name for r in basic}
    assert only_premium == {f"acme-{s}" for s in ("namespace", "quota", "limits", "deny-all",
                                                  "allow-ingress-controller", "allow-monitoring", "allow-dns",
                                                  "service-account", "reader-role", "reader-binding")}
    assert [r.name for r in premium if r.protect and r.type == tier_change.NAMESPACE_TYPE] == ["acme-namespace"]


def test_a_downgrade_is_the_file_saying_basic_over_a_state_holding_the_namespace(tenants_dir, premium_state):
    _as_basic(tenants_dir)
    change = tier_change.detect(premium_state, _tenant(tenants_dir), "tenants/acme.yaml")

    assert change.downgrade and (change.old, change.new) == (Tier.PREMIUM, Tier.BASIC)
    assert change.namespace == "tenant-acme" and change.guarded
    assert change.namespace_urn.endswith("::acme-namespace")
    assert sorted(kind for _urn, kind in change.objects) == sorted(
        [*NAMESPACE_OBJECTS, "Secret", "PrometheusRule"])


def test_an_upgrade_a_same_tier_and_an_onboarding(tenants_dir, premium_state):
    acme = _tenant(tenants_dir)
    assert tier_change.detect(premium_state, acme, "f") is None  # premium over premium
    assert tier_change.detect([], acme, "f") is None  # a new stack: onboarding
    basic_state = [r for r in premium_state if "tenant-acme" not in str(r["inputs"]) or r["type"].startswith("aws")]
    basic_state = [r for r in basic_state if r["type"] != tier_change.NAMESPACE_TYPE]
    upgrade = tier_change.detect(basic_state, acme, "f")
    assert upgrade is not None and not upgrade.downgrade and upgrade.namespace == "tenant-acme"
    _as_basic(tenants_dir)
    assert tier_change.detect(basic_state, _tenant(tenants_dir), "f") is None  # basic over basic


@pytest.mark.parametrize(("volumes", "accepted", "refused"), [
    (Volumes("tenant-acme", claims=()), (), None),
    (Volumes("tenant-acme", claims=("data-0", "logs")), (), "data-0, logs"),
    (Volumes("tenant-acme", claims=("data-0", "logs")), ("data-0",), "logs"),
    (Volumes("tenant-acme", claims=("data-0", "logs")), ("data-0", "logs"), None),
    (Volumes("tenant-acme", claims=("data-0",)), ("*",), None),
    (Volumes("tenant-acme", rendered="/r/manifests"), (), "rendered to /r/manifests"),
    (Volumes("tenant-acme", rendered="/r/manifests"), ("data-0",), "rendered to /r/manifests"),
    (Volumes("tenant-acme", rendered="/r/manifests"), ("*",), None),
    (Volumes("tenant-acme", error="connection refused"), ("*",), "could not be: connection refused"),
])
def test_the_guard_refuses_a_downgrade_over_unnamed_volumes(volumes, accepted, refused):
    change = tier_change.TierChange("acme", Tier.PREMIUM, Tier.BASIC, "tenant-acme", "tenants/acme.yaml", accepted,
                                    "urn:ns")
    said = tier_change.refusal(change, volumes)
    if refused is None:
        assert said is None
    else:
        assert said is not None and refused in said, said
        assert volumes.error or "tenants/acme.yaml" in said  # where to name the loss


class StateOnly:
    """A stack whose state is a dict: what stack_guards exports and imports."""

    name = "dev.acme"

    def __init__(self, resources: list[dict]) -> None:
        self.deployment = {"version": 3, "deployment": {"resources": copy.deepcopy(resources)}}
        self.imports = 0


@pytest.fixture
def state_only(monkeypatch, premium_state):
    stack = StateOnly(premium_state)

    def imported(target, deployment):
        target.deployment, target.imports = copy.deepcopy(deployment), target.imports + 1

    monkeypatch.setattr(engine, "export_state", lambda target: copy.deepcopy(target.deployment))
    monkeypatch.setattr(engine, "import_state", imported)
    return stack


def _protected(stack) -> set[str]:
    return {r["urn"].rsplit("::", 1)[-1] for r in stack.deployment["deployment"]["resources"] if r.get("protect")}


def _downgrade(stack, tenants_dir, volumes: Volumes) -> None:
    """The guard's step before a downgrade's `up`, then what must hold: the namespace lifted only when the volume
    check allows it, and nothing else of the stack ever."""
    change = tier_change.detect(stack.deployment["deployment"]["resources"], _tenant(tenants_dir), "f")
    try:
        tier_change.lift_guard(stack, change, volumes)
    except TierChangeRefused:
        pass
    allowed = volumes.known and not set(volumes.claims) - set(change.accepted)
    assert _protected(stack) == {"acme-kms-key", "acme-tenant-config"} | (set() if allowed else {"acme-namespace"})


def test_the_guard_lifts_the_namespace_alone_and_only_when_allowed(tenants_dir, state_only):
    _as_basic(tenants_dir)
    assert _protected(state_only) == {"acme-kms-key", "acme-tenant-config", "acme-namespace"}

    _downgrade(state_only, tenants_dir, Volumes("tenant-acme", claims=("data-0",)))
    assert state_only.imports == 0  # refused: the state is not touched
    _downgrade(state_only, tenants_dir, Volumes("tenant-acme", claims=()))
    assert state_only.imports == 1


def test_a_killed_downgrade_is_judged_again_and_guarded_again_when_refused(tenants_dir, state_only):
    _as_basic(tenants_dir)
    _downgrade(state_only, tenants_dir, Volumes("tenant-acme", claims=()))  # lifted; then the run was killed
    _downgrade(state_only, tenants_dir, Volumes("tenant-acme", claims=("data-0",)))  # a claim appeared since
    assert "acme-namespace" in _protected(state_only)


def test_a_failed_up_puts_the_guard_back(tenants_dir, state_only):
    _as_basic(tenants_dir)
    change = tier_change.detect(state_only.deployment["deployment"]["resources"], _tenant(tenants_dir), "f")
    tier_change.lift_guard(state_only, change, Volumes("tenant-acme", claims=()))
    tier_change.restore_guard(state_only, change)
    assert "acme-namespace" in _protected(state_only)


def test_a_broken_guard_is_caught(tenants_dir, state_only, monkeypatch):
    """With the decision broken (it allows everything), the same check fails: the namespace of a tenant whose
    claims nobody named would lose its guard."""
    _as_basic(tenants_dir)
    monkeypatch.setattr(tier_change, "refusal", lambda change, volumes: None)
    with pytest.raises(AssertionError):
        _downgrade(state_only, tenants_dir, Volumes("tenant-acme", claims=("data-0",)))


def test_the_preview_leaves_out_only_a_guarded_namespace(tenants_dir, premium_state):
    _as_basic(tenants_dir)
    change = tier_change.detect(premium_state, _tenant(tenants_dir), "f")
    assert tier_change.preview_exclude(change) == [change.namespace_urn]
    lifted = [dict(r, protect=False) if r["urn"] == change.namespace_urn else r for r in premium_state]
    assert tier_change.preview_exclude(tier_change.detect(lifted, _tenant(tenants_dir), "f")) is None


def test_what_a_downgrade_says_comes_from_the_engine_steps(tenants_dir, premium_state):
    _as_basic(tenants_dir)
    change = tier_change.detect(premium_state, _tenant(tenants_dir), "f")
    ops = {r["urn"]: "same" for r in premium_state}
    ops.update({urn: "delete" for urn, kind in change.objects if kind not in ("Secret", "PrometheusRule")})
    ops.update({urn: "replace" for urn, kind in change.objects if kind in ("Secret", "PrometheusRule")})
    ops[change.namespace_urn] = "delete"
    ops.update({r["urn"]: "update" for r in premium_state if r["type"].startswith("aws:")})

    said = tier_change.describe(change, ops, Volumes("tenant-acme", claims=()))

    assert said.startswith("tier change premium -> basic: namespace tenant-acme and its 9 objects deleted "
                           "(ResourceQuota, LimitRange, 4 NetworkPolicy, ServiceAccount, Role, RoleBinding); "
                           "alert rules and credentials Secret moved out of it; ")
    assert "signing secret, row unchanged" in said
    assert "KMS key, Secrets Manager secret kept (updated in place: tags)" in said
    assert said.endswith("volumes: none") and "NOT KEPT" not in said
    ops[next(r["urn"] for r in premium_state if r["type"].endswith("TenantConfigRow"))] = "replace"
    assert "NOT KEPT: row (replace)" in tier_change.describe(change, ops)


def test_a_pull_requests_plan_says_what_the_tier_change_will_do(tenants_dir):
    from fleet.plan_diff import TenantChange, field_changes

    premium = _tenant(tenants_dir)
    _as_basic(tenants_dir)
    basic = _tenant(tenants_dir)
    with (tenants_dir / "acme.yaml").open("a") as file:
        file.write("tier_change:\n  accept_volume_loss: [data-0]\n")
    named = _tenant(tenants_dir)

    assert tier_change.planned(premium, premium) is None
    assert tier_change.planned(basic, premium).startswith(
        "tier change basic -> premium: `up` creates namespace tenant-acme and its objects; row (id, created_at, "
        "history), signing secret, Secrets Manager secret and KMS key kept")
    assert "refused while it holds a PersistentVolumeClaim" in tier_change.planned(premium, basic)
    said = tier_change.planned(premium, named)
    assert "deletes namespace tenant-acme" in said and "volume(s) data-0 named" in said
    change = TenantChange("changed", "acme", "id", "basic", 10, field_changes(premium, named), [said])
    assert change.render()[-1] == f"      => {said}" and change.as_dict()["effects"] == [said]


class _NoCliStack:
    """A stack whose CLI must not be asked: the tenants folder is read from the stack file, and the state from
    the file backend's folder (a config read through the CLI decrypts every secret, one process per stack)."""

    def get_all_config(self):
        raise AssertionError("tier_change.find asked the CLI for the stack's config")

    def export_stack(self):
        raise AssertionError("tier_change.find asked the CLI for the stack's state")


def test_on_a_file_backend_the_change_is_found_without_a_cli_call(tmp_path, tenants_dir, premium_state):
    import json

    from fleet.rehearsal import rehearsal_backend
    from tests.conftest import ROOT

    stack = "rehearsal.acme"
    backend = rehearsal_backend(ROOT, tmp_path / "state", "passphrase")
    backend.work_dir.mkdir(parents=True, exist_ok=True)
    (backend.work_dir / f"Pulumi.{stack}.yaml").write_text(
        f"config:\n  tenant-onboarding:tenantsDir: {json.dumps(str(tenants_dir))}\n", encoding="utf-8")
    checkpoint = engine.stack_paths(backend, stack)[0]
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    latest = {"resources": premium_state}
    checkpoint.write_text(json.dumps({"version": 3, "checkpoint": {"latest": latest}}, default=str))
    _as_basic(tenants_dir)

    change = tier_change.find(_NoCliStack(), engine.StackSpec(backend, stack))  # no tenantsDir in the run's config

    assert change is not None and change.downgrade and change.namespace == "tenant-acme"
