"""The environment lock as commands see it: `up` and `destroy --yes` refuse a held lock in one line, `preview`
only reports it, `unlock` clears it; the lock lives inside a `file://` backend's folder."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from tenantctl import environment_lock as lock
from tenantctl.cli import app
from tenantctl.state_folder import file_backend_dir, project_records
from tests.tenantctl.tenant_text import tenant_yaml

runner = CliRunner()


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(tenant_yaml("acme", tenant_id="20ab6862-0914-44a5-8827-42ff80980e24"))
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    monkeypatch.setenv("PULUMI_BACKEND_URL", (tmp_path / "backend").as_uri())
    return tmp_path


@pytest.fixture
def held(project):
    """The dev environment's lock, held by another live process of this host."""
    child = subprocess.Popen(["sleep", "60"])
    holder = dataclasses.replace(lock.this_process("up"), pid=child.pid, session=None,
                                 start_ticks=lock.process_start_ticks(child.pid), token="other-run")  # noqa: S106
    path = lock.lock_path(project / "backend" / ".tenantctl", "dev")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dataclasses.asdict(holder)))
    yield child
    child.kill()
    child.wait()


def test_the_lock_of_a_file_backend_lives_inside_its_folder(project, tmp_path):
    assert project_records(project) == tmp_path / "backend" / ".tenantctl"
    assert file_backend_dir("file://~/state", project).is_absolute()
    assert file_backend_dir("file://./state?no_legacy_dirs=true", project) == project / "state"
    assert file_backend_dir("s3://bucket/prefix", project) is None


def test_up_refuses_a_held_lock_in_one_line_naming_the_holder(project, held):
    result = runner.invoke(app, ["up", "--env", "dev", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {held.pid}" in lines[0] and "up by" in lines[0]
    assert "tenantctl unlock --env dev --force" in lines[0] and "Traceback" not in result.output


def test_up_with_wait_gives_up_after_the_timeout(project, held):
    result = runner.invoke(app, ["up", "--env", "dev", "--tenants-dir", str(project / "tenants"), "--wait",
                                 "--wait-timeout", "0.3"])
    assert result.exit_code == 1 and "waited 0s" in result.stderr and f"pid {held.pid}" in result.stderr


def test_destroy_yes_refuses_a_held_lock(project, held):
    result = runner.invoke(app, ["destroy", "acme", "--env", "dev", "--tenants-dir", str(project / "tenants"),
                                 "--yes", "--tenant-id", "20ab6862-0914-44a5-8827-42ff80980e24"],
                           env={"TENANT_DATABASE_URL": ""})
    assert result.exit_code == 1 and "environment dev is locked" in result.stderr


def test_preview_reports_a_held_lock_and_leaves_it(project, held):
    (project / "tenants" / "broken.yaml").write_text("slug: [")  # stops the run before the engine
    path = lock.lock_path(project / "backend" / ".tenantctl", "dev")
    before = path.read_bytes()
    result = runner.invoke(app, ["preview", "--env", "dev", "--tenants-dir", str(project / "tenants")])
    assert "environment dev is locked" in result.stderr and "`up` would refuse" in result.stderr
    assert path.read_bytes() == before


def test_unlock_needs_force_for_a_live_holder(project, held):
    refused = runner.invoke(app, ["unlock", "--env", "dev", "--tenants-dir", str(project / "tenants")])
    forced = runner.invoke(app, ["unlock", "--env", "dev", "--tenants-dir", str(project / "tenants"), "--force"])
    assert refused.exit_code == 1 and "not provably stale" in refused.stderr
    assert forced.exit_code == 0 and "forced" in forced.stdout
    assert not lock.lock_path(project / "backend" / ".tenantctl", "dev").exists()


def test_unlock_without_a_local_backend_says_there_is_no_lock(project, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket/state")
    result = runner.invoke(app, ["unlock", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and "not a local folder" in result.stderr
