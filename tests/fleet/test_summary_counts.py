"""Summaries count what the engine did per stack: created, updated, replaced, deleted, unchanged; replacements
and deletions stand out (bold red in the terminal, a warning marker in the pull-request comment).

The summaries are recorded ones, as the Automation API reports them: `UpResult.summary.resource_changes` and
`PreviewResult.change_summary` (logical steps: create, update, replace, delete, same), and an event count that
also holds the physical steps of a replacement (create-replacement, delete-replaced).
"""

from __future__ import annotations

import json
import re

from rich.console import Console

from fleet import project_runs as fleet_command
from fleet import rehearse as rehearse_command
from fleet import rollout as fleet
from fleet.rehearsal import RehearsalResult, tenant_outcome
from fleet.rollout import FleetResult
from fleet.stack_run import StackOutcome

# What `pulumi up` recorded when a tenant's KMS alias and key policy forced replacements (issue 20: "6 replaces").
UP_SUMMARY = {"create": 1, "update": 2, "replace": 6, "delete": 1, "same": 14}
# The same run counted from its step events: a replacement's physical steps beside the logical one.
EVENT_SUMMARY = {"create-replacement": 6, "replace": 6, "delete-replaced": 6, "update": 2, "same": 14}
NO_CHANGE = {"same": 24}


def _outcome(summary: dict, stack: str = "dev.acme") -> StackOutcome:
    return StackOutcome(stack, "up", summary=dict(summary))


def _fleet(*outcomes: StackOutcome) -> FleetResult:
    return FleetResult("dev", "up", None, list(outcomes), [])


def _terminal(table) -> str:
    console = Console(width=300, record=True, force_terminal=True, color_system="truecolor")
    console.print(table)
    return console.export_text(styles=True)


def test_counts_keep_replacements_apart_from_updates():
    assert _outcome(UP_SUMMARY).counts() == {"created": 1, "updated": 2, "replaced": 6, "deleted": 1,
                                             "unchanged": 14}


def test_a_replacements_physical_steps_count_once():
    assert _outcome(EVENT_SUMMARY).counts() == {"created": 0, "updated": 2, "replaced": 6, "deleted": 0,
                                                "unchanged": 14}


def test_the_json_summary_counts_every_kind():
    data = json.loads(json.dumps(_fleet(_outcome(UP_SUMMARY)).as_dict()))
    assert {k: data["tenants"][0][k] for k in ("created", "updated", "replaced", "deleted", "unchanged")} == \
        {"created": 1, "updated": 2, "replaced": 6, "deleted": 1, "unchanged": 14}


def test_the_progress_line_counts_replacements():
    lines = []
    fleet._report(_outcome(UP_SUMMARY), lines.append)
    assert "6 replaced" in lines[0] and "2 updated" in lines[0] and "1 deleted" in lines[0]


def test_the_terminal_table_shows_replacements_and_deletions_in_bold_red():
    text = _terminal(fleet_command.summary_table(_fleet(_outcome(UP_SUMMARY), _outcome(NO_CHANGE, "dev.globex"))))
    assert "replaced" in text
    assert re.search(r"\x1b\[1;31m6 *\x1b\[0m", text)  # bold red
    assert re.search(r"\x1b\[1;31m1 *\x1b\[0m", text)
    assert "\x1b[1;31m0" not in text  # nothing to see where nothing was replaced or deleted


def test_the_markdown_comment_marks_replacements_and_deletions():
    markdown = fleet_command.markdown_summary(_fleet(_outcome(UP_SUMMARY), _outcome(NO_CHANGE, "dev.globex")))
    assert "| stack | status | created | updated | replaced | deleted | unchanged |" in markdown
    acme = next(line for line in markdown.splitlines() if "`dev.acme`" in line)
    globex = next(line for line in markdown.splitlines() if "`dev.globex`" in line)
    assert "| :warning: **6** |" in acme and "| :warning: **1** |" in acme
    assert ":warning:" not in globex


def test_the_rehearsal_table_counts_each_tenants_changes():
    outcome = tenant_outcome("acme", _outcome(UP_SUMMARY, "rehearsal.acme"))
    result = RehearsalResult("v3", "up", [outcome], 10, [])
    text = _terminal(rehearse_command.summary_table(result))
    assert "replaced" in text and re.search(r"\x1b\[1;31m6 *\x1b\[0m", text)
    assert result.as_dict()["tenants"][0]["counts"]["replaced"] == 6


def test_a_tenant_whose_checks_did_not_run_says_so():
    failed = StackOutcome("rehearsal.acme", "up", status="failed", errors=["error: boom"])
    result = RehearsalResult("v3", "up", [tenant_outcome("acme", failed)], 0, [])
    text = _terminal(rehearse_command.summary_table(result))
    assert "None" not in text and "not run" in text
