"""Synthetic series and expected alerts, written as promtool rule unit tests (`promtool test rules`).

A tenant in trouble has every signal bad at once (failing signatures, 5xx, slow enhancements, a stalled
queue, failing write-backs and checks, no recent check run or webhook); a healthy one has none. The
expected alert labels are written from the tenant file and the documented routing, not read back from
the rules; only the annotations (prose) are taken from the rendered rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from components.observability import metrics as m
from components.observability import rules
from tenancy.model import Tenant, Tier

PAGING_ALERTS = {"TenantWebhookSignatureFailures", "TenantErrorBudgetBurn1h", "TenantErrorBudgetBurn6h",
                 "TenantEnhancementQueueStalled", "TenantVerificationFailing"}
PROBE_JOB = "tenant-verification"
FAILING_CHECK, PASSING_CHECK = "webhook_signed_probe_accepted", "cross_tenant_isolation"


def series(metric: m.Metric, tenant: Tenant, suffix: str = "", **labels: str) -> str:
    pairs = {m.TENANT_ID: str(tenant.tenant_id), **labels}
    return f"{metric.name}{suffix}{{{','.join(f'{k}={json.dumps(v)}' for k, v in pairs.items())}}}"


def counter(increments: Iterable[float]) -> str:
    """Cumulative values, one a step, from each step's increment (the first sample is 0)."""
    total, values = 0.0, ["0"]
    for step in increments:
        total += step
        values.append(f"{total:.12g}")
    return " ".join(values)


def constant(value: float, steps: int) -> str:
    return f"{value}+0x{steps}"


def ramp(start: float, step: float, steps: int) -> str:
    return f"{start}+{step}x{steps}"


def expected_labels(tenant: Tenant, alert: str, **extra: str) -> dict[str, str]:
    page = tenant.tier is Tier.PREMIUM and alert in PAGING_ALERTS
    return {"tenant_id": str(tenant.tenant_id), "slug": tenant.slug, "tier": tenant.tier.value,
            "severity": "critical" if page else "warning", **extra}


def annotations(tenant: Tenant, alert: str, **labels: str) -> dict[str, str]:
    [rule] = [r for g in rules.rule_groups(tenant) for r in g["rules"] if r.get("alert") == alert]
    expanded = {}
    for key, text in rule["annotations"].items():
        for label, value in labels.items():
            text = text.replace(f"{{{{ $labels.{label} }}}}", value)
        assert "{{" not in text, f"{alert}: unexpected template in {key}: {text}"
        expanded[key] = text
    return expanded


def expected_alert(tenant: Tenant, alert: str, **extra: str) -> dict:
    return {"exp_labels": expected_labels(tenant, alert, **extra),
            "exp_annotations": annotations(tenant, alert, **extra)}


def tenant_series(tenant: Tenant, troubled: bool, minutes: int) -> list[dict]:
    """Every series of the contract for one tenant over `minutes` one-minute steps (time() is the minute * 60)."""
    slug = tenant.slug
    n = minutes
    if troubled:
        accepted, errors, bad_signature, failures, writeback = 10, 200, 100, 100, 5
        fast, slow = 0, 10  # every enhancement slower than the last finite bucket
        oldest_age, probe, last_run, last_webhook = constant(4000, n), constant(0, n), constant(0, n), constant(0, n)
    else:
        accepted, errors, bad_signature, failures, writeback = 50, 0, 0, 0, 0
        fast, slow = 10, 0  # every enhancement within a second
        oldest_age, probe, last_run, last_webhook = constant(0, n), constant(1, n), ramp(0, 60, n), ramp(0, 60, n)
    requests = {"accepted": accepted, "error": errors, "bad_signature": bad_signature, "rate_limited": 0}
    out = [{"series": series(m.WEBHOOK_REQUESTS, tenant, outcome=o), "values": ramp(0, v, n)}
           for o, v in requests.items()]
    out.append({"series": series(m.SIGNATURE_FAILURES, tenant, reason="mismatch"), "values": ramp(0, failures, n)})
    for bound in m.ENHANCEMENT_DURATION.buckets:
        out.append({"series": series(m.ENHANCEMENT_DURATION, tenant, "_bucket", le=str(bound)),
                    "values": ramp(0, fast, n)})
    out.append({"series": series(m.ENHANCEMENT_DURATION, tenant, "_bucket", le="+Inf"),
                "values": ramp(0, fast + slow, n)})
    out += [
        {"series": series(m.QUEUE_OLDEST_AGE, tenant), "values": oldest_age},
        {"series": series(m.QUEUE_DEPTH, tenant), "values": constant(40 if troubled else 0, n)},
        {"series": series(m.WRITEBACK_ERRORS, tenant), "values": ramp(0, writeback, n)},
        {"series": series(m.LAST_WEBHOOK, tenant), "values": last_webhook},
        # As the Pushgateway serves them: with its job label, which the rules aggregate away.
        {"series": series(m.PROBE_SUCCESS, tenant, slug=slug, check=FAILING_CHECK, job=PROBE_JOB), "values": probe},
        {"series": series(m.PROBE_SUCCESS, tenant, slug=slug, check=PASSING_CHECK, job=PROBE_JOB),
         "values": constant(1, n)},
        {"series": series(m.PROBE_LAST_RUN, tenant, slug=slug, job=PROBE_JOB), "values": last_run},
    ]
    return out


def troubled_alerts(tenant: Tenant) -> dict[str, list[dict]]:
    """What a tenant in trouble fires, per alert name (an empty list for an alert it must not fire)."""
    silent_enabled = tenant.effective_observability.silent_after_hours is not None
    return {
        name: [] if name == "TenantSilent" and not silent_enabled
        else [expected_alert(tenant, name, check=FAILING_CHECK)] if name == "TenantVerificationFailing"
        else [expected_alert(tenant, name)]
        for name in rules.ALERT_URGENCY
    }


ISOLATION_MINUTES = 240  # 4h: past every `for`, the 3h stale-verification and any silent-tenant threshold


def isolation_test(rule_files: list[str], fleet: list[Tenant]) -> dict:
    """One test per tenant: it is in trouble and every other tenant is healthy. Each alert name must fire for
    exactly that tenant, although every tenant's rules see the same bad series; plus a test where all are well."""
    eval_time = f"{ISOLATION_MINUTES}m"
    tests = []
    for troubled in [*fleet, None]:
        input_series = [s for t in fleet for s in tenant_series(t, t is troubled, ISOLATION_MINUTES)]
        expected = troubled_alerts(troubled) if troubled is not None else {}
        tests.append({
            "name": f"{troubled.slug} in trouble, every other tenant healthy" if troubled else "every tenant healthy",
            "interval": "1m",
            "input_series": input_series,
            "alert_rule_test": [{"eval_time": eval_time, "alertname": name, "exp_alerts": expected.get(name, [])}
                                for name in rules.ALERT_URGENCY],
        })
    # Rules are evaluated every 5 minutes (the series have a sample a minute): every `for` is a multiple of it.
    return {"rule_files": rule_files, "evaluation_interval": "5m", "tests": tests}


# --- burn rates -----------------------------------------------------------------------------------

BURN_ALERTS = [a.alert for a in rules.BURN_RATE_ALERTS]
PER_MINUTE = 1000  # valid deliveries (accepted + error) a minute


def _ratio_series(tenant: Tenant, ratios: list[float], requests: int = PER_MINUTE) -> list[dict]:
    """The tenant's deliveries when step i has error ratio ratios[i] (and no client-side failures)."""
    return [
        {"series": series(m.WEBHOOK_REQUESTS, tenant, outcome="accepted"),
         "values": counter(requests * (1 - r) for r in ratios)},
        {"series": series(m.WEBHOOK_REQUESTS, tenant, outcome="error"),
         "values": counter(requests * r for r in ratios)},
        {"series": series(m.WEBHOOK_REQUESTS, tenant, outcome="bad_signature"), "values": ramp(0, 0, len(ratios))},
        {"series": series(m.WEBHOOK_REQUESTS, tenant, outcome="rate_limited"), "values": ramp(0, 0, len(ratios))},
    ]


def _expect(tenant: Tenant, eval_time: str, firing: set[str]) -> list[dict]:
    return [{"eval_time": eval_time, "alertname": name,
             "exp_alerts": [expected_alert(tenant, name)] if name in firing else []} for name in BURN_ALERTS]


def fast_burn_test(tenant: Tenant) -> dict:
    """Minute steps over 11h: healthy for 6h; a 10-minute spike at twice the fast-burn rate (6h00-6h10), which
    spends too little budget to page; healthy until a 1h outage at twice the fast-burn rate (9h-10h); healthy.

    - 6h15: nothing (the 5m window is high, the 1h window is not);
    - 9h05: nothing yet (2% of the budget is not gone yet);
    - 9h55: the 1h page, and the 3-day ticket (the 6h window is at 4x, under its 6x). Not earlier: where the
      outage is capped at 95% errors (a low objective), the 1h window passes the page's threshold only after about
      46 minutes, and promtool may evaluate the alerting group before the recording group at a step, seeing
      the ratios one evaluation late (a test once failed at 9h50 that way);
    - 10h10: the 1h page resolved (its 5m window is clean again), the ticket stays.
    """
    budget = float(rules.error_budget(tenant.effective_observability.slo_objective))
    outage = min(2 * 14.4 * budget, 0.95)
    ratios = [0.0] * 360 + [outage] * 10 + [0.0] * 170 + [outage] * 60 + [0.0] * 60
    return {
        "name": f"{tenant.slug}: a fast burn pages, a short spike does not, a recovery resolves",
        "interval": "1m",
        "input_series": _ratio_series(tenant, ratios),
        "alert_rule_test": (_expect(tenant, "6h15m", set()) + _expect(tenant, "9h5m", set())
                            + _expect(tenant, "9h55m", {"TenantErrorBudgetBurn1h", "TenantErrorBudgetBurn3d"})
                            + _expect(tenant, "10h10m", {"TenantErrorBudgetBurn3d"})),
    }


def slow_burn_tests(tenant: Tenant) -> list[dict]:
    """Five-minute steps over three days: an error ratio of half the budget never alerts; twice the budget
    opens the 3-day ticket and pages nobody."""
    budget = float(rules.error_budget(tenant.effective_observability.slo_objective))
    steps = 3 * 24 * 12
    checkpoints = ("1h", "6h", "1d", "3d")
    return [
        {"name": f"{tenant.slug}: an error ratio within the budget never alerts",
         "interval": "5m",
         "input_series": _ratio_series(tenant, [0.5 * budget] * steps, requests=5 * PER_MINUTE),
         "alert_rule_test": [e for at in checkpoints for e in _expect(tenant, at, set())]},
        {"name": f"{tenant.slug}: a slow burn (2x) opens a ticket only",
         "interval": "5m",
         "input_series": _ratio_series(tenant, [2 * budget] * steps, requests=5 * PER_MINUTE),
         "alert_rule_test": [e for at in ("1d", "3d") for e in _expect(tenant, at, {"TenantErrorBudgetBurn3d"})]},
    ]


def write_test_file(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content, indent=1))
    return path
