"""`tenantctl status` says how to fix what it finds with a command of the environment it reports: `--env E`, or
`--rehearsal` for the rehearsal (fleet rule 1: `--env rehearsal` would name a stack of the project's backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet.status import StatusReport, _status, orphan_lines
from tenancy.loader import require_tenants
from tests.conftest import ROOT


@pytest.mark.parametrize(("env", "option"), [("prod", "--env prod"), ("rehearsal", "--rehearsal")])
def test_the_hints_name_the_environments_own_commands(env, option):
    report = StatusReport(env, [], ["initech"], ["acme"], False, timedelta(days=7))
    lines = orphan_lines(report)
    assert f"`tenantctl destroy initech {option}`" in lines[0]
    assert f"`tenantctl up {option}` creates it" in lines[1]
    [acme] = [t for t in require_tenants(ROOT / "tenants") if t.slug == "acme"]
    status = _status(acme, None, None, None, env, datetime.now(UTC), timedelta(days=7))
    assert status.problems == [f"no stack yet: `tenantctl up {option}` creates it"]
