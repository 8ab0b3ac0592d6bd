"""An error is shown as one redacted line in progress output and in the summary tables; JSON keeps it whole."""

from __future__ import annotations

from rich.console import Console

from fleet import project_runs as fleet_command
from fleet import rehearse as rehearse_command
from fleet import rollout as fleet
from fleet.error_lines import one_line
from fleet.rehearsal import RehearsalResult
from fleet.rollout import FleetResult
from fleet.stack_run import StackOutcome

PROVIDER_ERROR = """error: update failed
    Traceback (most recent call last):
      File "/x/provider.py", line 10, in create
        connect(url)
    psycopg.OperationalError: cannot connect to postgresql://tenant_provisioner:hunter2@db:5432/app
"""


def _rendered(table) -> str:
    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_a_traceback_becomes_its_exceptions_message_without_the_password():
    assert one_line(PROVIDER_ERROR) == "cannot connect to postgresql://tenant_provisioner:***@db:5432/app"


def test_a_multiline_engine_error_becomes_its_last_error_line():
    assert one_line("stack dev.acme failed\n  error: the lock is held\n  resources: 3 unchanged") == \
        "error: the lock is held"


def test_progress_shows_one_line_per_error():
    lines = []
    fleet._report(StackOutcome("dev.acme", "up", status="failed", errors=[PROVIDER_ERROR]), lines.append)
    assert len(lines) == 2 and "Traceback" not in "\n".join(lines) and "hunter2" not in "\n".join(lines)


def test_the_fleet_table_and_markdown_show_no_traceback():
    result = FleetResult("dev", "up", None, [StackOutcome("dev.acme", "up", status="failed", errors=[PROVIDER_ERROR])],
                         [])
    for text in (_rendered(fleet_command.summary_table(result)), fleet_command.markdown_summary(result)):
        assert "Traceback" not in text and "hunter2" not in text and "cannot connect" in text


def test_the_rehearsal_table_shows_no_traceback():
    result = RehearsalResult("v3", "up", [], 0, [], errors=[f"rehearsal.acme: {PROVIDER_ERROR}"])
    text = _rendered(rehearse_command.summary_table(result))
    assert "Traceback" not in text and "hunter2" not in text and "cannot connect" in text
