"""`tenantctl verify --rehearsal` and `tenantctl handoff SLUG --rehearsal` (fleet rule 1): the rehearsal's
database, Fernet key, receiver port and region come from the state a rehearsal left, and what they start
(the receiver, for verify) is stopped again. The state is written here as a rehearsal writes it, on an
external database: no engine run is needed."""

from __future__ import annotations

import shutil
import socket

import pytest
from typer.testing import CliRunner

from fleet.rehearsal import STATE_FILE, RehearsalState
from fleet.rehearse import _state_dir
from tenantctl.cli import app
from tests.tenant_text import tenant_yaml

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def rehearsed(app_db, tmp_path, repo_root):
    """A rehearsal's state on app_db (as `rehearse --database-url` leaves it), and its tenant acme."""
    tenant = app_db.add_tenant()
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.yaml").write_text(tenant_yaml("acme", tenant_id=str(tenant.tenant_id)))
    shutil.copy(repo_root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(repo_root / "stacks", tmp_path / "stacks")
    state = RehearsalState(_state_dir(tmp_path / "state", app_db.provisioner_dsn) / STATE_FILE)
    state.environment.update(receiver_port=_free_port(),
                             secrets={"passphrase": "rehearsal-passphrase", "fernetKey": app_db.fernet_key})
    state.save()
    return tmp_path, state.environment["receiver_port"]


def test_verify_rehearsal_checks_a_tenant_against_the_rehearsals_services(app_db, rehearsed):
    project, port = rehearsed
    result = runner.invoke(app, ["verify", "acme", "--rehearsal", "--state-dir", str(project / "state"),
                                 "--database-url", app_db.provisioner_dsn, "--app-database-url", app_db.app_dsn,
                                 "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all 10 checks passed" in result.stdout
    with socket.socket() as sock:  # the receiver it started is stopped again (its closed connections may linger)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_handoff_rehearsal_names_the_rehearsal_stack_and_receiver(app_db, rehearsed):
    project, port = rehearsed
    result = runner.invoke(app, ["handoff", "acme", "--rehearsal", "--state-dir", str(project / "state"),
                                 "--database-url", app_db.provisioner_dsn, "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "stack `rehearsal.acme`" in result.stdout
    assert f"http://127.0.0.1:{port}/webhook/servicedesk?tenant_id=" in result.stdout
    assert "`tenantctl handoff acme --rehearsal --reveal`" in result.stdout


def test_handoff_rehearsal_reveal_without_the_aws_emulator_says_how_to_get_it_back(app_db, rehearsed):
    project, _port = rehearsed
    result = runner.invoke(app, ["handoff", "acme", "--rehearsal", "--reveal", "--state-dir", str(project / "state"),
                                 "--database-url", app_db.provisioner_dsn, "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and "AWS emulator is not running" in result.stderr
    assert "tenantctl rehearse" in result.stderr and "Traceback" not in result.stderr
