"""`promtool test rules` on synthetic series: every alert fires for the tenant it belongs to and for no other
(from the pure renderer and from `tenantctl plan`'s objects), and the burn-rate alerts fire on a fast burn,
not on an error rate within the budget or on a short spike."""

from __future__ import annotations

import pytest

from components.observability import rules
from fleet.plan import build_plan
from tests.conftest import ROOT
from tests.observability import promtool, scenarios


def rule_files_from_renderer(tenants, directory):
    return [promtool.write_rule_file(directory / f"{t.slug}.rules.json", rules.rule_groups(t)).name for t in tenants]


def rule_files_from_plan(fleet_dir, directory):
    """The rule groups exactly as `tenantctl plan` declares the PrometheusRule objects of each tenant."""
    names = []
    for tenant in build_plan(ROOT, fleet_dir, "dev").tenants:
        [rule] = [o for o in tenant.kubernetes_objects() if o["kind"] == "PrometheusRule"]
        path = promtool.write_rule_file(directory / f"{tenant.slug}.plan.rules.json", rule["spec"]["groups"])
        names.append(path.name)
    return names


@pytest.mark.parametrize("source", ["renderer", "plan"])
def test_each_alert_fires_for_its_own_tenant_only(fleet, fleet_dir, tmp_path, source):
    files = (rule_files_from_renderer(fleet, tmp_path) if source == "renderer"
             else rule_files_from_plan(fleet_dir, tmp_path))
    test_file = scenarios.write_test_file(tmp_path / "isolation.test.json", scenarios.isolation_test(files, fleet))
    result = promtool.test_rules(test_file)
    assert "SUCCESS" in result.stdout


def test_the_isolation_test_fails_when_a_rule_reads_every_tenant(fleet, tmp_path):
    """The test above can fail: with one tenant's queue rule unscoped, another tenant's stalled queue fires it."""
    victim, *_ = fleet
    groups = rules.rule_groups(victim)
    for rule in groups[1]["rules"]:
        if rule.get("alert") == "TenantEnhancementQueueStalled":
            rule["expr"] = rule["expr"].replace(f'{{tenant_id="{victim.tenant_id}"}}', "")
    others = fleet[1:3]
    files = [promtool.write_rule_file(tmp_path / f"{victim.slug}.rules.json", groups).name,
             *rule_files_from_renderer(others, tmp_path)]
    test_file = scenarios.write_test_file(tmp_path / "isolation.test.json",
                                          scenarios.isolation_test(files, [victim, *others]))
    result = promtool.run("test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode != 0 and "TenantEnhancementQueueStalled" in result.stdout + result.stderr


def test_burn_rate_alerts_page_on_a_fast_burn_only(fleet, tmp_path):
    tenants = [t for t in fleet if t.slug in ("acme", "globex", "fleet-premium-tuned", "fleet-basic-silent")]
    files = rule_files_from_renderer(tenants, tmp_path)
    test_file = scenarios.write_test_file(tmp_path / "fast-burn.test.json", {
        "rule_files": files, "evaluation_interval": "5m",
        "tests": [scenarios.fast_burn_test(t) for t in tenants],
    })
    promtool.test_rules(test_file)


def test_burn_rate_alerts_stay_quiet_within_the_budget_and_ticket_a_slow_burn(fleet, tmp_path):
    tenants = [t for t in fleet if t.slug in ("acme", "fleet-basic-silent")]  # the default and the lowest objective
    files = rule_files_from_renderer(tenants, tmp_path)
    test_file = scenarios.write_test_file(tmp_path / "slow-burn.test.json", {
        "rule_files": files, "evaluation_interval": "5m",
        "tests": [test for t in tenants for test in scenarios.slow_burn_tests(t)],
    })
    promtool.test_rules(test_file)
