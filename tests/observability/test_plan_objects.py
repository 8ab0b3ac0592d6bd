"""What `tenantctl plan` declares per tenant: one PrometheusRule and one dashboard ConfigMap for every tenant
file (the repository's, and generated fleets), each about its own tenant only, in `plan --out` too, and
accepted by promtool as Prometheus would load them."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from ruamel.yaml import YAML

from fleet.plan import build_plan, write_manifests
from tenancy.loader import require_tenants
from tests.conftest import ROOT
from tests.observability import promtool
from tests.observability.promql import UUID, scoping_problems


def generate(count, directory):
    """bench/generate.py's fleet: `tenantctl new`'s template, every third tenant premium."""
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate(count, directory)


# The PrometheusRule CRD's rule fields and its duration pattern (monitoring.coreos.com/v1).
RULE_KEYS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


@pytest.fixture(scope="module", params=["repository", "fleet", "generated"])
def planned(request, fleet_dir, tmp_path_factory):
    if request.param == "repository":
        directory = ROOT / "tenants"
    elif request.param == "fleet":
        directory = fleet_dir
    else:
        directory = tmp_path_factory.mktemp("generated") / "tenants"
        generate(24, directory)
    return require_tenants(directory), build_plan(ROOT, directory, "dev")


def observability_objects(tenant_plan) -> tuple[dict, dict]:
    objects = tenant_plan.kubernetes_objects()
    [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
    [dashboard] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard")]
    return rule, dashboard


def test_every_tenant_file_yields_rules_and_a_dashboard(planned):
    tenants, plan = planned
    assert sorted(t.slug for t in plan.tenants) == sorted(t.slug for t in tenants)
    for tenant_plan in plan.tenants:
        rule, dashboard = observability_objects(tenant_plan)
        assert rule["metadata"]["name"] == f"tenant-{tenant_plan.slug}-alerts"
        assert dashboard["metadata"]["name"] == f"tenant-{tenant_plan.slug}-dashboard"
        assert any(r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"])
        assert json.loads(next(iter(dashboard["data"].values())))["panels"]


def test_no_rule_or_panel_names_a_tenant_outside_the_registry_or_another_tenant(planned):
    tenants, plan = planned
    registry = {str(t.tenant_id) for t in tenants}
    for tenant_plan in plan.tenants:
        rule, dashboard = observability_objects(tenant_plan)
        exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
        named = {i for e in exprs for i in UUID.findall(e)} | set(UUID.findall(json.dumps(dashboard["data"])))
        assert named <= registry
        assert named == {tenant_plan.tenant_id}
        for expr in exprs:
            assert scoping_problems(expr, tenant_plan.tenant_id) == [], expr
        for alert in (r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r):
            assert alert["labels"]["tenant_id"] == tenant_plan.tenant_id
            assert (alert["labels"]["slug"], alert["labels"]["tier"]) == (tenant_plan.slug, tenant_plan.tier)


def test_prometheus_rules_have_the_crd_shape_and_sit_where_the_tier_says(planned):
    _tenants, plan = planned
    for tenant_plan in plan.tenants:
        rule, _dashboard = observability_objects(tenant_plan)
        assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
        expected = f"tenant-{tenant_plan.slug}" if tenant_plan.tier == "premium" else "monitoring"
        assert rule["metadata"]["namespace"] == expected
        assert set(rule) == {"apiVersion", "kind", "metadata", "spec"} and set(rule["spec"]) == {"groups"}
        for group in rule["spec"]["groups"]:
            assert set(group) == {"name", "rules"} and group["rules"]
            for entry in group["rules"]:
                assert set(entry) <= RULE_KEYS and ("record" in entry) != ("alert" in entry)
                assert DURATION.match(entry.get("for", "0")), entry
                for key in ("labels", "annotations"):
                    assert all(isinstance(v, str) for v in entry.get(key, {}).values())


def test_promtool_checks_the_rules_extracted_from_the_plan(planned, tmp_path):
    _tenants, plan = planned
    files = [promtool.write_rule_file(tmp_path / f"{t.slug}.json", observability_objects(t)[0]["spec"]["groups"])
             for t in plan.tenants]
    result = promtool.check_rules(*files)
    assert result.stdout.count("SUCCESS") == len(files)


def test_plan_out_writes_the_rules_and_the_dashboard_of_every_tenant(fleet_dir, tmp_path):
    plan = build_plan(ROOT, fleet_dir, "dev")
    written = write_manifests(plan, tmp_path)
    assert len(written) == len(plan.tenants)
    for tenant_plan, path in zip(plan.tenants, written, strict=True):
        documents = [d for d in YAML(typ="safe").load_all(path.read_text()) if d]
        kinds = [d["kind"] for d in documents]
        assert kinds.count("PrometheusRule") == 1 and kinds.count("ConfigMap") == 1, path.name
        rule, dashboard = observability_objects(tenant_plan)
        assert json.loads(json.dumps(rule)) in documents and json.loads(json.dumps(dashboard)) in documents
