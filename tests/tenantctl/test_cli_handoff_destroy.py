"""`tenantctl handoff` and `tenantctl destroy`: what the client gets told, and removing exactly one tenant."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
from typer.testing import CliRunner

from tenantctl.cli import app
from tests.tenantctl.tenant_text import tenant_yaml

runner = CliRunner()


@pytest.fixture
def project(tmp_path, repo_root):
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(tenant_yaml("acme", tenant_id="20ab6862-0914-44a5-8827-42ff80980e24"))
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(repo_root / "Pulumi.prod.yaml", tmp_path / "Pulumi.prod.yaml")
    return tmp_path


def fake_tool(directory, name, script):
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_handoff_has_what_the_admin_needs_and_no_secret(project):
    result = runner.invoke(app, ["handoff", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert ("https://api.ai-agents.production/webhook/servicedesk?tenant_id=20ab6862-0914-44a5-8827-42ff80980e24"
            in text)
    assert "`POST`" in text and "X-ServiceDesk-Signature" in text and "HMAC-SHA256" in text
    assert "Ticket created" in text
    assert "aws secretsmanager get-secret-value --secret-id tenants/acme/credentials" in text
    assert "kubectl get secret tenant-acme-credentials -n tenant-acme" in text


def test_handoff_reveal_runs_the_aws_command(project, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    secret = json.dumps({"SERVICEDESK_API_KEY": "k", "WEBHOOK_SECRET": "s3cr3t-value"})
    fake_tool(bin_dir, "aws", f"echo '{secret}'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, ["handoff", "acme", "--tenants-dir", str(project / "tenants"), "--reveal"])
    assert result.exit_code == 0 and result.stdout.strip().endswith("s3cr3t-value")
    assert "s3cr3t-value" not in runner.invoke(app, ["handoff", "acme", "--tenants-dir",
                                                      str(project / "tenants")]).stdout


def test_handoff_reveal_without_aws_is_a_clear_error(project, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["handoff", "acme", "--tenants-dir", str(project / "tenants"), "--reveal"])
    assert result.exit_code == 1 and "aws CLI is not installed" in result.stderr


def test_destroy_prints_the_exact_targeted_command(project, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["destroy", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0
    assert result.stdout.strip() == (
        "pulumi destroy --stack prod --target "
        "urn:pulumi:prod::tenant-onboarding::tenant-onboarding:index:TenantStack::acme --target-dependents --yes"
    )
    assert "30-day" in result.stderr


def _seed(app_db, project, history: bool):
    from tenantctl.loader import parse_tenant_file

    tenant = parse_tenant_file(project / "tenants" / "acme.yaml")[0]
    app_db.add_tenant(tenant.tenant_id)
    if history:
        app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant.tenant_id,))
    return tenant


def test_destroy_refuses_while_history_exists(project, app_db):
    _seed(app_db, project, history=True)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--yes"])
    assert result.exit_code == 1 and "still has history rows (1 ticket_history)" in result.stderr
    assert app_db.history_row_count() == 1


def test_destroy_purge_data_yes_purges_then_runs_pulumi(project, app_db, tmp_path, monkeypatch):
    _seed(app_db, project, history=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake_tool(bin_dir, "pulumi", f'echo "$@" >> {calls}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, ["destroy", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data", "--yes"])
    assert result.exit_code == 0, result.stderr
    assert app_db.history_row_count() == 0
    assert calls.read_text().strip() == (
        "destroy --stack prod --target urn:pulumi:prod::tenant-onboarding::tenant-onboarding:index:TenantStack::acme"
        " --target-dependents --yes"
    )


def test_destroy_without_yes_never_purges(project, app_db, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    _seed(app_db, project, history=True)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data"])
    assert result.exit_code == 0 and "will delete: 1 ticket_history" in result.stderr
    assert app_db.history_row_count() == 1


def test_destroy_with_yes_but_no_pulumi_cli_fails_clearly(project, app_db, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    _seed(app_db, project, history=False)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--yes"])
    assert result.exit_code == 1 and "Pulumi CLI is not installed" in result.stderr


def test_destroy_rejects_bad_slug(project):
    result = runner.invoke(app, ["destroy", "../etc", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and "is not a tenant slug" in result.stderr
