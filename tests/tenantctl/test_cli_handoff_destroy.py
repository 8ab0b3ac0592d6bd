"""`tenantctl handoff` and `tenantctl destroy`: what the client gets told, and removing exactly one tenant."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat

import pytest
from typer.testing import CliRunner

from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    # `destroy --yes` takes the environment lock, which needs a file:// or s3:// backend (docs/operations.md).
    monkeypatch.setenv("PULUMI_BACKEND_URL", (tmp_path / "backend").as_uri())
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


STACK_URN = "urn:pulumi:prod.acme::tenant-onboarding::tenant-onboarding:index:TenantStack$"
GUARDED = [f"{STACK_URN}aws:kms/key:Key::acme-kms-key",
           f"{STACK_URN}aws:secretsmanager/secret:Secret::acme-credentials",
           f"{STACK_URN}kubernetes:core/v1:Namespace::acme-namespace",
           f"{STACK_URN}pulumi-python:dynamic/tenant-onboarding:TenantConfigRow::acme-tenant-config"]


def test_destroy_prints_the_offboarding_steps_on_the_tenants_own_stack(project, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["destroy", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0
    targets = " ".join(f"--target {shlex.quote(urn)}" for urn in GUARDED)
    assert result.stdout.strip().splitlines() == [
        "pulumi destroy --preview-only --exclude-protected --stack prod.acme --non-interactive",
        "pulumi config set offboarding true --stack prod.acme",
        f"pulumi up --stack prod.acme {targets} --yes --skip-preview --non-interactive",
        "pulumi destroy --stack prod.acme --yes --non-interactive",
        "pulumi stack tag set tenant:offboarded-at '<UTC time now>' --stack prod.acme",
        "pulumi config rm offboarding --stack prod.acme",
    ]
    assert "(30-day window)" in result.stderr and "14-day recovery window" in result.stderr
    assert "tenantctl restore acme" in result.stderr


def test_destroy_without_the_tenant_file_unprotects_in_the_state_and_can_erase_history(project, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    (project / "tenants" / "acme.yaml").unlink()
    result = runner.invoke(app, ["destroy", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--erase-history"])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[2] == "pulumi state unprotect --all --stack prod.acme --yes"
    assert not any(line.startswith("pulumi up") for line in lines)
    assert lines[-1] == "pulumi stack rm prod.acme --yes"


def _seed(app_db, project, history: bool):
    from tenancy.loader import parse_tenant_file

    tenant = parse_tenant_file(project / "tenants" / "acme.yaml")[0]
    app_db.add_tenant(tenant.tenant_id)
    if history:
        app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (tenant.tenant_id,))
    return tenant


def recorded_offboarding(monkeypatch, status: str = "ok", error: str = ""):
    """The offboarding worker replaced by a recorder: the engine steps are tests/fleet/test_offboard_stack.py's."""
    from fleet import offboarding
    from fleet.stack_run import StackOutcome

    calls = []

    def fake(spec, **options):
        calls.append((spec.name, options))
        return StackOutcome(spec.name, "offboard", status=status, errors=[error] if error else [])

    monkeypatch.setattr(offboarding, "offboard_in_worker", fake)
    return calls


def test_destroy_refuses_while_history_exists(project, app_db, monkeypatch):
    calls = recorded_offboarding(monkeypatch)
    _seed(app_db, project, history=True)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--yes", "--without-export"])
    assert result.exit_code == 1 and "still has history rows (1 ticket_history)" in result.stderr
    assert app_db.history_row_count() == 1 and calls == []


def test_destroy_purge_data_offboards_with_the_purge_through_the_resource(project, app_db, monkeypatch):
    calls = recorded_offboarding(monkeypatch)
    _seed(app_db, project, history=True)
    result = runner.invoke(app, ["destroy", "acme", "--stack", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--purge-data", "--yes",
                                 "--without-export"])
    assert result.exit_code == 0, result.stderr
    assert app_db.history_row_count() == 1  # the command purges nothing itself: the resource's delete does
    assert calls == [("prod.acme", {"purge": True, "erase_history": False, "tenant_file": True})]


def test_destroy_erases_history_only_when_asked(project, app_db, monkeypatch):
    calls = recorded_offboarding(monkeypatch)
    _seed(app_db, project, history=False)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--yes", "--without-export",
                                 "--erase-history"])
    assert result.exit_code == 0, result.stderr
    assert calls[0][1]["erase_history"] is True


def test_a_failed_offboarding_is_one_line(project, app_db, monkeypatch):
    recorded_offboarding(monkeypatch, status="failed", error="the destroy cannot run: no stack named prod.acme")
    _seed(app_db, project, history=False)
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"),
                                 "--database-url", app_db.provisioner_dsn, "--yes", "--without-export"])
    assert result.exit_code == 1 and "error: the destroy cannot run: no stack named prod.acme" in result.stderr
    assert "Traceback" not in result.stderr


def test_destroy_purge_data_without_the_tenant_file_is_refused(project, app_db, monkeypatch):
    calls = recorded_offboarding(monkeypatch)
    (project / "tenants" / "acme.yaml").unlink()
    result = runner.invoke(app, ["destroy", "acme", "--tenants-dir", str(project / "tenants"), "--purge-data",
                                 "--tenant-id", "20ab6862-0914-44a5-8827-42ff80980e24", "--yes", "--without-export"])
    assert result.exit_code == 1 and "--purge-data needs tenants/acme.yaml" in result.stderr
    assert calls == []


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
                                 "--database-url", app_db.provisioner_dsn, "--yes", "--without-export"])
    assert result.exit_code == 1 and "Pulumi CLI is not installed" in result.stderr


def test_destroy_rejects_bad_slug(project):
    result = runner.invoke(app, ["destroy", "../etc", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and "is not a tenant slug" in result.stderr


def test_handoff_header_names_the_tenants_own_stack(project):
    result = runner.invoke(app, ["handoff", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0, result.stderr
    assert "stack `prod.acme`" in result.stdout.splitlines()[0]


def test_handoff_hints_say_tenantctl(project):
    result = runner.invoke(app, ["handoff", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert "python -m" not in result.stdout
    assert "`tenantctl handoff acme --env prod --reveal`" in result.stdout


def test_handoff_reveal_asks_the_tenant_stacks_region(project, tmp_path, monkeypatch):
    (project / "stacks" / "Pulumi.prod.acme.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "aws", 'echo "$@" > "$(dirname "$0")/args"\necho \'{"WEBHOOK_SECRET": "s"}\'\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, ["handoff", "acme", "--env", "prod", "--tenants-dir", str(project / "tenants"),
                                 "--reveal"])
    assert result.exit_code == 0, result.stderr
    assert "--region eu-west-1" in (bin_dir / "args").read_text()
    assert "--region eu-west-1" in result.stdout  # the command shown to the operator too
