"""A tenant's Prometheus alerting and recording rules, rendered from its tenant file (no Pulumi here).

Every expression selects only the tenant's own series (`tenant_id="<uuid>"`, through `metrics`), so one
tenant's rules can neither fire on nor hide another tenant's trouble. Every alert carries the labels
`tenant_id`, `slug`, `tier` and `severity`; the severity comes from the alert's urgency and the tenant's
tier (`SEVERITY`, documented in docs/observability.md): premium tenants' urgent alerts page
(`critical`), everything else opens a ticket (`warning`).

The success-ratio SLO uses the multi-window, multi-burn-rate alerts of the Google SRE workbook (chapter
"Alerting on SLOs"), over a 30-day budget: 14.4x over 1h and 5m (2% of the budget in an hour) and 6x
over 6h and 30m (5% in six hours) are urgent; 1x over 3d and 6h (10% in three days) is a ticket. The
error ratio per window is a recording rule, so each alert compares two recorded series.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pulumi

from components import naming
from components.observability import metrics as m
from tenancy.model import Tenant, Tier

PROMETHEUS_RULE_API_VERSION = "monitoring.coreos.com/v1"
PROMETHEUS_RULE_KIND = "PrometheusRule"

PAGE, TICKET = "page", "ticket"
# (tier, urgency) -> the `severity` label Alertmanager routes on.
SEVERITY = {
    (Tier.PREMIUM, PAGE): "critical",
    (Tier.PREMIUM, TICKET): "warning",
    (Tier.BASIC, PAGE): "warning",
    (Tier.BASIC, TICKET): "warning",
}


@dataclass(frozen=True)
class BurnRateAlert:
    alert: str
    factor: float
    long_window: str
    short_window: str
    urgency: str
    budget_spent: str  # what firing means, for the description


BURN_RATE_ALERTS = (
    BurnRateAlert("TenantErrorBudgetBurn1h", 14.4, "1h", "5m", PAGE, "2% of the 30-day error budget in 1 hour"),
    BurnRateAlert("TenantErrorBudgetBurn6h", 6, "6h", "30m", PAGE, "5% of the 30-day error budget in 6 hours"),
    BurnRateAlert("TenantErrorBudgetBurn3d", 1, "3d", "6h", TICKET, "10% of the 30-day error budget in 3 days"),
)

# Fixed thresholds (the tier-dependent ones are the tenant file's `observability` section).
SIGNATURE_WINDOW = "15m"
SIGNATURE_MIN_FAILURES = 3
SIGNATURE_MIN_RATIO = 0.2
LATENCY_QUANTILE = 0.95
LATENCY_WINDOW = "15m"
WRITEBACK_WINDOW = "15m"
WRITEBACK_MIN_ERRORS = 3
VERIFICATION_STALE_SECONDS = 3 * 3600

# Every alert a tenant can get and its urgency; `TenantSilent` only with `observability.silent_after_hours`.
ALERT_URGENCY = {
    "TenantWebhookSignatureFailures": PAGE,
    **{a.alert: a.urgency for a in BURN_RATE_ALERTS},
    "TenantEnhancementLatencyHigh": TICKET,
    "TenantEnhancementQueueStalled": PAGE,
    "TenantServiceDeskWritebackFailing": TICKET,
    "TenantVerificationFailing": PAGE,
    "TenantVerificationStale": TICKET,
    "TenantSilent": TICKET,
}


def _seconds(window: str) -> int:
    units = {"m": 60, "h": 3600, "d": 86400}
    return int(window[:-1]) * units[window[-1]]


# Each window an alert compares, shortest first: one recording rule per window.
RECORD_WINDOWS = tuple(sorted({w for a in BURN_RATE_ALERTS for w in (a.long_window, a.short_window)}, key=_seconds))


def severity(tier: Tier, urgency: str) -> str:
    return SEVERITY[(tier, urgency)]


def _number(value: Decimal | float | int) -> str:
    """A threshold as PromQL reads it, without float noise (14.4 * (1 - 0.999) is 0.0144, not 0.014400000000000013)."""
    return format(Decimal(str(value)).normalize(), "f")


def error_budget(objective: float) -> Decimal:
    return Decimal(1) - Decimal(str(objective))


def burn_threshold(objective: float, factor: float) -> Decimal:
    return Decimal(str(factor)) * error_budget(objective)


def percent(fraction: float | Decimal) -> str:
    return f"{_number(Decimal(str(fraction)) * 100)}%"


def _duration(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def recording_rules(tenant: Tenant) -> list[dict]:
    tenant_id = str(tenant.tenant_id)
    rules = []
    for window in RECORD_WINDOWS:
        bad = m.WEBHOOK_REQUESTS.selector(tenant_id, outcome=_one_or_many(m.SLI_BAD_OUTCOMES))
        valid = m.WEBHOOK_REQUESTS.selector(tenant_id, outcome=m.SLI_VALID_OUTCOMES)
        rules.append({
            "record": m.error_ratio_record(window),
            "expr": f"sum by (tenant_id) (rate({bad}[{window}])) / sum by (tenant_id) (rate({valid}[{window}]))",
        })
    return rules


def _one_or_many(values: tuple[str, ...]) -> str | tuple[str, ...]:
    return values[0] if len(values) == 1 else values


def alerting_rules(tenant: Tenant) -> list[dict]:
    tenant_id, slug, tier = str(tenant.tenant_id), tenant.slug, tenant.tier
    settings = tenant.effective_observability
    objective = settings.slo_objective
    who = f"tenant {slug} ({tier.value})"

    def alert(name: str, expr: str, duration: str | None, summary: str, description: str) -> dict:
        rule: dict = {"alert": name, "expr": expr}
        if duration:
            rule["for"] = duration
        rule["labels"] = {"tenant_id": tenant_id, "slug": slug, "tier": tier.value,
                          "severity": severity(tier, ALERT_URGENCY[name])}
        rule["annotations"] = {
            "summary": f"{who}: {summary}",
            "description": description,
            "runbook": f"docs/observability.md#{name.lower()}",
            "dashboard_uid": naming.dashboard_uid(tenant_id),
        }
        return rule

    failures = m.SIGNATURE_FAILURES.selector(tenant_id)
    bad_signature = m.WEBHOOK_REQUESTS.selector(tenant_id, outcome="bad_signature")
    every_request = m.WEBHOOK_REQUESTS.selector(tenant_id)
    rules = [alert(
        "TenantWebhookSignatureFailures",
        f"sum by (tenant_id) (increase({failures}[{SIGNATURE_WINDOW}])) >= {SIGNATURE_MIN_FAILURES}"
        f" and sum by (tenant_id) (rate({bad_signature}[{SIGNATURE_WINDOW}]))"
        f" / sum by (tenant_id) (rate({every_request}[{SIGNATURE_WINDOW}])) > {_number(SIGNATURE_MIN_RATIO)}",
        "5m",
        "webhook signatures are failing",
        f"At least {SIGNATURE_MIN_FAILURES} webhook deliveries, and more than {percent(SIGNATURE_MIN_RATIO)} of "
        f"all, failed signature verification over {SIGNATURE_WINDOW}. After a signing-secret rotation the "
        f"client's ServiceDesk Plus still signs with the old secret; otherwise someone is sending forged requests.",
    )]

    for burn in BURN_RATE_ALERTS:
        threshold = _number(burn_threshold(objective, burn.factor))
        long_ratio = m.recorded_selector(m.error_ratio_record(burn.long_window), tenant_id)
        short_ratio = m.recorded_selector(m.error_ratio_record(burn.short_window), tenant_id)
        rules.append(alert(
            burn.alert,
            f"{long_ratio} > {threshold} and {short_ratio} > {threshold}",
            None,
            f"webhook error budget burning at {_number(burn.factor)}x ({burn.long_window} and {burn.short_window})",
            f"More than {percent(burn_threshold(objective, burn.factor))} of the webhook deliveries the platform "
            f"answered failed (5xx) over both {burn.long_window} and {burn.short_window}: {_number(burn.factor)} "
            f"times the error budget of the {percent(objective)} objective, {burn.budget_spent}.",
        ))

    p95 = settings.enhancement_p95_seconds
    buckets = m.ENHANCEMENT_DURATION.selector(tenant_id, suffix="_bucket")
    rules.append(alert(
        "TenantEnhancementLatencyHigh",
        f"histogram_quantile({_number(LATENCY_QUANTILE)}, sum by (tenant_id, le) (rate({buckets}[{LATENCY_WINDOW}])))"
        f" > {p95}",
        "15m",
        f"p95 enhancement time above {_duration(p95)}",
        f"The 95th percentile of the time from an accepted webhook to the enhancement written back to "
        f"ServiceDesk Plus has been above {_duration(p95)} for 15 minutes (LLM latency, context sources, "
        f"or a slow ServiceDesk Plus API).",
    ))

    queue_age = settings.queue_age_seconds
    rules.append(alert(
        "TenantEnhancementQueueStalled",
        f"max by (tenant_id) ({m.QUEUE_OLDEST_AGE.selector(tenant_id)}) > {queue_age}",
        "5m",
        f"oldest queued enhancement older than {_duration(queue_age)}",
        f"The tenant's oldest queued enhancement job has waited more than {_duration(queue_age)} for 5 minutes: "
        f"its workers are down, stuck or overloaded.",
    ))

    rules.append(alert(
        "TenantServiceDeskWritebackFailing",
        f"sum by (tenant_id) (increase({m.WRITEBACK_ERRORS.selector(tenant_id)}[{WRITEBACK_WINDOW}]))"
        f" >= {WRITEBACK_MIN_ERRORS}",
        "10m",
        "enhancements cannot be written back to ServiceDesk Plus",
        f"Write-backs to the client's ServiceDesk Plus keep failing (at least {WRITEBACK_MIN_ERRORS} in "
        f"{WRITEBACK_WINDOW}, for 10 minutes): a revoked or rotated API key, or their instance is down.",
    ))

    rules.append(alert(
        "TenantVerificationFailing",
        f"min by (tenant_id, check) ({m.PROBE_SUCCESS.selector(tenant_id)}) == 0",
        "10m",
        "scheduled verification failing ({{ $labels.check }})",
        "The scheduled onboarding check {{ $labels.check }} has failed for 10 minutes "
        "(`tenantctl verify " + slug + "` shows why).",
    ))

    rules.append(alert(
        "TenantVerificationStale",
        f"time() - max by (tenant_id) ({m.PROBE_LAST_RUN.selector(tenant_id)}) > {VERIFICATION_STALE_SECONDS}",
        None,
        "scheduled verification has not run recently",
        f"The tenant's checks last ran more than {_duration(VERIFICATION_STALE_SECONDS)} ago: the verification "
        f"CronJob is failing or suspended, so TenantVerificationFailing cannot fire.",
    ))

    if settings.silent_after_hours and not tenant.suspended:  # suspended, nothing is accepted on purpose
        hours = settings.silent_after_hours
        rules.append(alert(
            "TenantSilent",
            f"time() - max by (tenant_id) ({m.LAST_WEBHOOK.selector(tenant_id)}) > {hours * 3600}",
            "10m",
            f"no webhook for {hours}h",
            f"No webhook from the client's ServiceDesk Plus was accepted for more than {hours} hours "
            f"(observability.silent_after_hours): their webhook may be disabled or pointed elsewhere.",
        ))
    return rules


def rule_groups(tenant: Tenant) -> list[dict]:
    """The tenant's rule groups, as a Prometheus rule file and a PrometheusRule's `spec.groups` hold them."""
    slug = tenant.slug
    return [
        {"name": f"tenant-{slug}-slo", "rules": recording_rules(tenant)},
        {"name": f"tenant-{slug}-alerts", "rules": alerting_rules(tenant)},
    ]


def rules_namespace(tenant: Tenant, monitoring_namespace: pulumi.Input[str]) -> pulumi.Input[str]:
    """Where the tenant's PrometheusRule lives: its own namespace (premium) or the monitoring one (basic)."""
    return naming.namespace_name(tenant.slug) if tenant.tier is Tier.PREMIUM else monitoring_namespace


def render_prometheus_rule(tenant: Tenant, monitoring_namespace: pulumi.Input[str]) -> dict:
    """The tenant's PrometheusRule object. A premium tenant's, in its own namespace, is labelled as the tenant's
    object; a basic tenant's, in the monitoring namespace, only names the tenant it observes (see naming)."""
    tenant_id = str(tenant.tenant_id)
    labels = naming.observability_labels(tenant.slug, tenant_id, tenant.tier.value)
    if tenant.tier is Tier.PREMIUM:
        labels = {**naming.tenant_labels(tenant.slug, tenant_id, tenant.tier.value), **labels}
    return {
        "apiVersion": PROMETHEUS_RULE_API_VERSION,
        "kind": PROMETHEUS_RULE_KIND,
        "metadata": {
            "name": naming.alert_rules_name(tenant.slug),
            "namespace": rules_namespace(tenant, monitoring_namespace),
            "labels": labels,
        },
        "spec": {"groups": rule_groups(tenant)},
    }
