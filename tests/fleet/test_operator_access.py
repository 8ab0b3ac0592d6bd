"""`render-operator` as a trust boundary: it pins a reviewed commit (never a branch), rolls out in `up`'s
canary-first waves, and runs each Stack's workspace as an account that can read only its own Secrets."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet.operator_access import render_workspace_access
from fleet.operator_manifests import OperatorSource, SecretEnv, SecretKeyRef, render_operator
from fleet.rollout import waves
from tenancy.loader import require_tenants
from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

PINNED = "0123456789abcdef0123456789abcdef01234567"


def source(**changes) -> OperatorSource:
    values = dict(repo_url="https://git.example.com/msp/tenant-onboarding.git", namespace="pulumi-stacks",
                  service_account="workspace", commit=PINNED, backend="s3://tenant-onboarding-state",
                  env_secrets=(SecretEnv("AWS_ACCESS_KEY_ID", SecretKeyRef("aws-credentials", "access-key-id")),),
                  stack_secret_keys=(("PULUMI_CONFIG_PASSPHRASE", "passphrase"),),
                  git_token=SecretKeyRef("git-credentials", "token"))
    return OperatorSource(**{**values, **changes})


@pytest.fixture
def fleet(tmp_path: Path):
    folder = tmp_path / "tenants"
    folder.mkdir()
    for i in range(13):
        tier = "premium" if i % 4 == 0 else "basic"
        (folder / f"client-{i:02d}.yaml").write_text(tenant_yaml(f"client-{i:02d}", tier, str(uuid.UUID(int=i + 1))))
    return require_tenants(folder)


def can_get_secret(objects: list[dict], account: str, namespace: str, secret: str) -> bool:
    """Kubernetes RBAC's answer for `get secrets/<secret>` by the account, from the rendered objects."""
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    for binding in (o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == namespace):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == namespace
                   for s in binding["subjects"]):
            continue
        role = roles.get((namespace, binding["roleRef"]["name"]))
        for rule in (role or {}).get("rules", []):
            if ({"", "*"} & set(rule["apiGroups"]) and {"secrets", "*"} & set(rule["resources"])
                    and {"get", "*"} & set(rule["verbs"])
                    and (not rule.get("resourceNames") or secret in rule["resourceNames"])):
                return True
    return False


@pytest.mark.parametrize("ref", [{"branch": "main", "commit": None}, {"commit": "main"}, {"commit": "abc1234"},
                                 {"commit": "refs/heads/main"}])
def test_render_operator_refuses_anything_but_a_40_hex_commit(ref):
    with pytest.raises(ValueError, match="40-hex"):
        source(**ref)


def test_the_command_refuses_a_branch_in_operator_terms(tmp_path):
    result = CliRunner().invoke(app, ["render-operator", "--out", str(tmp_path / "out"), "--repo",
                                      "https://git.example.com/r.git", "--namespace", "pulumi-stacks",
                                      "--service-account", "workspace", "--branch", "main", "--backend", "s3://x"])
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    assert "--commit" in result.output and "policy pack" in result.output


def test_every_stack_pins_the_commit_and_follows_no_branch(fleet):
    for stack in render_operator("prod", fleet, source()):
        assert stack["spec"]["commit"] == PINNED and "branch" not in stack["spec"]


def test_the_stacks_roll_out_in_the_canary_first_waves_of_up(fleet):
    """The operator's prerequisites give each Stack a level; the levels are `tenantctl up`'s waves."""
    stacks = render_operator("prod", fleet, source())
    after = {s["metadata"]["name"]: [p["name"] for p in s["spec"].get("prerequisites", [])] for s in stacks}
    slug_of = {s["metadata"]["name"]: s["metadata"]["labels"].get("tenants.ai-agents.io/slug") for s in stacks}

    def level(name: str) -> int:
        return 0 if not after[name] else 1 + max(level(p) for p in after[name])

    levels: dict[int, set[str]] = {}
    for name in after:
        levels.setdefault(level(name), set()).add(name)
    assert [slug_of[n] for n in levels[0]] == [None]  # the platform Stack alone comes first
    expected = [{t.slug for t in wave} for wave in waves(fleet)]
    assert [{slug_of[n] for n in levels[i]} for i in range(1, len(levels))] == expected
    assert len(expected) >= 3 and len(expected[0]) == 2  # a premium and a basic canary, then waves


def test_each_workspace_has_its_own_account_that_reaches_only_its_own_secrets(fleet):
    stacks = render_operator("prod", fleet, source())
    objects = stacks + render_workspace_access(stacks, source())
    accounts = [s["spec"]["serviceAccountName"] for s in stacks]
    assert len(set(accounts)) == len(stacks)
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"} == set(accounts)
    own = {s["spec"]["serviceAccountName"]: f"{s['metadata']['name']}-secrets" for s in stacks}
    for stack in stacks:
        account = stack["spec"]["serviceAccountName"]
        assert stack["spec"]["envRefs"]["PULUMI_CONFIG_PASSPHRASE"]["secret"]["name"] == own[account]
        assert can_get_secret(objects, account, "pulumi-stacks", own[account])
        assert can_get_secret(objects, account, "pulumi-stacks", "aws-credentials")  # what its Stack names
        others = [name for other, name in own.items() if other != account]
        assert not [name for name in others if can_get_secret(objects, account, "pulumi-stacks", name)]
        assert not can_get_secret(objects, account, "pulumi-stacks", "some-other-secret")


def test_the_workspace_roles_grant_nothing_but_named_gets(fleet):
    stacks = render_operator("prod", fleet, source())
    objects = render_workspace_access(stacks, source())
    for role in (o for o in objects if o["kind"] in ("Role", "ClusterRole")):
        assert role["kind"] == "Role"
        for rule in role["rules"]:
            assert rule["verbs"] == ["get"] and rule["resources"] == ["secrets"] and rule["resourceNames"]
    cluster_bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert {b["roleRef"]["name"] for b in cluster_bindings} == {"system:auth-delegator"}


def test_the_rendered_access_objects_are_valid_kubernetes(fleet, tmp_path):
    import kubernetes_validate
    from ruamel.yaml import YAML

    from fleet.operator_render import render_operator_files

    folder = tmp_path / "tenants"
    result = render_operator_files(folder, "prod", tmp_path / "out", source(), None)
    kinds = set()
    for path in result.written:
        obj = YAML(typ="safe").load(path.read_text())
        kinds.add(obj["kind"])
        if obj["kind"] != "Stack":
            kubernetes_validate.validate(obj, "1.33", strict=True)
    assert kinds == {"Stack", "ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"}
