"""`tenantctl preview|up|migrate-stacks --rehearsal` (fleet rule 1): the rehearsal's local backend and services,
with the environment lock, selection and waves of any environment, and hints that name a command that works.

The state is written as a rehearsal writes it (tests/rehearsal_state.py), on an external database, so the
refusals need no engine run; one short real-engine run (a preview of the platform stack, before any `up`)
shows the whole path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fleet import environment_lock as lock
from fleet import upgrade_guard
from fleet.environment_id import recorded_id
from fleet.rehearse import _state_dir
from fleet.state_folder import rehearsal_records
from services import aws_emulator
from tenantctl.cli import app
from tests.conftest import ROOT
from tests.rehearsal_state import port_is_free, rehearsed  # noqa: F401 (a fixture)

runner = CliRunner()
COMMANDS = ["preview", "up", "migrate-stacks"]


def _where(project, app_db) -> list[str]:
    return ["--rehearsal", "--state-dir", str(project / "state"), "--database-url", app_db.provisioner_dsn,
            "--tenants-dir", str(project / "tenants")]


@pytest.fixture
def held(rehearsed, app_db):  # noqa: F811
    """The rehearsal's environment lock, held by another live process of this host."""
    project, _port = rehearsed
    child = subprocess.Popen(["sleep", "60"])
    holder = dataclasses.replace(lock.this_process("rehearse up"), pid=child.pid, session=None,
                                 start_ticks=lock.process_start_ticks(child.pid), token="other-run")  # noqa: S106
    path = lock.lock_path(rehearsal_records(_state_dir(project / "state", app_db.provisioner_dsn)), "rehearsal")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(holder)))
    yield child, path
    child.kill()
    child.wait()


@pytest.mark.parametrize("command", COMMANDS)
def test_state_dir_and_database_url_go_with_rehearsal(command, tenants_dir, tmp_path):
    result = runner.invoke(app, [command, "--state-dir", str(tmp_path / "state"), "--database-url",
                                 "postgresql://127.0.0.1:1/app", "--tenants-dir", str(tenants_dir)])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --state-dir and --database-url only go with --rehearsal"


@pytest.mark.parametrize("command", COMMANDS)
def test_without_a_rehearsal_they_say_how_to_make_one(command, tenants_dir, tmp_path):
    result = runner.invoke(app, [command, "--rehearsal", "--state-dir", str(tmp_path / "state"),
                                 "--tenants-dir", str(tenants_dir)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no rehearsal in" in lines[0] and "run `tenantctl rehearse` first" in lines[0]


@pytest.mark.parametrize("command", [["up"], ["migrate-stacks"], ["destroy", "acme", "--yes", "--without-export"],
                                     ["restore", "acme"]])
def test_a_held_rehearsal_lock_refuses_the_run_before_anything_starts(command, rehearsed, held, app_db):  # noqa: F811
    """Every command that changes the rehearsal takes its environment lock (rule 5), offboarding included."""
    project, port = rehearsed
    child, _path = held
    result = runner.invoke(app, [*command, *_where(project, app_db)])

    assert result.exit_code == 1
    # destroy first says what offboarding keeps; the refusal is the one error line, and the last
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"pid {child.pid}" in errors[0], result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert f"tenantctl unlock --rehearsal --state-dir {project / 'state'}" in errors[0]
    assert app_db.provisioner_dsn not in result.stderr
    state_dir = _state_dir(project / "state", app_db.provisioner_dsn)
    assert not (state_dir / aws_emulator.RECORD).exists() and not (state_dir / "backend").exists()
    assert port_is_free(port)


def test_an_unmigrated_rehearsal_is_refused_with_its_own_migrate_command(rehearsed, app_db, monkeypatch):  # noqa: F811
    """`up --rehearsal` runs the upgrade guard as `up --env` does, and its hint works as printed; the lock it took
    is given back and no environment id is made for a run that was refused."""
    project, port = rehearsed
    state_dir = _state_dir(project / "state", app_db.provisioner_dsn)
    monkeypatch.setattr(upgrade_guard, "unmigrated_tenants", lambda spec: ["acme", "globex"])
    try:
        result = runner.invoke(app, ["up", *_where(project, app_db)])
    finally:
        aws_emulator.stop(state_dir)

    assert result.exit_code == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "(acme, globex)" in error and "(up refused)" in error
    assert (f"run `tenantctl migrate-stacks --rehearsal --state-dir {project / 'state'} --database-url <the "
            "rehearsal's database URL>` first") in error
    assert "--env rehearsal" not in result.stderr
    assert not lock.lock_path(rehearsal_records(state_dir), "rehearsal").exists()
    assert recorded_id(rehearsal_records(state_dir), "rehearsal") is None
    assert port_is_free(port)


def test_migrate_stacks_dry_run_reads_the_rehearsals_backend_and_starts_nothing(rehearsed, app_db):  # noqa: F811
    project, _port = rehearsed
    result = runner.invoke(app, ["migrate-stacks", "--dry-run", *_where(project, app_db)])

    assert result.exit_code == 1
    assert "no stack rehearsal to migrate from" in result.stderr, result.stderr
    assert not (_state_dir(project / "state", app_db.provisioner_dsn) / aws_emulator.RECORD).exists()


def test_preview_rehearsal_previews_the_rehearsal_beside_a_held_lock(rehearsed, held, app_db):  # noqa: F811
    """The one real-engine run here: before any `up`, the platform stack is previewed on the rehearsal's backend
    against its services, and each tenant is skipped with the command that applies the platform. The preview
    takes no lock (it reports the held one and leaves it), records no id, stops the receiver it started, and keeps
    the AWS emulator it started (rule 6)."""
    project, port = rehearsed
    child, path = held
    before = path.read_bytes()
    state_dir = _state_dir(project / "state", app_db.provisioner_dsn)
    markdown = project / "preview.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run([sys.executable, "-m", "tenantctl", "preview", *_where(project, app_db), "--markdown",
                                 str(markdown)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        emulator = aws_emulator.running_endpoint(state_dir)
    finally:
        aws_emulator.stop(state_dir)

    shown = result.stdout + result.stderr
    assert result.returncode == 0, shown[-3000:]
    assert "preview of environment rehearsal: ok" in result.stdout
    assert f"pid {child.pid}" in result.stderr and "`up` would refuse" in result.stderr
    assert "rehearsal: ok (3 created" in result.stderr  # the platform stack, previewed by the engine
    option = f"--rehearsal --state-dir {project / 'state'} --database-url <the rehearsal's database URL>"
    comment = markdown.read_text()
    assert f"### `tenantctl preview {option}`: ok" in comment
    assert "| `rehearsal.acme` | skipped |" in comment
    assert f"the platform stack rehearsal has not been applied yet: `tenantctl up {option}` applies it first" in comment
    assert "--env rehearsal" not in shown + comment
    assert app_db.provisioner_dsn not in shown + comment
    assert path.read_bytes() == before
    assert recorded_id(rehearsal_records(state_dir), "rehearsal") is None
    assert emulator is not None and port_is_free(port)
