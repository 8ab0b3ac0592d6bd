"""The environment lock as commands see it: `up` and `destroy --yes` refuse a held lock in one line, `preview`
only reports it, `unlock` clears it; the lock lives inside a `file://` backend's folder."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from fleet import environment_lock as lock
from fleet.state_folder import file_backend_dir, project_records
from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

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
                                 "--yes", "--without-export", "--tenant-id", "20ab6862-0914-44a5-8827-42ff80980e24"],
                           env={"TENANT_DATABASE_URL": ""})
    assert result.exit_code == 1 and "environment dev is locked" in result.stderr


def test_restore_refuses_a_held_lock(project, held):
    """restore changes the tenant's stack (its adopt config) and its cloud objects: it takes the lock too."""
    result = runner.invoke(app, ["restore", "acme", "--env", "dev", "--tenants-dir", str(project / "tenants")])
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


@pytest.mark.parametrize("url", ["https://api.pulumi.com", "azblob://state?storage_account=acct&sas=sekret",
                                 "gs://state", None])
@pytest.mark.parametrize("command", [
    ["up"], ["migrate-stacks"], ["unlock", "--force"],
    ["destroy", "acme", "--yes", "--without-export", "--tenant-id", "20ab6862-0914-44a5-8827-42ff80980e24"]])
def test_any_other_backend_is_refused_in_one_line_naming_the_supported_ones(project, monkeypatch, url, command):
    if url is None:  # nothing chosen: the CLI would use Pulumi Cloud
        monkeypatch.delenv("PULUMI_BACKEND_URL")
        monkeypatch.setenv("PULUMI_HOME", str(project / "no-login"))
    else:
        monkeypatch.setenv("PULUMI_BACKEND_URL", url)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    result = runner.invoke(app, [*command, "--env", "prod", "--tenants-dir", str(project / "tenants")],
                           env={"TENANT_DATABASE_URL": ""})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "file:// and s3:// backends only" in errors[0] and "sekret" not in result.output
    assert "Traceback" not in result.output
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_preview_on_another_backend_says_up_would_refuse(project, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    (project / "tenants" / "broken.yaml").write_text("slug: [")  # stops the run before the engine
    result = runner.invoke(app, ["preview", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert "file:// and s3:// backends only" in result.stderr and "`up` would refuse" in result.stderr


# An S3 backend: the lock is an object in its bucket (tests/s3server.py) --------------------------------------

@pytest.fixture
def s3_held(project, s3_bucket, monkeypatch):
    """The prod environment of an S3 backend, its lock held by another live process of this host."""
    monkeypatch.setenv("PULUMI_BACKEND_URL", s3_bucket.url())
    child = subprocess.Popen(["sleep", "60"])
    holder = dataclasses.replace(lock.this_process("up"), pid=child.pid, session=None,
                                 start_ticks=lock.process_start_ticks(child.pid), token="other-run")  # noqa: S106
    s3_bucket.client().put_object(Bucket=s3_bucket.name, Key=S3_LOCK, Body=json.dumps(dataclasses.asdict(holder)))
    yield child
    child.kill()
    child.wait()


S3_LOCK = "fleet/prod/.tenantctl/locks/prod.json"


def test_up_on_s3_refuses_a_held_lock_in_one_line_naming_the_holder(project, s3_held):
    result = runner.invoke(app, ["up", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and f"pid {s3_held.pid}" in lines[0]
    assert "tenantctl unlock --env prod --force" in lines[0] and "testing" not in result.output


def test_up_on_s3_with_wait_gives_up_after_the_timeout(project, s3_held):
    result = runner.invoke(app, ["up", "--env", "prod", "--tenants-dir", str(project / "tenants"), "--wait",
                                 "--wait-timeout", "0.3"])
    assert result.exit_code == 1 and "waited 0s" in result.stderr and f"pid {s3_held.pid}" in result.stderr


def test_preview_on_s3_reports_a_held_lock_and_leaves_it(project, s3_held, s3_bucket):
    (project / "tenants" / "broken.yaml").write_text("slug: [")
    before = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=S3_LOCK)["ETag"]
    result = runner.invoke(app, ["preview", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert "environment prod is locked" in result.stderr and "`up` would refuse" in result.stderr
    assert s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=S3_LOCK)["ETag"] == before


def test_unlock_on_s3_needs_force_for_a_live_holder(project, s3_held, s3_bucket):
    refused = runner.invoke(app, ["unlock", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    forced = runner.invoke(app, ["unlock", "--env", "prod", "--tenants-dir", str(project / "tenants"), "--force"])
    assert refused.exit_code == 1 and "not provably stale" in refused.stderr
    assert forced.exit_code == 0 and "forced" in forced.stdout
    assert s3_bucket.keys() == []


def test_a_bad_s3_backend_url_is_refused_in_one_line(project, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state?colour=blue")
    result = runner.invoke(app, ["up", "--env", "prod", "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and "unknown query parameter 'colour'" in result.stderr


def test_the_environment_id_of_an_s3_backend_is_made_once_in_its_bucket(project, s3_bucket, monkeypatch):
    from fleet import engine
    from fleet.project_runs import project_environment_id

    monkeypatch.setenv("PULUMI_BACKEND_URL", s3_bucket.url())
    assert project_environment_id(project, "prod", create=False) is None  # a preview makes none
    made = project_environment_id(project, "prod", create=True)
    assert s3_bucket.keys() == ["fleet/prod/.tenantctl/environments/prod.json"]
    assert project_environment_id(project, "prod", create=True) == made
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    assert project_environment_id(project, "prod", create=False) is None
    with pytest.raises(engine.EngineError, match="file:// and s3:// backends only"):
        project_environment_id(project, "prod", create=True)
