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
    shutil.copytree(repo_root / "stacks", tmp_path / "stacks")
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


ROW_URN = ("urn:pulumi:prod.acme::tenant-onboarding::tenant-onboarding:index:TenantStack$"
           "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow::acme-tenant-config")


def test_destroy_prints_the_exact_commands_on_the_tenants_own_stack(project, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["destroy", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0
    assert result.stdout.strip().splitlines() == [
        "pulumi destroy --preview-only --stack prod.acme --non-interactive",
        "pulumi destroy --stack prod.acme --yes --non-interactive",
    ]
    assert "30-day" in result.stderr


def _seed(app_db, project, history: bool):
    from tenantctl.loader import parse_tenant_file

    tenant = parse_tenant_file(project / "tenants" / "acme.yaml")[0]
    app_db.add_tenant(tenant.tenant_id)
    if history:
        app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant.tenant_id,))
    return tenant


def fake_pulumi(tmp_path, monkeypatch, fail_on: str = ""):
    """A `pulumi` that records its arguments and fails (exit 1) when they contain `fail_on`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    failing = f'case "$*" in *"{fail_on}"*) echo "error: no stack named prod" >&2; exit 1;; esac\n' if fail_on else ""
    fake_tool(bin_dir, "pulumi", f'echo "$@" >> {calls}\n{failing}')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_destroy_refuses_while_history_exists(project, app_db):
    _seed(app_db, project, history=True)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--yes"])
    assert result.exit_code == 1 and "still has history rows (1 ticket_history)" in result.stderr
    assert app_db.history_row_count() == 1


def test_destroy_purge_data_sets_up_the_purge_through_the_resource_then_destroys(project, app_db, tmp_path,
                                                                              monkeypatch):
    _seed(app_db, project, history=True)
    calls = fake_pulumi(tmp_path, monkeypatch)
    result = runner.invoke(app, ["destroy", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data", "--yes"])
    assert result.exit_code == 0, result.stderr
    assert app_db.history_row_count() == 1  # the command purges nothing itself: the resource's delete does
    assert calls.read_text().strip().splitlines() == [
        "destroy --preview-only --stack prod.acme --non-interactive",
        "config set --path purgeData.acme true --stack prod.acme",
        f"up --stack prod.acme --target {ROW_URN} --yes --skip-preview --non-interactive",
        "destroy --stack prod.acme --yes --non-interactive",
        "config rm --path purgeData.acme --stack prod.acme",
    ]


def test_destroy_purge_data_changes_nothing_when_the_destroy_cannot_run(project, app_db, tmp_path, monkeypatch):
    _seed(app_db, project, history=True)
    calls = fake_pulumi(tmp_path, monkeypatch, fail_on="--preview-only")
    result = runner.invoke(app, ["destroy", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data", "--yes"])
    assert result.exit_code == 1 and "the destroy cannot run, so nothing was changed" in result.stderr
    assert "no stack named prod" in result.stderr
    assert app_db.history_row_count() == 1
    assert len(calls.read_text().strip().splitlines()) == 1  # only the preview ran


def test_a_failed_destroy_takes_the_purge_mark_back(project, app_db, tmp_path, monkeypatch):
    _seed(app_db, project, history=True)
    calls = fake_pulumi(tmp_path, monkeypatch, fail_on="destroy --stack")
    result = runner.invoke(app, ["destroy", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data", "--yes"])
    assert result.exit_code == 1
    assert calls.read_text().strip().splitlines()[-2:] == [
        "config rm --path purgeData.acme --stack prod.acme",
        f"up --stack prod.acme --target {ROW_URN} --yes --skip-preview --non-interactive",
    ]
    assert app_db.history_row_count() == 1


def test_destroy_purge_data_without_the_tenant_file_is_refused(project, app_db, tmp_path, monkeypatch):
    calls = fake_pulumi(tmp_path, monkeypatch)
    (project / "tenants" / "acme.yaml").unlink()
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"), "--purge-data",
                                 "--tenant-id", "20ab6862-0914-44a5-8827-42ff80980e24", "--yes"])
    assert result.exit_code == 1 and "--purge-data needs tenants/acme.yaml" in result.stderr
    assert not calls.exists()


def test_destroy_without_yes_never_purges(project, app_db, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    _seed(app_db, project, history=True)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data"])
    assert result.exit_code == 0 and "the destroy will purge: 1 ticket_history" in result.stderr
    assert "config set --path purgeData.acme true" in result.stdout
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
