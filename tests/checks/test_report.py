"""CheckReport: JSON for Pulumi outputs, readable text naming each failed check, and CheckFailed."""

from __future__ import annotations

import json
import pickle

from checks import CheckFailed, CheckReport, CheckResult

PASSING = CheckResult("rls_enabled_and_forced", True, "forced on all four tables")
FAILING = CheckResult("canary_isolation", False, "another tenant's context sees this tenant's canary")


def test_report_is_ok_only_when_every_check_passed():
    assert CheckReport([PASSING]).ok
    assert not CheckReport([PASSING, FAILING]).ok
    assert CheckReport([PASSING, FAILING]).failed == [FAILING]


def test_empty_report_is_not_ok():
    assert not CheckReport([]).ok


def test_as_dict_is_json_and_keyed_by_check_name():
    as_dict = CheckReport([PASSING, FAILING]).as_dict()

    assert json.loads(json.dumps(as_dict)) == {
        "ok": False,
        "checks": {
            "rls_enabled_and_forced": {"ok": True, "detail": "forced on all four tables"},
            "canary_isolation": {"ok": False, "detail": "another tenant's context sees this tenant's canary"},
        },
    }


def test_render_names_each_failed_check():
    text = CheckReport([PASSING, FAILING]).render("acme")

    assert text.splitlines()[0] == "acme: 1 of 2 checks failed: canary_isolation"
    assert "FAIL  canary_isolation: another tenant's context" in text
    assert "ok    rls_enabled_and_forced" in text


def test_check_failed_reads_as_the_report_and_survives_pickling():
    error = CheckFailed(CheckReport([FAILING]), title="onboarding checks failed for tenant acme")

    restored = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own object, round-tripped)

    assert str(restored) == str(error)
    assert str(error).startswith("onboarding checks failed for tenant acme: 1 of 1 checks failed")
