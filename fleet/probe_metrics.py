"""Scheduled verification as Prometheus series: `tenant_probe_success` and `tenant_probe_duration_seconds`.

`tenantctl verify --all --format prometheus` prints them for a node-exporter textfile collector, and
`--pushgateway URL` pushes them (the CronJob does). The names and labels are the metric contract's
(docs/observability.md), which the per-tenant alert rules read.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway

from checks.report import CheckReport, CheckResult
from components.observability.metrics import PROBE_DURATION, PROBE_LAST_RUN, PROBE_SUCCESS
from fleet.verification import VerifyOutcome
from tenancy.model import Tenant

PUSH_JOB = "tenant-verification"
SETUP_CHECK = "setup"  # the checks could not start (no row, a wrong key): every check counts as failed


class PushError(Exception):
    pass


def setup_failure(tenant: Tenant, reason: str) -> VerifyOutcome:
    return VerifyOutcome(tenant, CheckReport([CheckResult(SETUP_CHECK, False, reason)]), 0.0)


def registry_for(outcomes: list[VerifyOutcome]) -> CollectorRegistry:
    registry = CollectorRegistry()
    success, duration, finished = (Gauge(m.name, m.help, list(m.labels), registry=registry)
                                   for m in (PROBE_SUCCESS, PROBE_DURATION, PROBE_LAST_RUN))
    now = time.time()
    for outcome in outcomes:
        labels = {"tenant_id": str(outcome.tenant.tenant_id), "slug": outcome.tenant.slug}
        for result in outcome.report.results:
            success.labels(check=result.name, **labels).set(1 if result.ok else 0)
        duration.labels(**labels).set(outcome.seconds)
        finished.labels(**labels).set(now)
    return registry


def exposition_text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode("utf-8")


def push(gateway: str, registry: CollectorRegistry) -> None:
    """Replace this job's series on the Pushgateway (a removed tenant's series go with the next push)."""
    from urllib.parse import urlsplit

    parts = urlsplit(gateway if "://" in gateway else f"http://{gateway}")
    shown = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")  # never its credentials
    try:
        push_to_gateway(gateway, job=PUSH_JOB, registry=registry, timeout=15)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise PushError(f"could not push to the Pushgateway {shown}: {reason}") from None
