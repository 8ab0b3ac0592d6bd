"""Each tenant's dashboard: decoded by grafana-foundation-sdk's own models without losing a field, every panel
query scoped to the tenant, and the ConfigMap the Grafana sidecar loads."""

from __future__ import annotations

import copy
import json

import kubernetes_validate
import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from components import naming
from components.observability import dashboard
from tenancy.model import Tier
from tests.observability.promql import UUID, scoping_problems

CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data a ConfigMap may hold


def library_problems(data: dict) -> list[str]:
    """Where the dashboard JSON says something grafana-foundation-sdk's Dashboard model does not hold.

    The model's decoder keeps every field it knows and drops the rest, so a field that does not survive
    `Dashboard.from_json` (unknown, misplaced or of the wrong shape) is reported; decoding twice must agree.
    """
    plugins.register_default_plugins()
    decoded = json.loads(json.dumps(Dashboard.from_json(copy.deepcopy(data)), cls=JSONEncoder, sort_keys=True))
    again = json.loads(json.dumps(Dashboard.from_json(copy.deepcopy(decoded)), cls=JSONEncoder, sort_keys=True))
    problems = [] if again == decoded else ["decoding is not stable"]
    return problems + _missing(data, decoded, "")


def _missing(given, decoded, path) -> list[str]:
    if isinstance(given, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: decoded as {type(decoded).__name__}"]
        return [p for key, value in given.items() for p in (
            _missing(value, decoded[key], f"{path}/{key}") if key in decoded else [f"{path}/{key}: dropped"])]
    if isinstance(given, list):
        if not isinstance(decoded, list) or len(decoded) != len(given):
            return [f"{path}: list changed"]
        return [p for i, (a, b) in enumerate(zip(given, decoded, strict=True)) for p in _missing(a, b, f"{path}[{i}]")]
    return [] if given == decoded else [f"{path}: {given!r} became {decoded!r}"]


def panels_of(data: dict) -> list[dict]:
    return [p for p in data["panels"] if p["type"] != "row"]


@pytest.fixture(scope="module")
def dashboards(fleet):
    return {t.slug: (t, json.loads(dashboard.dashboard_json(t))) for t in fleet}


def test_the_library_decodes_every_dashboard_without_losing_a_field(dashboards):
    for slug, (_tenant, data) in dashboards.items():
        assert library_problems(data) == [], slug


def test_the_library_check_catches_an_unknown_or_misshapen_field(dashboards):
    _tenant, data = next(iter(dashboards.values()))
    unknown = copy.deepcopy(data)
    unknown["panels"][1]["queryz"] = []
    assert library_problems(unknown) == ["/panels[1]/queryz: dropped"]
    misshapen = copy.deepcopy(data)
    misshapen["time"] = {"start": "now-1h"}
    assert "/time/start: dropped" in library_problems(misshapen)


def test_every_panel_query_reads_only_its_tenants_series(dashboards):
    for slug, (tenant, data) in dashboards.items():
        panels = panels_of(data)
        assert len(panels) >= 12
        for panel in panels:
            assert panel["targets"], (slug, panel["title"])
            for target in panel["targets"]:
                assert scoping_problems(target["expr"], str(tenant.tenant_id)) == [], (slug, target["expr"])
        assert set(UUID.findall(json.dumps(data))) == {str(tenant.tenant_id)}


def test_the_only_variable_is_the_data_source_every_panel_uses(dashboards):
    for _tenant, data in dashboards.values():
        assert [(v["name"], v["type"], v["query"]) for v in data["templating"]["list"]] == [
            ("datasource", "datasource", "prometheus")]
        for panel in panels_of(data):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
            assert "$" not in "".join(t["expr"] for t in panel["targets"])  # no variable in a query


def test_layout_ids_and_identity(dashboards):
    titles, uids = set(), set()
    for slug, (tenant, data) in dashboards.items():
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids))
        for panel in data["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (slug, panel["title"])
        assert data["uid"] == naming.dashboard_uid(str(tenant.tenant_id)) and len(data["uid"]) <= 40
        assert data["editable"] is False and slug in data["tags"] and tenant.tier.value in data["tags"]
        titles.add(data["title"])
        uids.add(data["uid"])
    assert len(titles) == len(uids) == len(dashboards)


def test_thresholds_drawn_are_the_tenants_alert_thresholds(dashboards):
    tenant, data = dashboards["fleet-premium-tuned"]
    by_title = {p["title"]: p for p in panels_of(data)}

    def steps(title):
        return [s["value"] for s in by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert steps("End-to-end enhancement time") == [None, 30]
    assert steps("Oldest queued job") == [None, 120]
    assert steps("Since the last webhook") == [None, 2 * 3600]
    assert steps("Error-budget burn rate") == [None, 1, 6, 14.4]
    assert "99.95%" in data["panels"][0]["title"]


@pytest.mark.parametrize("tier", [Tier.PREMIUM, Tier.BASIC])
def test_the_configmap_is_what_the_grafana_sidecar_loads(fleet, tier):
    for tenant in (t for t in fleet if t.tier is tier):
        body = dashboard.render_dashboard_configmap(tenant, "monitoring")
        kubernetes_validate.validate(body, "1.33", strict=True)
        metadata = body["metadata"]
        assert metadata["namespace"] == "monitoring" and metadata["labels"]["grafana_dashboard"] == "1"
        assert metadata["annotations"] == {"grafana_folder": f"Tenants ({tier.value})"}
        assert "tenants.ai-agents.io/slug" not in metadata["labels"]
        [(key, text)] = body["data"].items()
        assert key == f"tenant-{tenant.slug}.json" and len(text.encode()) < CONFIGMAP_LIMIT
        assert json.loads(text)["uid"] == naming.dashboard_uid(str(tenant.tenant_id))
