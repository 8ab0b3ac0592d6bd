"""TenantStack under Pulumi's mock runtime: the exact resources per tier, names, secrets and outputs."""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest

from components import naming
from fleet.mock_runtime import SECRET_MASK, Secret, masked

PREMIUM_TYPES = sorted([
    "random:index/randomPassword:RandomPassword",
    "aws:kms/key:Key",
    "aws:kms/alias:Alias",
    "aws:secretsmanager/secret:Secret",
    "aws:secretsmanager/secretVersion:SecretVersion",
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:ResourceQuota",
    "kubernetes:core/v1:LimitRange",
    *["kubernetes:networking.k8s.io/v1:NetworkPolicy"] * 4,
    "kubernetes:core/v1:ServiceAccount",
    "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "kubernetes:core/v1:Secret",
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    "kubernetes:core/v1:ConfigMap",
    "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow",
    "pulumi-python:dynamic/tenant-onboarding:OnboardingCheck",
])
BASIC_TYPES = sorted([
    "random:index/randomPassword:RandomPassword",
    "aws:kms/key:Key",
    "aws:kms/alias:Alias",
    "aws:secretsmanager/secret:Secret",
    "aws:secretsmanager/secretVersion:SecretVersion",
    "kubernetes:core/v1:Secret",
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
    "kubernetes:core/v1:ConfigMap",
    "pulumi-python:dynamic/tenant-onboarding:TenantConfigRow",
    "pulumi-python:dynamic/tenant-onboarding:OnboardingCheck",
])
# Custom resources have no schema in kubernetes-validate; tests/observability checks the PrometheusRule.
CUSTOM_KINDS = {"PrometheusRule"}
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def of_type(tenant, suffix):
    return [r for r in tenant.resources if r.type.endswith(suffix)]


def test_premium_tenant_gets_exact_resource_set(plans_by_slug):
    assert sorted(r.type for r in plans_by_slug["acme"].resources) == PREMIUM_TYPES


def test_basic_tenant_gets_no_namespace(plans_by_slug):
    globex = plans_by_slug["globex"]
    assert sorted(r.type for r in globex.resources) == BASIC_TYPES
    [secret] = of_type(globex, "core/v1:Secret")
    assert secret.inputs["metadata"]["namespace"] == "production"


@pytest.mark.parametrize(("slug", "rules_namespace"), [("acme", "tenant-acme"), ("globex", "monitoring")])
def test_alert_rules_and_dashboard_are_named_from_the_component_and_placed_by_tier(plans_by_slug, slug,
                                                                                  rules_namespace):
    tenant = plans_by_slug[slug]
    [rule] = of_type(tenant, ":PrometheusRule")
    [dashboard] = of_type(tenant, "core/v1:ConfigMap")
    assert (rule.name, dashboard.name) == (f"{slug}-alert-rules", f"{slug}-dashboard")
    assert rule.inputs["apiVersion"] == "monitoring.coreos.com/v1" and rule.inputs["kind"] == "PrometheusRule"
    assert rule.inputs["metadata"]["namespace"] == rules_namespace
    assert dashboard.inputs["metadata"]["namespace"] == "monitoring"
    assert dashboard.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard.inputs["metadata"]["annotations"]["grafana_folder"] == f"Tenants ({tenant.tier})"
    # In the monitoring namespace, an object names the tenant it observes, never as the tenant's own object.
    for body in (rule.inputs, dashboard.inputs):
        labels = body["metadata"]["labels"]
        assert labels["tenants.ai-agents.io/observed-tenant-id"] == tenant.tenant_id
        owned = "tenants.ai-agents.io/slug" in labels
        assert owned == (body["metadata"]["namespace"] == f"tenant-{slug}")


def test_alert_rules_and_dashboard_wait_only_for_a_premium_namespace_and_go_after_the_row(example_plan):
    urns = {r.name: r.urn for r in example_plan.run.resources}
    deps = {r.name: r.dependencies for r in example_plan.run.resources}
    assert deps["acme-alert-rules"] == [urns["acme-namespace"]]
    assert deps["globex-alert-rules"] == deps["acme-dashboard"] == deps["globex-dashboard"] == []
    # The row depends on them like on every other object of its tenant: a removal refused at the row (history
    # kept) leaves the tenant's alerts and dashboard in place.
    for slug in ("acme", "globex"):
        assert {urns[f"{slug}-alert-rules"], urns[f"{slug}-dashboard"]} <= set(deps[f"{slug}-tenant-config"])


def test_a_monitoring_namespace_read_from_the_platform_stack_places_basic_rules_and_dashboards(tenants_dir):
    """In a tenant stack the monitoring namespace is an Output of the StackReference, not a string."""
    from program import platform_outputs as names
    from tests.conftest import ROOT
    from tests.program_runs import PLATFORM_OUTPUTS, run_stack, stack_config

    config, secret_keys = stack_config(ROOT, tenants_dir)
    outputs = {**PLATFORM_OUTPUTS, names.MONITORING_NAMESPACE: "observability"}
    placed = {}
    for slug in ("acme", "globex"):
        run = run_stack(ROOT, f"dev.{slug}", config, secret_keys, platform_outputs=outputs)
        placed.update({r.name: r.inputs["metadata"]["namespace"] for r in run.resources
                       if r.type.endswith((":PrometheusRule", ":ConfigMap"))})
    assert placed == {"acme-alert-rules": "tenant-acme", "acme-dashboard": "observability",
                      "globex-alert-rules": "observability", "globex-dashboard": "observability"}


def test_every_child_is_parented_to_its_tenant_stack(example_plan):
    stacks = {r.urn for r in example_plan.run.resources if r.type == naming.TENANT_STACK_TYPE}
    assert len(stacks) == 2
    for resource in example_plan.run.resources:
        if resource.type == naming.TENANT_STACK_TYPE or resource.type.startswith("pulumi:providers"):
            continue
        assert resource.parent_urn in stacks, resource.name
        assert resource.name.startswith(f"{resource.parent_name}-")


def test_resource_names_are_deterministic_across_runs(example_plan):
    from fleet.plan import build_plan
    from tests.conftest import ROOT

    again = build_plan(ROOT, ROOT / "tenants", "dev")
    assert sorted(r.urn for r in again.run.resources) == sorted(r.urn for r in example_plan.run.resources)


@pytest.mark.parametrize("slug", ["acme", "globex"])
def test_kubernetes_objects_validate_against_1_33_strict(plans_by_slug, slug):
    objects = [body for body in plans_by_slug[slug].kubernetes_objects() if body["kind"] not in CUSTOM_KINDS]
    assert objects
    for body in objects:
        kubernetes_validate.validate(body, "1.33", strict=True)


def test_kubernetes_validation_is_strict_enough_to_fail():
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {"bogus": 1}}, "1.33",
            strict=True,
        )


@pytest.mark.parametrize("slug", ["acme", "globex"])
def test_kubernetes_names_are_dns_labels_within_63(plans_by_slug, slug):
    for body in plans_by_slug[slug].kubernetes_objects():
        for name in (body["metadata"]["name"], body["metadata"].get("namespace", "production")):
            assert DNS_1123_LABEL.match(name) and len(name) <= 63, name


def test_longest_slug_keeps_names_within_63(tmp_path):
    from fleet.plan import build_plan
    from tests.conftest import ROOT
    from tests.tenant_text import tenant_yaml

    slug = "a" * 40
    (tmp_path / f"{slug}.yaml").write_text(tenant_yaml(slug))
    [tenant] = build_plan(ROOT, tmp_path, "dev").tenants
    for body in tenant.kubernetes_objects():
        assert len(body["metadata"]["name"]) <= 63


def test_default_deny_policy_really_has_no_allow_rules(plans_by_slug):
    policies = {r.inputs["metadata"]["name"]: r.inputs for r in of_type(plans_by_slug["acme"], "NetworkPolicy")}
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny


def test_network_policies_allow_only_ingress_monitoring_and_dns(plans_by_slug):
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in of_type(plans_by_slug["acme"], "NetworkPolicy")}
    ingress_sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for spec in policies.values() for rule in spec.get("ingress", []) for peer in rule["from"]
    }
    assert ingress_sources == {"ingress-nginx", "monitoring"}
    egress = [rule for spec in policies.values() for rule in spec.get("egress", [])]
    assert len(egress) == 1 and {p["port"] for p in egress[0]["ports"]} == {53}


def test_namespace_enforces_restricted_pod_security(plans_by_slug):
    [namespace] = of_type(plans_by_slug["acme"], "core/v1:Namespace")
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["tenants.ai-agents.io/tenant-id"] == plans_by_slug["acme"].tenant_id


def test_quota_uses_tenant_resources(plans_by_slug):
    [quota] = of_type(plans_by_slug["acme"], "ResourceQuota")
    assert quota.inputs["spec"]["hard"] == {
        "requests.cpu": "2", "limits.cpu": "2", "requests.memory": "4Gi", "limits.memory": "4Gi", "pods": "20",
    }


def test_role_reads_only_this_tenants_secret(plans_by_slug):
    [role] = of_type(plans_by_slug["acme"], ":Role")
    secret_rule = next(rule for rule in role.inputs["rules"] if "secrets" in rule["resources"])
    assert secret_rule["resourceNames"] == ["tenant-acme-credentials"]
    assert secret_rule["verbs"] == ["get"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in role.inputs["rules"])


def test_signing_secret_is_48_alphanumeric_with_version_keeper(plans_by_slug):
    [password] = of_type(plans_by_slug["acme"], "RandomPassword")
    assert password.inputs["length"] >= 48 and password.inputs["special"] is False
    assert password.inputs["keepers"] == {"signing_secret_version": "1"}
    result = password.outputs["result"]
    assert len(result) == 48 and result.isalnum()


def test_kms_key_rotates_with_30_day_window_and_tags(plans_by_slug):
    [key] = of_type(plans_by_slug["acme"], "kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True and key.inputs["deletionWindowInDays"] == 30
    assert key.inputs["tags"]["tenant_id"] == plans_by_slug["acme"].tenant_id
    [alias] = of_type(plans_by_slug["acme"], "kms/alias:Alias")
    assert alias.inputs["name"] == "alias/tenant-acme"


def test_secretsmanager_secret_uses_tenant_key(plans_by_slug):
    [key] = of_type(plans_by_slug["acme"], "kms/key:Key")
    [secret] = of_type(plans_by_slug["acme"], "secretsmanager/secret:Secret")
    assert secret.inputs["kmsKeyId"] == key.outputs["arn"]
    assert secret.inputs["recoveryWindowInDays"] == 14


def test_every_secret_value_is_a_pulumi_secret(plans_by_slug):
    for tenant in plans_by_slug.values():
        [version] = of_type(tenant, "SecretVersion")
        assert isinstance(version.inputs["secretString"], Secret)
        [k8s_secret] = of_type(tenant, "core/v1:Secret")
        assert isinstance(k8s_secret.inputs["stringData"], Secret)
        assert set(k8s_secret.inputs["stringData"].value) == {"SERVICEDESK_API_KEY", "WEBHOOK_SECRET"}
        [row] = of_type(tenant, "TenantConfigRow")
        for key in ("servicedesk_api_key", "webhook_signing_secret", "database_url", "fernet_key"):
            assert isinstance(row.inputs[key], Secret), key


def test_no_secret_value_in_plan_json_or_exports(example_plan):
    secret_values = set()
    for resource in example_plan.run.resources:
        if resource.type.endswith("RandomPassword"):
            secret_values.add(resource.outputs["result"])
    from tests.components.conftest import PLACEHOLDER_SECRET

    secret_values.add(PLACEHOLDER_SECRET)
    text = json.dumps(example_plan.as_dict()) + json.dumps(masked(example_plan.run.exports))
    assert len(secret_values) == 3
    for value in secret_values:
        assert value not in text
    assert SECRET_MASK in text


def test_stack_exports_per_slug(example_plan):
    exported = example_plan.run.exports["tenants"]
    assert set(exported) == {"acme", "globex"}
    acme = exported["acme"]
    assert acme["namespace"] == "tenant-acme"
    assert acme["webhook_url"] == f"http://127.0.0.1:8080/webhook/servicedesk?tenant_id={acme['tenant_id']}"
    assert acme["kms_key_arn"].startswith("arn:aws:kms:")
    assert acme["secret_arn"].startswith("arn:aws:secretsmanager:")
    assert exported["globex"]["namespace"] == "production"


def test_onboarding_check_registers_after_row_secrets_and_namespace(example_plan):
    order = [r.name for r in example_plan.run.resources]
    check = order.index("acme-onboarding-check")
    for prerequisite in ("acme-tenant-config", "acme-k8s-credentials", "acme-credentials-version", "acme-namespace",
                         "acme-deny-all"):
        assert order.index(prerequisite) < check, prerequisite


def test_a_renamed_tenant_aliases_its_component_to_each_previous_slug(tmp_path):
    from fleet.plan import build_plan
    from tests.conftest import ROOT
    from tests.tenant_text import tenant_yaml

    (tmp_path / "acme-corp.yaml").write_text(tenant_yaml("acme-corp", extra="previous_slugs: [acme, acme-old]\n"))
    plan = build_plan(ROOT, tmp_path, "dev")
    component = next(r for r in plan.run.resources if r.type == naming.TENANT_STACK_TYPE)
    # Children are named from the component, so the engine derives their aliases from these.
    assert (component.name, component.aliases) == ("acme-corp", ["acme", "acme-old"])
    assert all(r.name.startswith("acme-corp-") for r in plan.tenants[0].resources)


def test_each_tenant_gets_two_real_peers_for_its_checks(example_plan):
    tenant_ids = {p.slug: p.tenant_id for p in example_plan.tenants}
    checks = {r.parent_name: r for r in example_plan.run.resources if r.type.endswith(":OnboardingCheck")}
    # Two example tenants: each has the other as its only peer.
    assert checks["acme"].inputs["peer_tenant_ids"] == [tenant_ids["globex"]]
    assert checks["globex"].inputs["peer_tenant_ids"] == [tenant_ids["acme"]]
    assert isinstance(checks["acme"].inputs["fernet_key"], Secret)


def test_a_tenant_with_its_own_llm_key_gets_it_as_a_secret_everywhere_the_api_key_goes(tmp_path):
    from fleet.plan import build_plan
    from tests.conftest import ROOT
    from tests.tenant_text import tenant_yaml

    (tmp_path / "acme.yaml").write_text(tenant_yaml("acme", extra="llm:\n  api_key_secret: acme-llm-api-key\n"))
    (tmp_path / "globex.yaml").write_text(tenant_yaml("globex", tier="basic"))
    plans = {t.slug: t for t in build_plan(ROOT, tmp_path, "dev").tenants}

    def secret_keys(plan):
        [k8s] = [r for r in plan.resources if r.type == "kubernetes:core/v1:Secret"]
        [row] = [r for r in plan.resources if r.type.endswith(":TenantConfigRow")]
        return sorted(k8s.inputs["stringData"].value), row.inputs.get("llm_api_key")

    keys, llm = secret_keys(plans["acme"])
    assert keys == ["LLM_API_KEY", "SERVICEDESK_API_KEY", "WEBHOOK_SECRET"] and isinstance(llm, Secret)
    keys, llm = secret_keys(plans["globex"])
    assert keys == ["SERVICEDESK_API_KEY", "WEBHOOK_SECRET"] and llm is None
