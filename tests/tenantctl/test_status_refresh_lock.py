"""`status --refresh` refuses, or with --wait waits for, a run that holds the environment or one of its stacks;
a holder that is provably gone is no obstacle. No engine runs here: the refusal comes before any refresh."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import threading
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from components.naming import PROJECT
from fleet import engine, refresh_guard
from fleet import environment_lock as lock
from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    """A project on a file backend that holds one stack, dev.acme."""
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text(tenant_yaml("acme", tenant_id="20ab6862-0914-44a5-8827-42ff80980e24"))
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    monkeypatch.setenv("PULUMI_BACKEND_URL", (tmp_path / "backend").as_uri())
    stacks = tmp_path / "backend" / ".pulumi" / "stacks" / PROJECT
    stacks.mkdir(parents=True)
    (stacks / "dev.acme.json").write_text("{}")
    return tmp_path


@pytest.fixture
def running_up():
    """A live process of this host, standing for the engine of an `up`."""
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()


def hold_stack_lock(project, stack: str, pid: int) -> None:
    """The engine's own lock of a stack, as `pulumi up` writes it on a file backend."""
    folder = project / "backend" / ".pulumi" / "locks" / "organization" / PROJECT / stack
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "7d1c.json").write_text(json.dumps({
        "pid": pid, "username": "deployer", "hostname": socket.gethostname(),
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}))


def hold_environment_lock(project, pid: int) -> None:
    holder = dataclasses.replace(lock.this_process("up"), pid=pid, session=None,
                                 start_ticks=lock.process_start_ticks(pid), token="other-run")  # noqa: S106
    path = lock.lock_path(project / "backend" / ".tenantctl", "dev")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dataclasses.asdict(holder)))


def status_refresh(project, *extra: str):
    return runner.invoke(app, ["status", "--env", "dev", "--tenants-dir", str(project / "tenants"), "--refresh",
                               *extra])


def test_status_refresh_refuses_a_stack_locked_by_a_running_up_in_one_line(project, running_up):
    hold_stack_lock(project, "dev.acme", running_up.pid)

    result = status_refresh(project)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "dev.acme" in lines[0] and f"pid {running_up.pid} of deployer" in lines[0], lines
    assert "--wait" in lines[0] and "Traceback" not in result.output


def test_status_refresh_refuses_an_environment_held_by_an_up(project, running_up):
    hold_environment_lock(project, running_up.pid)

    result = status_refresh(project, "--wait", "--wait-timeout", "0")

    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert "up by" in line and f"pid {running_up.pid}" in line and "gave up after 0s" in line


def test_a_lock_whose_up_has_died_is_no_obstacle(project):
    dead = subprocess.Popen(["true"])
    dead.wait()
    hold_stack_lock(project, "dev.acme", dead.pid)
    spec = engine.StackSpec(engine.Backend(project_root=project), "dev.acme")

    assert refresh_guard.holder_in_the_way(project / "backend" / ".tenantctl", "dev", [spec]) is None


def test_with_wait_the_refresh_goes_on_once_the_up_has_ended(project, running_up):
    hold_stack_lock(project, "dev.acme", running_up.pid)
    spec = engine.StackSpec(engine.Backend(project_root=project), "dev.acme")
    said = []
    threading.Timer(0.3, running_up.kill).start()

    refresh_guard.wait_until_unlocked(
        lambda: refresh_guard.holder_in_the_way(project / "backend" / ".tenantctl", "dev", [spec]),
        wait=True, wait_timeout=30, say=said.append, poll=0.05)

    running_up.wait()
    assert said and f"pid {running_up.pid}" in said[0]
