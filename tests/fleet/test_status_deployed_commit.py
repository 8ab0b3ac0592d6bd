"""`tenantctl status` shows the commit each stack's last `up` deployed (fleet rule 7): during a gated release the
canaries show the new commit and the held stacks the previous one. No engine: the stack's facts are given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from fleet import status as fleet_status
from fleet.status import StackFacts
from tenancy.model import Tenant
from tests.tenant_text import tenant_yaml

DIGEST = "v1:" + "d" * 64
NEW, OLD = "1" * 40, "2" * 40


def tenant(slug: str, tier: str = "basic") -> Tenant:
    from ruamel.yaml import YAML

    return Tenant.model_validate(YAML(typ="safe").load(tenant_yaml(slug, tier=tier)))


def test_status_shows_the_deployed_commit_of_each_stack():
    now = datetime.now(UTC)
    checked = (now - timedelta(hours=1)).isoformat(timespec="seconds")
    statuses = [fleet_status._status(tenant(slug), StackFacts(f"prod.{slug}", applied_digest=DIGEST,
                                                              deployed_commit=commit, checks={"rls": True},
                                                              checked_at=checked, last_result="succeeded",
                                                              last_update=checked),
                                     None, None, "prod", now, timedelta(days=7), desired_digest=DIGEST)
                for slug, commit in (("acme", NEW), ("globex", OLD))]
    report = fleet_status.StatusReport("prod", statuses, [], [], False, timedelta(days=7))
    assert [t["deployed_commit"] for t in report.as_dict()["tenants"]] == [NEW, OLD]
    console = Console(width=300, record=True)
    console.print(fleet_status.status_table(report))
    text = console.export_text()
    assert f"dddddddddddd @ {NEW[:12]}" in text and f"dddddddddddd @ {OLD[:12]}" in text
