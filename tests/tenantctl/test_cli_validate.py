"""`tenantctl validate`: exit codes, located messages, JSON output, and the --env check of each stack file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_examples_validate_clean(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "tenantctl", "validate"], cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 tenant file(s) OK" in result.stderr


def test_bad_file_exits_1_without_traceback(tmp_path, repo_root):
    (tmp_path / "acme.yaml").write_text("tenant_id: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "tenantctl", "validate", "--tenants-dir", str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{tmp_path / 'acme.yaml'}:" in result.stdout


def test_every_bad_file_is_reported(tenants_dir):
    (tenants_dir / "one.yaml").write_text("")
    (tenants_dir / "two.yaml").write_text(tenant_yaml("two").replace("https", "http"))
    result = run("validate", "--tenants-dir", str(tenants_dir))
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line]
    assert any("one.yaml:1:" in line and "empty" in line for line in lines)
    assert any("two.yaml:6: servicedesk.url:" in line for line in lines)


def test_json_format(tenants_dir):
    (tenants_dir / "bad.yaml").write_text("- 1\n")
    result = run("validate", "--tenants-dir", str(tenants_dir), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["files"] == 3
    assert report["errors"][0]["file"].endswith("bad.yaml")
    assert sorted(report["tenants"]) == ["acme", "globex"]


def test_explicit_paths(tenants_dir):
    result = run("validate", str(tenants_dir / "acme.yaml"))
    assert result.exit_code == 0


def test_missing_path_is_an_error(tmp_path):
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "no such file" in result.stderr


def test_empty_directory_is_an_error(tmp_path):
    result = run("validate", "--tenants-dir", str(tmp_path))
    assert result.exit_code == 1


def _project(tmp_path: Path, tenants_dir: Path, stack_configs: dict[str, str]) -> None:
    """A project whose tenant stacks `ci.<slug>` have these config files in its `stackConfigDir`."""
    (tmp_path / "Pulumi.yaml").write_text("name: tenant-onboarding\nruntime: python\nstackConfigDir: stacks\n")
    (tmp_path / "stacks").mkdir()
    for slug, text in stack_configs.items():
        (tmp_path / "stacks" / f"Pulumi.ci.{slug}.yaml").write_text(text)


def test_stack_check_passes_when_secrets_are_secure(tmp_path, tenants_dir):
    _project(tmp_path, tenants_dir, {
        "acme": "config:\n  tenant-onboarding:acme-servicedesk-api-key:\n    secure: v1:abc:def\n",
        "globex": "config:\n  tenant-onboarding:globex-servicedesk-api-key:\n    secure: v1:ghi:jkl\n",
    })
    result = run("validate", "--tenants-dir", str(tenants_dir), "--env", "ci")
    assert result.exit_code == 0, result.stdout


def test_stack_check_flags_missing_and_plaintext_secrets(tmp_path, tenants_dir):
    _project(tmp_path, tenants_dir, {
        "acme": "config:\n  tenant-onboarding:acme-servicedesk-api-key: plaintext\n",
        "globex": "config:\n  aws:region: eu-west-1\n",
    })
    result = run("validate", "--tenants-dir", str(tenants_dir), "--env", "ci")
    assert result.exit_code == 1
    assert "acme.yaml:11: servicedesk.api_key_secret:" in result.stdout
    command = "pulumi config set --secret globex-servicedesk-api-key --stack ci.globex (it asks for the value)"
    assert command in result.stdout


def test_stack_check_a_tenant_without_a_stack_file(tmp_path, tenants_dir):
    _project(tmp_path, tenants_dir, {"acme": "config: {}\n"})
    result = run("validate", "--tenants-dir", str(tenants_dir), "--env", "ci")
    assert result.exit_code == 1
    assert "Pulumi.ci.globex.yaml: no such stack file (create it with `pulumi stack init ci.globex`)" in result.stdout


def _git_project(tmp_path, repo_root):
    import shutil

    tenants = tmp_path / "tenants"
    shutil.copytree(repo_root / "tenants", tenants)
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    return tenants


def test_changed_since_refuses_a_changed_tenant_id_in_an_existing_file(tmp_path, repo_root):
    tenants = _git_project(tmp_path, repo_root)
    text = (tenants / "acme.yaml").read_text()
    old_id = text.split("tenant_id:", 1)[1].split()[0]
    (tenants / "acme.yaml").write_text(text.replace(old_id, "0b7a0e3c-9d0e-4c1f-8a51-7f2f1b9d2c44"))

    result = run("validate", "--tenants-dir", str(tenants), "--changed-since", "main")

    assert result.exit_code == 1
    assert "acme.yaml:" in result.stdout and "tenant_id: changed since main" in result.stdout
    assert old_id in result.stdout


def test_changed_since_reports_a_rename_and_asks_for_previous_slugs(tmp_path, repo_root):
    tenants = _git_project(tmp_path, repo_root)
    text = (tenants / "acme.yaml").read_text().replace("slug: acme", "slug: acme-corp")
    (tenants / "acme.yaml").unlink()
    (tenants / "acme-corp.yaml").write_text(text)

    missing = run("validate", "--tenants-dir", str(tenants), "--changed-since", "main", "--format", "json")
    (tenants / "acme-corp.yaml").write_text(text + "previous_slugs: [acme]\n")
    declared = run("validate", "--tenants-dir", str(tenants), "--changed-since", "main", "--format", "json")

    assert missing.exit_code == 1
    report = json.loads(missing.stdout)
    # Its key still has the old name, which only a declared rename may keep: the file says what to add.
    assert [e["field"] for e in report["errors"]] == ["servicedesk.api_key_secret"]
    assert "add `previous_slugs: [acme]`" in report["errors"][0]["message"]
    assert declared.exit_code == 0, declared.stdout
    assert json.loads(declared.stdout)["renames"] == [{"from": "acme", "to": "acme-corp"}]


def test_changed_since_with_an_unknown_ref_is_a_clear_error(tmp_path, repo_root):
    tenants = _git_project(tmp_path, repo_root)

    result = run("validate", "--tenants-dir", str(tenants), "--changed-since", "no-such-ref")

    assert result.exit_code == 1 and "git rev-parse failed" in result.stderr


def test_a_previous_slug_may_not_be_another_tenants_slug(tenants_dir):
    text = (tenants_dir / "acme.yaml").read_text()
    (tenants_dir / "acme.yaml").write_text(text + "previous_slugs: [globex]\n")

    result = run("validate", "--tenants-dir", str(tenants_dir))

    assert result.exit_code == 1 and "previous_slugs: globex is the slug of" in result.stdout


def test_validate_takes_a_folder(tenants_dir):
    result = run("validate", str(tenants_dir))

    assert result.exit_code == 0 and "2 tenant file(s) OK" in result.stderr


def test_a_mistyped_tenants_folder_is_an_error_for_validate_plan_and_rehearse(tmp_path, repo_root):
    typo = tmp_path / "tenant"
    for command in (["validate"], ["plan"], ["rehearse", "--database-url", "postgresql://x@127.0.0.1:1/app"]):
        result = subprocess.run([sys.executable, "-m", "tenantctl", *command, "--tenants-dir", str(typo)],
                                cwd=repo_root, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, command
        assert "no such folder" in result.stdout + result.stderr, command
        assert "Traceback" not in result.stderr


def test_changed_since_asks_for_previous_slugs_when_the_key_was_renamed_too(tmp_path, repo_root):
    tenants = _git_project(tmp_path, repo_root)
    text = (tenants / "acme.yaml").read_text().replace("acme", "acme-corp")
    (tenants / "acme.yaml").unlink()
    (tenants / "acme-corp.yaml").write_text(text)

    result = run("validate", "--tenants-dir", str(tenants), "--changed-since", "main", "--format", "json")

    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["renames"] == [{"from": "acme", "to": "acme-corp"}]
    assert [e["field"] for e in report["errors"]] == ["previous_slugs"]


@pytest.mark.parametrize("command", [
    ["validate", "--format", "json", "missing.yaml"],
    ["verify", "nobody", "--json"],
    ["rehearse", "--json", "--database-url", "not-a-url"],
    ["plan", "--json", "--tenants-dir", "no-such-folder"],
])
def test_json_output_stays_json_on_errors(repo_root, command):
    result = subprocess.run([sys.executable, "-m", "tenantctl", *command], cwd=repo_root, capture_output=True,
                            text=True, timeout=120)

    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False and report["errors"]


def test_stack_check_names_a_missing_llm_key_at_its_line(tmp_path, tenants_dir):
    acme = tenants_dir / "acme.yaml"
    acme.write_text(acme.read_text() + "llm:\n  api_key_secret: acme-llm-api-key\n")
    _project(tmp_path, tenants_dir, {
        "acme": "config:\n  tenant-onboarding:acme-servicedesk-api-key:\n    secure: v1:abc\n",
        "globex": "config:\n  tenant-onboarding:globex-servicedesk-api-key:\n    secure: v1:def\n",
    })
    result = run("validate", "--tenants-dir", str(tenants_dir), "--env", "ci")
    assert result.exit_code == 1
    line = len(acme.read_text().splitlines())
    assert f"acme.yaml:{line}: llm.api_key_secret:" in result.stdout and "acme-llm-api-key" in result.stdout


def test_help_shows_flags_without_a_value_placeholder(repo_root):
    result = subprocess.run([sys.executable, "-m", "tenantctl", "rehearse", "--help"], cwd=repo_root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--destroy" in result.stdout
    assert "<bool>" not in result.stdout
