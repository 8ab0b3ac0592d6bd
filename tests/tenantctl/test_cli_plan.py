"""`tenantctl plan`: text, JSON and manifest output, and --changed-since against real git history."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from tests.tenant_text import tenant_yaml


def tenantctl(cwd, *args):
    return subprocess.run([sys.executable, "-m", "tenantctl", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def project(tmp_path, repo_root):
    """A git repository holding a copy of the program and the example tenants."""
    for name in ("__main__.py", "Pulumi.yaml"):
        shutil.copy(repo_root / name, tmp_path / name)
    for package in ("program", "components", "tenantctl",
                 "tenancy", "checks", "fleet", "services", "tenants", "stacks"):
        shutil.copytree(repo_root / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    return tmp_path


def test_text_plan_shows_a_tree_per_tenant(project):
    result = tenantctl(project, "plan")
    assert result.returncode == 0, result.stderr
    assert "acme (premium" in result.stdout and "globex (basic" in result.stdout
    assert "kubernetes:core/v1:Namespace" in result.stdout
    assert "Traceback" not in result.stderr


def test_json_plan_has_the_documented_shape(project):
    result = tenantctl(project, "plan", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [t["slug"] for t in plan["tenants"]] == ["acme", "globex"]
    for tenant in plan["tenants"]:
        assert set(tenant) == {"slug", "tier", "tenant_id", "resources"}
        assert all(set(r) == {"type", "name", "inputs"} for r in tenant["resources"])
    assert "plan-placeholder" not in result.stdout


def test_out_writes_valid_manifests_per_tenant(project, tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    result = tenantctl(project, "plan", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["acme.yaml", "globex.yaml"]
    documents = list(YAML(typ="safe").load_all((out / "acme.yaml").read_text()))
    assert len(documents) == 13
    # The PrometheusRule is a custom resource kubernetes-validate has no schema for (tests/observability checks it).
    assert [d["metadata"]["name"] for d in documents if d["kind"] == "PrometheusRule"] == ["tenant-acme-alerts"]
    for document in (d for d in documents if d["kind"] != "PrometheusRule"):
        kubernetes_validate.validate(document, "1.33", strict=True)
    dashboard = next(d for d in documents if d["kind"] == "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert secret["stringData"] == {"SERVICEDESK_API_KEY": "[secret]", "WEBHOOK_SECRET": "[secret]"}


def test_changed_since_shows_only_changed_tenants(project):
    (project / "tenants" / "initech.yaml").write_text(tenant_yaml("initech", tier="basic"))
    result = tenantctl(project, "plan", "--json", "--changed-since", "main")
    assert result.returncode == 0, result.stderr
    assert [t["slug"] for t in json.loads(result.stdout)["tenants"]] == ["initech"]


def test_unknown_ref_is_a_clear_error(project):
    result = tenantctl(project, "plan", "--changed-since", "no-such-ref")
    assert result.returncode == 1 and "git cannot compare with 'no-such-ref'" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_tenant_file_fails_plan_with_located_error(project):
    (project / "tenants" / "acme.yaml").write_text("tier: [\n")
    result = tenantctl(project, "plan")
    assert result.returncode == 1
    assert "tenants/acme.yaml:" in result.stderr and "Traceback" not in result.stderr


def _edit_pr(project):
    """A pull request: globex's max_tokens changes, acme is removed, newco is added."""
    globex = project / "tenants" / "globex.yaml"
    globex.write_text(globex.read_text().replace("max_tokens: 500", "max_tokens: 800"))
    (project / "tenants" / "acme.yaml").unlink()
    (project / "tenants" / "newco.yaml").write_text(tenant_yaml("newco", tier="basic"))


def test_changed_since_shows_added_changed_and_removed_tenants(project):
    _edit_pr(project)

    result = tenantctl(project, "plan", "--changed-since", "main")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "- removed acme (premium, 20 resources)" in lines
    assert "~ changed globex (basic, 10 resources)" in lines
    assert "      enhancement_preferences.max_tokens: 500 -> 800" in lines
    assert "+ added   newco (basic, 10 resources)" in lines
    assert "No tenant changes." not in result.stdout


def test_a_pull_request_that_only_removes_a_tenant_says_so(project):
    (project / "tenants" / "acme.yaml").unlink()

    result = tenantctl(project, "plan", "--changed-since", "main")

    assert result.returncode == 0 and "- removed acme (premium, 20 resources)" in result.stdout
    assert "No tenant changes." not in result.stdout


def test_changed_since_json_lists_the_changes(project):
    _edit_pr(project)

    report = json.loads(tenantctl(project, "plan", "--changed-since", "main", "--json").stdout)

    assert [(c["kind"], c["slug"]) for c in report["changes"]] == [
        ("removed", "acme"), ("changed", "globex"), ("added", "newco")]
    assert report["changes"][1]["fields"] == [{"field": "enhancement_preferences.max_tokens", "old": 500, "new": 800}]


def test_json_is_json_even_on_errors(project):
    (project / "tenants" / "broken.yaml").write_text("- nope\n")

    result = tenantctl(project, "plan", "--json")

    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False
    assert any("broken.yaml:1:" in error for error in report["errors"])


def test_plans_and_their_mock_ids_are_identical_from_run_to_run(project):
    from fleet.mock_runtime import masked
    from fleet.plan import build_plan

    first = tenantctl(project, "plan", "--json").stdout
    second = tenantctl(project, "plan", "--json").stdout
    exports = [masked(build_plan(project, project / "tenants", "dev").run.exports) for _ in range(2)]
    assert first == second
    assert exports[0] == exports[1] and "arn:aws:kms:" in json.dumps(exports[0])


def test_piped_plan_lines_are_not_cut_at_80_columns(project):
    result = tenantctl(project, "plan")
    assert max(len(line) for line in result.stdout.splitlines()) > 120


def test_plan_uses_the_region_of_each_tenants_stack_file(project):
    result = tenantctl(project, "plan", "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr
    arns = [r["inputs"].get("kmsKeyId") for t in json.loads(result.stdout)["tenants"] for r in t["resources"]
            if r["type"] == "aws:secretsmanager/secret:Secret"]
    assert arns and all(":eu-west-1:" in arn for arn in arns), arns
