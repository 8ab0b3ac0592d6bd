"""`tenantctl verify --rehearsal` and `tenantctl handoff SLUG --rehearsal` (fleet rule 1): the rehearsal's
database, Fernet key, receiver port and region come from the state a rehearsal left, and what they start
(the receiver, for verify) is stopped again. The state is written here as a rehearsal writes it, on an
external database: no engine run is needed."""

from __future__ import annotations

from typer.testing import CliRunner

from tenantctl.cli import app
from tests.rehearsal_state import port_is_free, rehearsed  # noqa: F401 (a fixture)

runner = CliRunner()


def test_verify_rehearsal_checks_a_tenant_against_the_rehearsals_services(app_db, rehearsed):  # noqa: F811
    project, port = rehearsed
    result = runner.invoke(app, ["verify", "acme", "--rehearsal", "--state-dir", str(project / "state"),
                                 "--database-url", app_db.provisioner_dsn, "--app-database-url", app_db.app_dsn,
                                 "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all 10 checks passed" in result.stdout
    assert port_is_free(port)  # the receiver it started is stopped again


def test_handoff_rehearsal_names_the_rehearsal_stack_and_receiver(app_db, rehearsed):  # noqa: F811
    project, port = rehearsed
    result = runner.invoke(app, ["handoff", "acme", "--rehearsal", "--state-dir", str(project / "state"),
                                 "--database-url", app_db.provisioner_dsn, "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "stack `rehearsal.acme`" in result.stdout
    assert f"http://127.0.0.1:{port}/webhook/servicedesk?tenant_id=" in result.stdout
    assert "`tenantctl handoff acme --rehearsal --reveal`" in result.stdout


def test_handoff_rehearsal_reveal_without_the_aws_emulator_says_how_to_get_it_back(app_db, rehearsed):  # noqa: F811
    project, _port = rehearsed
    result = runner.invoke(app, ["handoff", "acme", "--rehearsal", "--reveal", "--state-dir", str(project / "state"),
                                 "--database-url", app_db.provisioner_dsn, "--tenants-dir", str(project / "tenants")])
    assert result.exit_code == 1 and "AWS emulator is not running" in result.stderr
    assert "tenantctl rehearse" in result.stderr and "Traceback" not in result.stderr
