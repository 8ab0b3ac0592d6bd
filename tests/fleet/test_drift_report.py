"""The drift check's issue (fleet.drift_report): one issue listing drifted and unverified tenants, closed when the
fleet is clean; a report that is not a refreshed status never decides anything."""

from __future__ import annotations

import json

import pytest

from fleet import drift_report
from fleet.drift_report import CLOSE, OPEN, ReportError, decide, load_report, main


def tenant(slug: str, drift: str = "IN_SYNC", problems: list[str] | None = None, verified: str = "ok") -> dict:
    return {"tenant": slug, "stack": f"prod.{slug}", "drift": drift, "verified": verified,
            "verified_at": "2026-12-01T10:00:00+00:00", "problems": problems or []}


def report(*tenants: dict, orphans: list[str] | None = None) -> dict:
    ok = not any(t["problems"] for t in tenants) and not orphans
    return {"env": "prod", "ok": ok, "refreshed": True, "tenants": list(tenants),
            "orphans": {"stacks_without_file": orphans or [], "files_without_stack": []}, "offboarded": {}}


def test_a_clean_fleet_closes_the_issue():
    action = decide(report(tenant("acme"), tenant("globex")), "prod")
    assert action.action == CLOSE and "close issue" in action.describe()


def test_drifted_unverified_and_other_tenants_are_each_listed_once_under_their_heading():
    action = decide(report(
        tenant("acme", "DRIFTED", ["drift DRIFTED: 1 update"]),
        tenant("globex", problems=["last verified more than 7 days, 0:00:00 ago"]),
        tenant("initech", "UNKNOWN", ["its last check failed", "stack failed", "drift UNKNOWN: no access"],
               verified="failed"),
        tenant("umbrella"),
        orphans=["prod.hooli"]), "prod", run_url="https://github.com/o/r/actions/runs/1")
    assert action.action == OPEN and "open/update issue" in action.describe()
    assert action.title == "Fleet drift (prod): 2 drifted, 2 unverified, 2 other"
    body = action.body
    assert "### Drifted (2)" in body and "- `acme` (prod.acme): drift DRIFTED: 1 update" in body
    assert "- `initech` (prod.initech): drift UNKNOWN: no access" in body
    assert "### Unverified (2)" in body and "- `globex` (prod.globex): ok, last verified 2026-12-01" in body
    assert "- `initech` (prod.initech): stack failed" in body and "`prod.hooli`: a stack without a tenant file" in body
    assert "umbrella" not in body and "actions/runs/1" in body


def test_a_report_that_says_not_ok_is_never_taken_for_clean():
    broken = report(tenant("acme"))
    broken["ok"] = False
    assert decide(broken, "prod").action == OPEN


@pytest.mark.parametrize(("text", "expected"), [
    ("", "not JSON"),
    (json.dumps({"ok": False, "errors": ["environment prod is locked by run 7"]}), "locked by run 7"),
    (json.dumps({**report(tenant("acme")), "refreshed": False}), "was not refreshed"),
], ids=["empty", "status-failed", "not-refreshed"])
def test_anything_but_a_refreshed_report_is_refused(text, expected):
    with pytest.raises(ReportError, match=expected):
        load_report(text)


def test_the_dry_run_prints_the_action_and_body_and_writes_nothing(tmp_path, capsys):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(report(tenant("acme", "DRIFTED", ["drift DRIFTED: 1 update"]))))
    assert main([str(status), "--env", "prod", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("action: open/update issue [fleet-drift]") and "prod.acme" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_out_writes_the_action_for_the_issue_job_and_a_broken_report_writes_nothing(tmp_path, capsys):
    status, out = tmp_path / "status.json", tmp_path / "out"
    status.write_text(json.dumps(report(tenant("acme"))))
    assert main([str(status), "--env", "prod", "--out", str(out)]) == 0
    assert (out / "action").read_text() == "close\n" and (out / "title").read_text().startswith("Fleet drift (prod)")
    status.write_text(json.dumps({"ok": False, "errors": ["no backend"]}))
    broken = tmp_path / "broken"
    assert main([str(status), "--env", "prod", "--out", str(broken)]) == 2
    assert not broken.exists() and "the issue is left as it is" in capsys.readouterr().err
    assert drift_report.LABEL == "fleet-drift"
