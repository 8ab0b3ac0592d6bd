"""`tenantctl rotate-signing-secret`: the rotation written into the tenant file for review, and `handoff` during it."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from tenancy.loader import parse_tenant_file
from tenantctl.cli import app
from tests.tenantctl.test_cli_handoff_destroy import fake_tool, project  # noqa: F401 (fixture)

runner = CliRunner()


def _tenant(project):  # noqa: F811 (the fixture's name)
    tenant, problems = parse_tenant_file(project / "tenants" / "acme.yaml")
    assert not problems
    return tenant


def test_rotate_then_finish_writes_the_file_and_says_what_comes_next(project):  # noqa: F811
    tenants = str(project / "tenants")

    started = runner.invoke(app, ["rotate-signing-secret", "acme", "--env", "prod", "--overlap-days", "2",
                                  "--tenants-dir", tenants])

    assert started.exit_code == 0, started.output
    rotation = _tenant(project).webhook.rotation
    assert rotation.next_version == 2
    assert "tenantctl up --env prod --only acme" in started.output
    assert "tenantctl handoff acme --env prod --reveal" in started.output

    again = runner.invoke(app, ["rotate-signing-secret", "acme", "--env", "prod", "--tenants-dir", tenants])
    assert again.exit_code == 1 and "already under way" in again.output
    assert _tenant(project).webhook.rotation == rotation, "a refused rotation changes nothing"

    finished = runner.invoke(app, ["rotate-signing-secret", "acme", "--rehearsal", "--finish", "--tenants-dir",
                                   tenants])
    assert finished.exit_code == 0, finished.output
    assert _tenant(project).webhook.signing_secret_version == 2 and _tenant(project).webhook.rotation is None
    assert "tenantctl up --rehearsal --only acme" in finished.output


@pytest.mark.parametrize("arguments,said", [
    (["acme"], "--env ENV, or --rehearsal"),
    (["acme", "--env", "prod", "--rehearsal"], "--env ENV, or --rehearsal"),
    (["nobody", "--env", "prod"], "no tenant file"),
    (["acme", "--env", "prod", "--finish"], "no rotation is under way"),
    (["acme", "--env", "prod", "--state-dir", "x"], "go with --rehearsal"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(project, arguments, said):  # noqa: F811
    before = (project / "tenants" / "acme.yaml").read_text()
    result = runner.invoke(app, ["rotate-signing-secret", *arguments, "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and said in result.output and "Traceback" not in result.output
    assert (project / "tenants" / "acme.yaml").read_text() == before


def test_handoff_during_a_rotation_reveals_the_new_secret(project, tmp_path, monkeypatch):  # noqa: F811
    tenants = str(project / "tenants")
    rotated = runner.invoke(app, ["rotate-signing-secret", "acme", "--env", "prod", "--tenants-dir", tenants])
    assert rotated.exit_code == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    secret = json.dumps({"WEBHOOK_SECRET": "old-value", "WEBHOOK_SECRET_NEXT": "new-value"})
    fake_tool(bin_dir, "aws", f"echo '{secret}'\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    shown = runner.invoke(app, ["handoff", "acme", "--tenants-dir", tenants])
    revealed = runner.invoke(app, ["handoff", "acme", "--tenants-dir", tenants, "--reveal"])

    assert "Signing-secret rotation under way" in shown.stdout and "WEBHOOK_SECRET_NEXT" in shown.stdout
    assert revealed.exit_code == 0 and revealed.stdout.strip().endswith("new-value")
    assert "old-value" not in revealed.stdout
