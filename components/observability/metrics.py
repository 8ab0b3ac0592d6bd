"""The metric contract: every per-tenant series the platform exposes, by name, type and labels.

One place for the names, so the alert rules (`rules.py`), the dashboard (`dashboard.py`), the
documentation (`docs/observability.md`, checked against this module by tests/observability) and
scheduled verification (`fleet/probe_metrics.py`, checked too) cannot drift apart.

Every series carries `tenant_id`, and only with ids of the tenant registry: the application labels a
request with its tenant only after it found the tenant's row, so the label's cardinality is the number of
tenants. Rules and panels select series through `Metric.selector`, which always scopes to one tenant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
APPLICATION, VERIFICATION = "application", "scheduled verification"
TENANT_ID = "tenant_id"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    source: str = APPLICATION
    # Labels whose values are a closed set (an exporter initialises each to 0 for every tenant).
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Histograms: the bucket boundaries the exporter should use (alert thresholds sit on them).
    buckets: tuple[float, ...] = ()

    @property
    def series_names(self) -> tuple[str, ...]:
        """The names Prometheus stores: a histogram is `_bucket`, `_count` and `_sum` series."""
        if self.kind == HISTOGRAM:
            return tuple(f"{self.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        return (self.name,)

    def selector(self, tenant_id: str, suffix: str = "", **matchers: str | tuple[str, ...]) -> str:
        """`name{tenant_id="<id>",label="value"}`; a tuple of values becomes a regular expression match.

        Refuses a label the metric does not have and a value outside a closed set, so a typo in a rule or a
        panel fails at render time instead of selecting nothing.
        """
        if TENANT_ID not in self.labels:
            raise ValueError(f"{self.name} has no {TENANT_ID} label")
        if suffix and f"{self.name}{suffix}" not in self.series_names:
            raise ValueError(f"{self.name} has no series {self.name}{suffix}")
        parts = [f"{TENANT_ID}={_quote(tenant_id)}"]
        for label, value in matchers.items():
            if label not in self.labels or label == TENANT_ID:
                raise ValueError(f"{self.name} has no label {label!r} to match (labels: {', '.join(self.labels)})")
            wanted = value if isinstance(value, tuple) else (value,)
            allowed = self.values.get(label)
            unknown = [v for v in wanted if allowed is not None and v not in allowed]
            if unknown:
                raise ValueError(f"{self.name}{{{label}}} has no value {unknown[0]!r} (values: {', '.join(allowed)})")
            parts.append(f"{label}={_quote(value)}" if isinstance(value, str)
                         else f"{label}=~{_quote('|'.join(value))}")
        return f"{self.name}{suffix}{{{','.join(parts)}}}"


def _quote(value: str) -> str:
    # PromQL strings take Go's escapes, which JSON's double-quoted strings are a subset of.
    return json.dumps(value)


WEBHOOK_OUTCOMES = ("accepted", "bad_signature", "rate_limited", "suspended", "error")
SIGNATURE_FAILURE_REASONS = ("missing", "malformed", "mismatch")
JOB_OUTCOMES = ("succeeded", "failed")

WEBHOOK_REQUESTS = Metric(
    "servicedesk_webhook_requests_total", COUNTER, (TENANT_ID, "outcome"),
    "Webhook deliveries from the tenant's ServiceDesk Plus, by how they ended: accepted (202), bad_signature "
    "(401), rate_limited (429, over enhancement_preferences.rate_limits), suspended (423, the tenant is suspended) "
    "or error (5xx, the platform's fault).",
    values={"outcome": WEBHOOK_OUTCOMES},
)
SIGNATURE_FAILURES = Metric(
    "servicedesk_webhook_signature_failures_total", COUNTER, (TENANT_ID, "reason"),
    "Webhook deliveries refused for their X-ServiceDesk-Signature: missing header, malformed (not hex), "
    "or mismatch (signed with another secret, typically after a rotation the client has not applied).",
    values={"reason": SIGNATURE_FAILURE_REASONS},
)
WEBHOOK_DURATION = Metric(
    "servicedesk_webhook_duration_seconds", HISTOGRAM, (TENANT_ID,),
    "Time to answer a webhook delivery (verify, enqueue, respond), every outcome.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUEUE_DEPTH = Metric(
    "enhancement_queue_depth", GAUGE, (TENANT_ID,),
    "Enhancement jobs of the tenant waiting in the queue.",
)
QUEUE_OLDEST_AGE = Metric(
    "enhancement_queue_oldest_message_age_seconds", GAUGE, (TENANT_ID,),
    "Age of the tenant's oldest queued enhancement job; 0 when its queue is empty.",
)
ENHANCEMENT_JOBS = Metric(
    "enhancement_jobs_total", COUNTER, (TENANT_ID, "outcome"),
    "Enhancement jobs finished, by outcome (failed: given up after retries).",
    values={"outcome": JOB_OUTCOMES},
)
ENHANCEMENT_DURATION = Metric(
    "enhancement_duration_seconds", HISTOGRAM, (TENANT_ID,),
    "End to end: from the webhook's acceptance to the enhancement written back to ServiceDesk Plus.",
    buckets=(1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0),
)
WRITEBACK_ERRORS = Metric(
    "servicedesk_writeback_errors_total", COUNTER, (TENANT_ID,),
    "Failed calls to the tenant's ServiceDesk Plus API writing an enhancement back (each attempt).",
)
LAST_WEBHOOK = Metric(
    "servicedesk_last_webhook_timestamp_seconds", GAUGE, (TENANT_ID,),
    "Unix time of the tenant's last accepted webhook (set at start from the tenant's stored history).",
)
PROBE_SUCCESS = Metric(
    "tenant_probe_success", GAUGE, (TENANT_ID, "slug", "check"),
    "1 when the tenant's scheduled check passed, 0 when it failed; `check` is the OnboardingCheck's name "
    "for it (webhook_signed_probe_accepted, cross_tenant_isolation, ...) or `setup` when none could start.",
    source=VERIFICATION,
)
PROBE_DURATION = Metric(
    "tenant_probe_duration_seconds", GAUGE, (TENANT_ID, "slug"),
    "How long the tenant's scheduled checks took.",
    source=VERIFICATION,
)
PROBE_LAST_RUN = Metric(
    "tenant_probe_last_run_timestamp_seconds", GAUGE, (TENANT_ID, "slug"),
    "Unix time the tenant's scheduled checks last ran.",
    source=VERIFICATION,
)

CONTRACT: tuple[Metric, ...] = (
    WEBHOOK_REQUESTS, SIGNATURE_FAILURES, WEBHOOK_DURATION, QUEUE_DEPTH, QUEUE_OLDEST_AGE, ENHANCEMENT_JOBS,
    ENHANCEMENT_DURATION, WRITEBACK_ERRORS, LAST_WEBHOOK, PROBE_SUCCESS, PROBE_DURATION, PROBE_LAST_RUN,
)
BY_NAME = {metric.name: metric for metric in CONTRACT}

# The webhook success-ratio SLI: of the deliveries the platform is answerable for (accepted or error;
# bad signatures and rate limiting are the client's side, with their own alert), the share accepted.
SLI_GOOD_OUTCOMES = ("accepted",)
SLI_VALID_OUTCOMES = ("accepted", "error")
SLI_BAD_OUTCOMES = tuple(o for o in SLI_VALID_OUTCOMES if o not in SLI_GOOD_OUTCOMES)


def error_ratio_record(window: str) -> str:
    """The recording rule holding the SLI's error ratio over `window` (per tenant: it keeps `tenant_id`)."""
    return f"tenant_id:servicedesk_webhook_errors:ratio_rate{window}"


def recorded_selector(record: str, tenant_id: str) -> str:
    return f"{record}{{{TENANT_ID}={_quote(tenant_id)}}}"
