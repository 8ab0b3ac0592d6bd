"""The rendered rule groups, without Prometheus: scoping, labels, severity routing and thresholds by tier,
then `promtool check rules` over every tenant's groups (the repository's tenants and a generated fleet)."""

from __future__ import annotations

import pytest

from components.observability import metrics as m
from components.observability import rules
from tenancy.model import Tenant, Tier
from tests.observability import promtool
from tests.observability.promql import scoping_problems, selectors

# The routing documented in docs/observability.md, written out independently of rules.SEVERITY.
PAGING_ALERTS = {"TenantWebhookSignatureFailures", "TenantErrorBudgetBurn1h", "TenantErrorBudgetBurn6h",
                 "TenantEnhancementQueueStalled", "TenantVerificationFailing"}
EVERY_ALERT = PAGING_ALERTS | {"TenantErrorBudgetBurn3d", "TenantEnhancementLatencyHigh",
                               "TenantServiceDeskWritebackFailing", "TenantVerificationStale", "TenantSilent"}


def all_rules(tenant: Tenant) -> list[dict]:
    return [rule for group in rules.rule_groups(tenant) for rule in group["rules"]]


def alerts_of(tenant: Tenant) -> dict[str, dict]:
    return {rule["alert"]: rule for rule in all_rules(tenant) if "alert" in rule}


def test_the_catalogue_is_the_documented_one():
    assert set(rules.ALERT_URGENCY) == EVERY_ALERT
    assert {name for name, urgency in rules.ALERT_URGENCY.items() if urgency == rules.PAGE} == PAGING_ALERTS


def test_every_expression_reads_only_its_own_tenants_series(fleet):
    for tenant in fleet:
        for rule in all_rules(tenant):
            assert selectors(rule["expr"]), rule
            assert scoping_problems(rule["expr"], str(tenant.tenant_id)) == [], (tenant.slug, rule["expr"])


def test_the_scoping_check_catches_an_unscoped_or_foreign_selector(fleet):
    mine, other = str(fleet[0].tenant_id), str(fleet[1].tenant_id)
    assert scoping_problems(f'sum(rate({m.WRITEBACK_ERRORS.name}[5m]))', mine)
    assert scoping_problems(f'{m.QUEUE_DEPTH.name}{{tenant_id=~".+"}}', mine)
    assert scoping_problems(m.QUEUE_DEPTH.selector(other), mine)
    assert scoping_problems(f'{m.QUEUE_DEPTH.selector(mine)} and on() up{{job="x"}}', mine)


@pytest.mark.parametrize("tier", [Tier.PREMIUM, Tier.BASIC])
def test_alerts_carry_tenant_labels_and_severity_by_tier(fleet, tier):
    for tenant in (t for t in fleet if t.tier is tier):
        for name, rule in alerts_of(tenant).items():
            expected = "critical" if tier is Tier.PREMIUM and name in PAGING_ALERTS else "warning"
            assert rule["labels"] == {"tenant_id": str(tenant.tenant_id), "slug": tenant.slug, "tier": tier.value,
                                      "severity": expected}, name
            assert rule["annotations"]["summary"].startswith(f"tenant {tenant.slug} ({tier.value}): ")


def test_basic_tenants_never_page(fleet):
    for tenant in (t for t in fleet if t.tier is Tier.BASIC):
        assert {rule["labels"]["severity"] for rule in alerts_of(tenant).values()} == {"warning"}


def test_the_silent_tenant_alert_exists_only_where_the_file_enables_it(fleet):
    for tenant in fleet:
        alerts = alerts_of(tenant)
        hours = tenant.observability.silent_after_hours
        assert ("TenantSilent" in alerts) == (hours is not None), tenant.slug
        if hours:
            assert alerts["TenantSilent"]["expr"].endswith(f"> {hours * 3600}")


def test_a_suspended_tenant_is_not_called_silent_and_its_refusals_burn_no_budget(fleet):
    """Suspended, its webhooks are refused (423) on purpose: nothing is accepted, which is no alert; and a 423 is
    its own outcome, neither good nor bad for the SLO."""
    from components.observability import metrics as m
    from tenancy.model import TenantState

    [tenant] = [t for t in fleet if t.slug == "fleet-basic-silent"]
    suspended = tenant.model_copy(update={"state": TenantState.SUSPENDED})
    assert "TenantSilent" in alerts_of(tenant)
    assert "TenantSilent" not in alerts_of(suspended)
    assert set(alerts_of(suspended)) == set(alerts_of(tenant)) - {"TenantSilent"}
    assert "suspended" in m.WEBHOOK_OUTCOMES and "suspended" not in m.SLI_VALID_OUTCOMES


@pytest.mark.parametrize(("slug", "objective"), [("acme", "0.999"), ("globex", "0.995"),
                                                 ("fleet-premium-tuned", "0.9995"), ("fleet-basic-silent", "0.95")])
def test_burn_rate_thresholds_follow_the_tier_or_the_files_objective(fleet, slug, objective):
    [tenant] = [t for t in fleet if t.slug == slug]
    budget = 1 - float(objective)
    alerts = alerts_of(tenant)
    for name, factor, long_window, short_window in (("TenantErrorBudgetBurn1h", 14.4, "1h", "5m"),
                                                    ("TenantErrorBudgetBurn6h", 6, "6h", "30m"),
                                                    ("TenantErrorBudgetBurn3d", 1, "3d", "6h")):
        expr = alerts[name]["expr"]
        [(long_ratio, threshold), (short_ratio, same)] = [part.rsplit(" > ", 1) for part in expr.split(" and ")]
        assert float(threshold) == float(same) == pytest.approx(factor * budget)
        assert long_ratio.startswith(m.error_ratio_record(long_window) + "{")
        assert short_ratio.startswith(m.error_ratio_record(short_window) + "{")
        assert "e" not in threshold.lower() and len(threshold) <= 8  # 0.0144, not 0.014400000000000013


def test_recording_rules_cover_every_window_an_alert_compares(fleet):
    recorded = {rule["record"] for rule in all_rules(fleet[0]) if "record" in rule}
    assert recorded == {m.error_ratio_record(w) for w in ("5m", "30m", "1h", "6h", "3d")}


def test_tier_defaults_and_overrides_set_latency_and_queue_thresholds(fleet):
    by_slug = {t.slug: alerts_of(t) for t in fleet}
    for slug, p95, age in (("acme", 60, 300), ("globex", 120, 900), ("fleet-premium-tuned", 30, 120)):
        assert by_slug[slug]["TenantEnhancementLatencyHigh"]["expr"].endswith(f"> {p95}")
        assert by_slug[slug]["TenantEnhancementQueueStalled"]["expr"].endswith(f"> {age}")


def test_group_names_are_unique_across_the_fleet(fleet):
    names = [group["name"] for tenant in fleet for group in rules.rule_groups(tenant)]
    assert len(names) == len(set(names))


def test_a_selector_refuses_what_the_contract_does_not_have():
    with pytest.raises(ValueError, match="no label 'status'"):
        m.WEBHOOK_REQUESTS.selector("t", status="error")
    with pytest.raises(ValueError, match="no value 'timeout'"):
        m.WEBHOOK_REQUESTS.selector("t", outcome="timeout")
    with pytest.raises(ValueError, match="no series"):
        m.QUEUE_DEPTH.selector("t", suffix="_bucket")


def test_promtool_checks_every_tenants_rules(fleet, tmp_path):
    files = [promtool.write_rule_file(tmp_path / f"{t.slug}.rules.json", rules.rule_groups(t)) for t in fleet]
    result = promtool.check_rules(*files)
    assert result.stdout.count("SUCCESS") == len(fleet)
    for tenant in fleet:
        assert f"SUCCESS: {len(all_rules(tenant))} rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path):
    """The check is real: a rule promtool cannot parse fails it."""
    broken = promtool.write_rule_file(tmp_path / "broken.json", [{"name": "g", "rules": [
        {"alert": "X", "expr": "sum by (tenant_id) (rate(x{tenant_id=\"a\"}[5m]"}]}])
    result = promtool.run("check", "rules", str(broken))
    assert result.returncode != 0 and "parse error" in (result.stdout + result.stderr).lower()


def test_a_missing_promtool_fails_with_how_to_get_it(monkeypatch):
    monkeypatch.setenv("PROMTOOL", "/nonexistent/promtool")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y --no-install-recommends prometheus"):
        promtool.promtool_path()
