"""`tenantctl status` on the rehearsal environment, with the real engine: each state a tenant can be in."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from fleet import status as fleet_status
from fleet.rehearse import rehearsal_sources
from tenancy import tenant_data
from tenancy.loader import require_tenants
from tests.conftest import ROOT
from tests.tenant_text import tenant_yaml


def status(rehearsal, refresh: bool = False, max_unverified: timedelta = timedelta(days=7)):
    tenants = require_tenants(rehearsal.tenants_dir, allow_none=True)
    with rehearsal_sources(rehearsal.tenants_dir, rehearsal.database_url, rehearsal.state_base) as (spec_for, stacks,
                                                                                                     url):
        report = fleet_status.collect("rehearsal", tenants, rehearsal.tenants_dir, stacks, spec_for, refresh=refresh,
                                      concurrency=2, max_unverified=max_unverified,
                                      rows=lambda ids: tenant_data.row_update_times(url, ids))
    return report, {t.tenant: t for t in report.tenants}


def cli_status(rehearsal, *args):
    return subprocess.run(
        [sys.executable, "-m", "tenantctl", "status", "--rehearsal", "--tenants-dir", str(rehearsal.tenants_dir),
         "--state-dir", str(rehearsal.state_base), "--database-url", rehearsal.database_url, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_fresh_fleet_is_ready_verified_and_passes_the_gate(rehearsal):
    assert rehearsal.up().ok

    result = cli_status(rehearsal)
    report, by_slug = status(rehearsal, max_unverified=timedelta(seconds=0))

    assert result.returncode == 0, result.stdout + result.stderr
    for column in ("TENANT", "DESIRED", "APPLIED", "READY", "VERIFIED", "DRIFT", "LAST ERROR"):
        assert column in result.stdout
    assert {t.ready for t in by_slug.values()} == {"ready"} and {t.verified for t in by_slug.values()} == {"ok"}
    assert all(t.applied and t.desired.startswith(t.applied) for t in by_slug.values())
    assert all(t.row_updated_at and t.drift == "NOT_CHECKED" for t in by_slug.values())
    # The same fleet with a threshold of zero: verified, but too long ago.
    assert not report.ok and all("last verified more than" in " ".join(t.problems) for t in report.tenants)


def test_a_row_edited_by_hand_shows_as_drifted_after_refresh(rehearsal, app_db, tenants_dir):
    assert rehearsal.up().ok
    acme = next(t for t in require_tenants(tenants_dir) if t.slug == "acme")
    app_db.execute("UPDATE tenant_configs SET name = 'Edited by hand' WHERE tenant_id = %s", (str(acme.tenant_id),))

    _report, before = status(rehearsal)
    report, after = status(rehearsal, refresh=True)
    result = cli_status(rehearsal, "--refresh", "--json")

    assert before["acme"].drift == "NOT_CHECKED" and not before["acme"].problems
    assert after["acme"].drift == "DRIFTED" and after["globex"].drift == "IN_SYNC"
    assert not report.ok and [t.tenant for t in report.failing] == ["acme"]
    assert result.returncode == 1 and json.loads(result.stdout)["tenants"][0]["drift"] == "DRIFTED"


def test_an_unapplied_file_is_pending_and_a_stack_without_a_file_is_an_orphan(rehearsal, tenants_dir):
    assert rehearsal.up().ok
    (tenants_dir / "initech.yaml").write_text(tenant_yaml("initech", tier="basic"))
    edited = tenants_dir / "acme.yaml"
    edited.write_text(edited.read_text().replace("max_tokens: 500", "max_tokens: 600"))
    (tenants_dir / "globex.yaml").unlink()

    report, by_slug = status(rehearsal)
    result = cli_status(rehearsal)

    assert by_slug["initech"].ready == "pending" and report.files_without_stack == ["initech"]
    assert by_slug["acme"].ready == "pending" and by_slug["acme"].applied != by_slug["acme"].desired[:12]
    assert report.stacks_without_file == ["globex"]
    assert result.returncode == 1
    assert "stack without a tenant file: rehearsal.globex" in result.stdout
    assert "tenant file without a stack: initech" in result.stdout


def test_a_failing_check_leaves_the_tenant_not_verified_with_its_error(rehearsal, app_db, tenants_dir):
    assert rehearsal.up().ok
    app_db.execute("ALTER TABLE system_inventory NO FORCE ROW LEVEL SECURITY")
    app_db.execute("ALTER TABLE system_inventory DISABLE ROW LEVEL SECURITY")
    edited = tenants_dir / "globex.yaml"
    edited.write_text(edited.read_text().replace("max_tokens: 500", "max_tokens: 700"))
    assert not rehearsal.up(only={"globex"}).ok

    report, by_slug = status(rehearsal)

    assert by_slug["globex"].ready == "failed", by_slug["globex"]
    assert by_slug["globex"].verified == "failed", by_slug["globex"]
    assert "onboarding checks failed" in by_slug["globex"].last_error
    assert by_slug["acme"].ready == "ready" and by_slug["acme"].verified == "ok"
    assert [t.tenant for t in report.failing] == ["globex"]


def test_an_offboarded_tenant_is_listed_apart_not_as_an_orphan(rehearsal, tenants_dir, app_db):
    import subprocess
    import sys

    assert rehearsal.up().ok
    offboarded = subprocess.run(
        [sys.executable, "-m", "tenantctl", "destroy", "globex", "--rehearsal", "--state-dir",
         str(rehearsal.state_base), "--database-url", app_db.provisioner_dsn, "--tenants-dir", str(tenants_dir),
         "--yes", "--without-export"],
        capture_output=True, text=True, timeout=600)
    assert offboarded.returncode == 0, offboarded.stderr[-2000:]
    (tenants_dir / "globex.yaml").unlink()

    report, _by_slug = status(rehearsal)
    result = cli_status(rehearsal)

    assert report.stacks_without_file == [] and list(report.offboarded) == ["globex"]
    assert "offboarded: rehearsal.globex at" in result.stdout and "stack without a tenant file" not in result.stdout
    # acme's desired state changed with it: its isolation check no longer names globex among its peers (an input
    # the check's diff ignores), so acme is pending until the next `up`, and nothing else is wrong.
    assert [(t.tenant, t.problems) for t in report.failing] == [("acme", ["stack pending"])]
