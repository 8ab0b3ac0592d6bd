"""A tenant's Grafana dashboard, built with grafana-foundation-sdk, and the ConfigMap that provisions it.

Every query names the tenant's own `tenant_id` literally (through `metrics`), never a dashboard variable,
so the dashboard shows one tenant and cannot be switched to another. The only variable is the Prometheus
data source. Grafana's dashboard sidecar (the Grafana and kube-prometheus-stack Helm charts) loads every
ConfigMap labelled `grafana_dashboard: "1"`, into the folder its `grafana_folder` annotation names (the
sidecar's `folderAnnotation`), one folder per tier.
"""

from __future__ import annotations

import json

import pulumi
from grafana_foundation_sdk.builders import common as builders_common
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from components import naming
from components.observability import metrics as m
from components.observability import rules
from tenancy.model import Tenant, Tier

DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"
FOLDER_ANNOTATION = "grafana_folder"
# One folder per tier. No "/": the sidecar makes the annotation a directory, and Grafana's file provisioner
# (foldersFromFilesStructure) names a folder after the last directory only.
FOLDERS = {Tier.PREMIUM: "Tenants (premium)", Tier.BASIC: "Tenants (basic)"}
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
TAGS = ("tenant", "ai-agents")


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=value, color=color) for value, color in steps]))


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def _legend() -> builders_common.VizLegendOptions:
    return (builders_common.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True))


def _tooltip() -> builders_common.VizTooltipOptions:
    return builders_common.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)


def _timeseries(title: str, description: str, unit: str, *queries: prometheus.Dataquery, span: int = 12,
                thresholds: dash.ThresholdsConfig | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
             .span(span).height(8).targets(list(queries)).legend(_legend()).tooltip(_tooltip()))
    if thresholds is not None:  # drawn as dashed lines: where the tenant's alert fires
        dashed = builders_common.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        panel = panel.thresholds(thresholds).thresholds_style(dashed)
    return panel


def _stat(title: str, description: str, unit: str, query: prometheus.Dataquery, thresholds: dash.ThresholdsConfig,
          span: int = 6) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit).span(span)
            .height(5).with_target(query).thresholds(thresholds).color_mode(common.BigValueColorMode.BACKGROUND)
            .reduce_options(builders_common.ReduceDataOptions().calcs(["lastNotNull"])))


def _quantiles(buckets: str, window: str, quantiles: tuple[float, ...]) -> list[prometheus.Dataquery]:
    return [_query(f"histogram_quantile({q}, sum by (le) (rate({buckets}[{window}])))", f"p{round(q * 100)}", ref)
            for q, ref in zip(quantiles, "ABCD", strict=False)]


def _sections(tenant: Tenant) -> list[tuple[str, list]]:
    """The dashboard's rows and their panels, every query scoped to the tenant."""
    tenant_id = str(tenant.tenant_id)
    settings = tenant.effective_observability
    objective = settings.slo_objective
    budget = float(rules.error_budget(objective))
    bad = m.WEBHOOK_REQUESTS.selector(tenant_id, outcome=m.SLI_BAD_OUTCOMES[0])
    valid = m.WEBHOOK_REQUESTS.selector(tenant_id, outcome=m.SLI_VALID_OUTCOMES)
    ratio_30d = f"sum(increase({bad}[30d])) / sum(increase({valid}[30d]))"
    alerts = f'ALERTS{{{m.TENANT_ID}={json.dumps(tenant_id)},alertstate="firing"}}'
    silent_after = settings.silent_after_hours
    p95, queue_age = settings.enhancement_p95_seconds, settings.queue_age_seconds
    e2e = m.ENHANCEMENT_DURATION.selector(tenant_id, suffix="_bucket")
    return [
        (f"Service level: {rules.percent(objective)} of webhooks accepted", [
            _stat("Webhook success, 30 days", "Accepted / (accepted + platform errors) over 30 days: the SLO's SLI.",
                  "percentunit", _query(f"1 - {ratio_30d}", "success"),
                  _thresholds((None, "red"), (objective, "green"))),
            _stat("Error budget left, 30 days", f"Share of the {rules.percent(budget)} error budget not yet spent.",
                  "percentunit", _query(f"1 - ({ratio_30d}) / {budget}", "budget left"),
                  _thresholds((None, "red"), (0.25, "orange"), (0.5, "green"))),
            _timeseries("Error-budget burn rate",
                        "Error ratio over each alert window, in multiples of the error budget; the dashed lines "
                        "are the alert thresholds (14.4x and 6x page a premium tenant, 1x opens a ticket).", "x",
                        *(_query(f"{m.recorded_selector(m.error_ratio_record(w), tenant_id)} / {budget}", w, ref)
                          for w, ref in (("1h", "A"), ("6h", "B"), ("3d", "C"))),
                        thresholds=_thresholds(*[(None, "green")] + [
                            (a.factor, color) for a, color in zip(reversed(rules.BURN_RATE_ALERTS),
                                                                  ("orange", "red", "dark-red"), strict=True)])),
        ]),
        ("Alerts", [
            statetimeline.Panel().title("Firing alerts").description(
                "This tenant's alerts (docs/observability.md) while they fire.").datasource(DATASOURCE)
            .span(24).height(5).legend(_legend()).tooltip(_tooltip())
            .with_target(_query(f"max by (alertname, severity) ({alerts})", "{{alertname}} ({{severity}})")),
        ]),
        ("Webhooks", [
            _timeseries("Deliveries by outcome", "Webhook deliveries per second, by outcome.", "reqps",
                        _query(f"sum by (outcome) (rate({m.WEBHOOK_REQUESTS.selector(tenant_id)}[5m]))",
                               "{{outcome}}"), span=8),
            _timeseries("Signature failures by reason", "Deliveries refused for their signature, per second.",
                        "reqps", _query(f"sum by (reason) (rate({m.SIGNATURE_FAILURES.selector(tenant_id)}[5m]))",
                                        "{{reason}}"), span=8),
            _timeseries("Webhook response time", "Quantiles of the time to answer a delivery.", "s",
                        *_quantiles(m.WEBHOOK_DURATION.selector(tenant_id, suffix="_bucket"), "5m",
                                    (0.5, 0.95, 0.99)), span=8),
            _stat("Since the last webhook", "Time since the last accepted webhook"
                  + (f"; the silent-tenant alert fires after {silent_after}h." if silent_after else "."),
                  "s", _query(f"time() - max({m.LAST_WEBHOOK.selector(tenant_id)})", "since last webhook"),
                  _thresholds((None, "green"), ((silent_after or 24) * 3600, "red")), span=24),
        ]),
        ("Enhancements", [
            _timeseries("Oldest queued job", f"Age of the oldest queued enhancement (alert above {queue_age}s).",
                        "s", _query(f"max({m.QUEUE_OLDEST_AGE.selector(tenant_id)})", "oldest job"),
                        thresholds=_thresholds((None, "green"), (queue_age, "red"))),
            _timeseries("Queue depth", "Enhancement jobs waiting.", "short",
                        _query(f"max({m.QUEUE_DEPTH.selector(tenant_id)})", "jobs queued")),
            _timeseries("End-to-end enhancement time",
                        f"From the accepted webhook to the enhancement written back (alert: p95 above {p95}s).", "s",
                        *_quantiles(e2e, "15m", (0.5, 0.95)), thresholds=_thresholds((None, "green"), (p95, "red"))),
            _timeseries("Jobs and write-back errors",
                        "Finished jobs by outcome, and failed ServiceDesk Plus write-backs, per second.", "ops",
                        _query(f"sum by (outcome) (rate({m.ENHANCEMENT_JOBS.selector(tenant_id)}[5m]))",
                               "jobs {{outcome}}"),
                        _query(f"sum(rate({m.WRITEBACK_ERRORS.selector(tenant_id)}[5m]))", "write-back errors", "B")),
        ]),
        ("Scheduled verification", [
            statetimeline.Panel().title("Checks").description(
                "tenant_probe_success per check, from `tenantctl verify --all --format prometheus`.")
            .datasource(DATASOURCE).span(12).height(8).legend(_legend()).tooltip(_tooltip())
            .with_target(_query(f"min by (check) ({m.PROBE_SUCCESS.selector(tenant_id)})", "{{check}}"))
            .mappings([model.ValueMap(options={
                "0": model.ValueMappingResult(text="failed", color="red", index=0),
                "1": model.ValueMappingResult(text="passed", color="green", index=1),
            })]),
            _timeseries("Check duration", "How long the tenant's scheduled checks took.", "s",
                        _query(f"max({m.PROBE_DURATION.selector(tenant_id)})", "duration"), span=6),
            _stat("Since the last check run", "Time since the scheduled checks last ran.", "s",
                  _query(f"time() - max({m.PROBE_LAST_RUN.selector(tenant_id)})", "since last run"),
                  _thresholds((None, "green"), (rules.VERIFICATION_STALE_SECONDS, "red")), span=6),
        ]),
    ]


def build_dashboard(tenant: Tenant) -> model.Dashboard:
    tenant_id, slug, tier = str(tenant.tenant_id), tenant.slug, tenant.tier
    builder = (dash.Dashboard(f"Tenant {slug}: {tenant.name}")
               .uid(naming.dashboard_uid(tenant_id))
               .description(f"{tenant.name} ({tier.value}, tenant_id {tenant_id}): webhooks, enhancements, "
                            f"scheduled verification and the webhook SLO. Generated from tenants/{slug}.yaml; "
                            "edits made in Grafana are overwritten.")
               .tags([*TAGS, tier.value, slug])
               .readonly()
               .timezone("browser")
               .time("now-24h", "now")
               .refresh("1m")
               .with_variable(dash.DatasourceVariable(DATASOURCE_VARIABLE).id(DATASOURCE_VARIABLE).label("Data source")
                              .type("prometheus")))
    panel_id = 0
    for title, panels in _sections(tenant):
        panel_id += 1
        builder = builder.with_row(dash.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            builder = builder.with_panel(panel.id(panel_id))
    return builder.build()


def dashboard_json(tenant: Tenant) -> str:
    return json.dumps(build_dashboard(tenant), cls=JSONEncoder, sort_keys=True, separators=(",", ":"))


def dashboard_file_name(slug: str) -> str:
    return f"tenant-{slug}.json"


def render_dashboard_configmap(tenant: Tenant, monitoring_namespace: pulumi.Input[str]) -> dict:
    """The ConfigMap the Grafana sidecar loads, in the monitoring namespace; it only names the tenant it shows
    (`observed-*` labels, see naming.observability_labels)."""
    tenant_id = str(tenant.tenant_id)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": naming.dashboard_configmap_name(tenant.slug),
            "namespace": monitoring_namespace,
            "labels": {**naming.observability_labels(tenant.slug, tenant_id, tenant.tier.value),
                       DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE},
            "annotations": {FOLDER_ANNOTATION: FOLDERS[tenant.tier]},
        },
        "data": {dashboard_file_name(tenant.slug): dashboard_json(tenant)},
    }
