"""`tenantctl validate`: exit codes, located messages, JSON output, and the --stack secret check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tenantctl.cli import app
from tests.tenantctl.tenant_text import tenant_yaml

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


def _project(tmp_path: Path, tenants_dir: Path, stack_config: str) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: tenant-onboarding\nruntime: python\n")
    (tmp_path / "Pulumi.ci.yaml").write_text(stack_config)


def test_stack_check_passes_when_secrets_are_secure(tmp_path, tenants_dir):
    _project(tmp_path, tenants_dir, (
        "config:\n"
        "  tenant-onboarding:acme-servicedesk-api-key:\n    secure: v1:abc:def\n"
        "  tenant-onboarding:globex-servicedesk-api-key:\n    secure: v1:ghi:jkl\n"
    ))
    result = run("validate", "--tenants-dir", str(tenants_dir), "--stack", "ci")
    assert result.exit_code == 0, result.stdout


def test_stack_check_flags_missing_and_plaintext_secrets(tmp_path, tenants_dir):
    _project(tmp_path, tenants_dir, "config:\n  tenant-onboarding:acme-servicedesk-api-key: plaintext\n")
    result = run("validate", "--tenants-dir", str(tenants_dir), "--stack", "ci")
    assert result.exit_code == 1
    assert "acme.yaml:11: servicedesk.api_key_secret:" in result.stdout
    assert "pulumi config set --secret globex-servicedesk-api-key" in result.stdout


def test_stack_check_unknown_stack(tmp_path, tenants_dir):
    _project(tmp_path, tenants_dir, "config: {}\n")
    result = run("validate", "--tenants-dir", str(tenants_dir), "--stack", "nosuch")
    assert result.exit_code == 1
    assert "Pulumi.nosuch.yaml" in result.stderr
