"""The scheduled drift check's script (.github/workflows/drift.yml) as the workflow runs it, against the rehearsal and
the real engine: `tenantctl status --refresh --json`, then `python -m fleet.drift_report --dry-run`. One rehearsal of
the two example tenants: clean (close the issue), then a row edited by hand (open or update it, listing that
tenant alone)."""

from __future__ import annotations

import json
import subprocess
import sys

from tenancy.loader import require_tenants
from tests.conftest import ROOT
from tests.e2e.test_status import cli_status


def dry_run(rehearsal, tmp_path, name: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    status = cli_status(rehearsal, "--refresh", "--json")
    report = tmp_path / f"{name}.json"
    report.write_text(status.stdout)
    script = subprocess.run([sys.executable, "-m", "fleet.drift_report", str(report), "--env", "rehearsal",
                             "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return status, script


def test_the_drift_check_closes_the_issue_on_a_clean_fleet_and_lists_a_drifted_tenant(rehearsal, app_db,
                                                                                      tenants_dir, tmp_path):
    assert rehearsal.up().ok

    status, clean = dry_run(rehearsal, tmp_path, "clean")
    assert status.returncode == 0 and json.loads(status.stdout)["refreshed"], status.stdout + status.stderr
    assert clean.returncode == 0 and clean.stdout.startswith("action: close issue [fleet-drift]"), clean

    acme = next(t for t in require_tenants(tenants_dir) if t.slug == "acme")
    app_db.execute("UPDATE tenant_configs SET name = 'Edited by hand' WHERE tenant_id = %s", (str(acme.tenant_id),))
    status, drifted = dry_run(rehearsal, tmp_path, "drifted")
    assert status.returncode == 1, status.stdout + status.stderr  # the gate fails; the report is still whole
    assert drifted.returncode == 0, drifted
    assert drifted.stdout.startswith("action: open/update issue [fleet-drift] 'Fleet drift (rehearsal): 1 drifted")
    assert "### Drifted (1)" in drifted.stdout and "`acme` (rehearsal.acme): drift DRIFTED" in drifted.stdout
    assert "globex" not in drifted.stdout
