"""Hints name a command that works, as `tenantctl ...` (fleet rule 9), and a skipped stack says why."""

from __future__ import annotations

from rich.console import Console

from fleet import rehearse as rehearse_command
from fleet.rehearsal import STACK
from fleet.rollout import Selection, run_fleet
from tenancy.loader import require_tenants
from tenancy.scaffold import next_steps
from tests.conftest import ROOT


def _rendered(table) -> str:
    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_scaffold_next_steps_say_tenantctl(tmp_path):
    steps = "\n".join(next_steps(tmp_path / "tenants" / "acme.yaml", "acme-servicedesk-api-key"))
    assert "python -m" not in steps and "tenantctl validate" in steps


def test_a_rehearsal_preview_before_any_up_says_why_each_tenant_is_skipped_and_what_applies_it():
    tenants = require_tenants(ROOT / "tenants")
    fleet = run_fleet(Selection(STACK, False, tenants), "preview", spec_for=None, platform_applied=False,
                      apply_hint=rehearse_command.APPLY_HINT)
    result = rehearse_command.rehearsal_result(fleet, "v3")
    text = _rendered(rehearse_command.summary_table(result))
    assert all(t.status == "skipped" for t in result.tenants)
    assert "has not been applied yet" in text and "`tenantctl rehearse`" in text
    assert "--env rehearsal" not in text
