"""The CrossGuard policy pack, without the Pulumi CLI: each policy is fed the resources of a mocked run of
the real program (tests/policy/analyzer_view.py), as recorded and after mutations that break one rule."""

from __future__ import annotations

import ast
import re
import runpy
import select
import subprocess
import sys

import grpc
import pulumi_policy
import pulumi_policy.policy as servicer_module
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, PolicyProviderResource, Secret
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY
from pulumi_policy.deserialize import deserialize_properties as stock_deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError
from ruamel.yaml import YAML

from components import naming
from fleet import mock_runtime
from policy import tenant_policies
from policy.tenant_policies import (
    POLICIES,
    credentials_secret_uses_tenant_key,
    kms_key_rotation_enabled,
    kubernetes_secret_data_is_secret,
    no_allow_all_network_policy,
    no_binding_to_every_service_account,
    premium_namespace_isolation,
    restricted_pod_security,
    tenant_objects_in_tenant_namespace,
)
from tests.conftest import ROOT
from tests.policy.analyzer_view import (
    Violations,
    analyze_request,
    analyze_stack_request,
    analyzer_props,
    resource_args,
    stack_args,
    wire_properties,
)

POLICY_DIR = ROOT / "policy"
RESOURCE_POLICIES = [kms_key_rotation_enabled, tenant_objects_in_tenant_namespace, kubernetes_secret_data_is_secret,
                     no_allow_all_network_policy, no_binding_to_every_service_account, restricted_pod_security,
                     credentials_secret_uses_tenant_key]


def find(resources, resource_type, name):
    [match] = [r for r in resources if r.type == resource_type and r.name == name]
    return match


def without(resources, resource):
    return [r for r in resources if r is not resource]


def edit(resource, change):
    """Apply `change` to what the resource policies read (inputs) and what the stack policy reads (outputs)."""
    change(resource.inputs)
    change(resource.outputs)


def resource_violations(policy, resources, config=None, provider=None):
    report = Violations()
    for resource in resources:
        policy.validate(resource_args(resource, config, provider), report)
    return report.messages


def stack_violations(resources, config=None):
    report = Violations()
    premium_namespace_isolation.validate(stack_args(resources, config), report)
    return report.reported


def servicer():
    # The analyzer `PolicyPack(...)` serves (private in pulumi-policy 1.21.0, pinned): building it starts nothing.
    return servicer_module._PolicyAnalyzerServicer("tenant-onboarding", "0.1.0", POLICIES, EnforcementLevel.MANDATORY)


# --- the pack -------------------------------------------------------------------------------------


def test_policies_have_unique_names_and_descriptions_and_inherit_the_pack_level():
    names = [p.name for p in POLICIES]
    assert len(set(names)) == len(names) == 8
    assert all(p.description and p.enforcement_level is None for p in POLICIES)  # the pack's MANDATORY applies


def test_main_builds_the_pack_from_the_module_policies():
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    imported = {
        alias.name for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "tenant_policies" for alias in node.names
    }
    assert {"POLICIES", "analyze_with_secrets"} <= imported
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    [pack] = [c for c in calls if c.func.id == "PolicyPack"]
    keywords = {k.arg: k.value for k in pack.keywords}
    assert ast.literal_eval(keywords["name"]) == "tenant-onboarding"
    assert isinstance(keywords["policies"], ast.Name) and keywords["policies"].id == "POLICIES"
    assert ast.unparse(keywords["enforcement_level"]) == "EnforcementLevel.MANDATORY"
    [hook] = [c for c in calls if c.func.id == "analyze_with_secrets"]
    assert hook.lineno < pack.lineno


def test_main_runs_as_the_cli_runs_it(monkeypatch):
    """`pulumi.policy` runs the pack directory with runpy, its directory first on sys.path."""
    built = {}

    def record_pack(**kwargs):
        built.update(kwargs, secrets_visible=sys.modules["tenant_policies"].secrets_visible())

    monkeypatch.setattr(pulumi_policy, "PolicyPack", record_pack)
    monkeypatch.syspath_prepend(str(POLICY_DIR))
    monkeypatch.delitem(sys.modules, "tenant_policies", raising=False)
    try:
        runpy.run_path(str(POLICY_DIR), run_name="__main__")
        module = sys.modules["tenant_policies"]
    finally:
        sys.modules.pop("tenant_policies", None)
    assert built["name"] == "tenant-onboarding"
    assert built["policies"] is module.POLICIES
    assert built["enforcement_level"] is EnforcementLevel.MANDATORY
    assert built["secrets_visible"]


def test_pack_served_as_the_cli_starts_it_judges_over_grpc(resources):
    """What `pulumi-analyzer-policy-python` runs: `python -u -m pulumi.policy <engine> .` in the pack directory."""
    pack = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
        cwd=POLICY_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready, _, _ = select.select([pack.stdout], [], [], 30)
        assert ready, "the pack did not print its port"
        port = int(pack.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
            responses = [analyzer.Analyze(analyze_request(r)) for r in resources]
            responses.append(analyzer.AnalyzeStack(analyze_stack_request(resources)))
            secret = find(resources, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
            secret.inputs["stringData"] = secret.inputs["stringData"].value
            flagged = analyzer.Analyze(analyze_request(secret)).diagnostics
    finally:
        pack.terminate()
        pack.wait(10)
    assert info.name == "tenant-onboarding"
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in POLICIES)
    assert all(p.enforcementLevel == servicer_module.proto.MANDATORY for p in info.policies)
    assert [d.message for response in responses for d in response.diagnostics] == []
    assert [n.policy_name for response in responses for n in response.not_applicable] == []  # secrets visible
    assert [d.policyName for d in flagged] == [kubernetes_secret_data_is_secret.name]
    assert "Secret 'tenant-acme-credentials'" in flagged[0].message


def test_pack_project_runs_python_in_the_program_virtualenv():
    project = YAML(typ="safe").load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == "../.venv"  # built by `make setup`


def test_pack_requirements_pin_the_program_versions():
    def pins(path):
        lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
        return dict(line.split("==") for line in lines if line)

    program, pack = pins(ROOT / "requirements.txt"), pins(POLICY_DIR / "requirements.txt")
    assert pack == {name: program[name] for name in ("pulumi", "pulumi-policy")}


def test_pack_module_imports_only_what_the_pack_virtualenv_has():
    tree = ast.parse((POLICY_DIR / "tenant_policies.py").read_text())
    modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    modules += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    roots = {module.split(".")[0] for module in modules}
    assert roots - set(sys.stdlib_module_names) <= {"__future__", "pulumi", "pulumi_policy"}


def test_names_shared_with_the_program_agree():
    shared_default = YAML(typ="safe").load((ROOT / "Pulumi.yaml").read_text())["config"]["sharedNamespace"]["default"]
    labels = naming.tenant_labels("acme", "id", "premium")
    assert tenant_policies.PROJECT == naming.PROJECT
    assert labels[tenant_policies.SLUG_LABEL] == "acme" and labels[tenant_policies.TIER_LABEL] == "premium"
    assert tenant_policies.tenant_namespace("acme") == naming.namespace_name("acme")
    assert tenant_policies.DEFAULT_SHARED_NAMESPACE == shared_default


# --- how secrets reach a validation ---------------------------------------------------------------


def test_stock_analyzer_cannot_tell_secret_from_plain(recorded_run):
    secret = find(recorded_run, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
    plain_inputs = {**secret.inputs, "stringData": secret.inputs["stringData"].value}
    assert stock_deserialize_properties(wire_properties(secret.inputs)) == stock_deserialize_properties(
        wire_properties(plain_inputs)
    )


def test_pack_analyzer_hands_secrets_over_as_pulumi_policy_secret(recorded_run):
    props = analyzer_props(find(recorded_run, "kubernetes:core/v1:Secret", "acme-k8s-credentials").inputs)
    assert isinstance(props["stringData"], Secret)
    assert set(props["stringData"].value) == {"SERVICEDESK_API_KEY", "WEBHOOK_SECRET"}
    assert props["metadata"]["namespace"] == "tenant-acme"


def test_secret_of_unknown_value_is_still_a_secret_during_preview(resources):
    secret = find(resources, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
    secret.inputs["stringData"] = mock_runtime.Secret(UNKNOWN_STRING_VALUE)
    response = servicer().Analyze(analyze_request(secret), None)
    assert list(response.diagnostics) == [] and list(response.not_applicable) == []


def test_unknown_value_inside_a_secret_is_unknown_to_other_checks(resources):
    role = find(resources, "kubernetes:rbac.authorization.k8s.io/v1:Role", "acme-reader-role")
    role.inputs["metadata"]["namespace"] = mock_runtime.Secret(UNKNOWN_STRING_VALUE)
    with pytest.raises(UnknownValueError) as unknown:
        tenant_objects_in_tenant_namespace.validate(resource_args(role), Violations())
    assert unknown.value.message == "string value at .metadata.namespace can't be known during preview"
    [diagnostic] = servicer().Analyze(analyze_request(role), None).diagnostics  # as any unknown: advisory
    assert diagnostic.enforcementLevel == servicer_module.proto.ADVISORY and "during preview" in diagnostic.message


def test_remediation_path_keeps_the_stock_secret_proxy():
    wire = {"stringData": {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": {"k": "v"}}}
    kept = tenant_policies.deserialize_keeping_secrets(wire, True)
    assert type(kept) is type(stock_deserialize_properties(wire, True))
    assert isinstance(kept["__target"]["stringData"], Secret)


def test_secret_policy_fails_closed_when_secretness_is_invisible(stock_analyzer, recorded_run):
    secret = find(recorded_run, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
    response = servicer().Analyze(analyze_request(secret), None)
    [diagnostic] = response.diagnostics
    assert diagnostic.policyName == kubernetes_secret_data_is_secret.name
    assert "cannot be checked" in diagnostic.message and "analyze_with_secrets" in diagnostic.message


def test_the_pack_refuses_to_start_when_the_secret_patch_has_nothing_to_patch(monkeypatch):
    monkeypatch.delattr(servicer_module, "deserialize_properties")
    with pytest.raises(RuntimeError, match="secretness cannot be kept visible"):
        tenant_policies.analyze_with_secrets()


# --- the example tenants comply -------------------------------------------------------------------


@pytest.mark.parametrize("policy", RESOURCE_POLICIES, ids=lambda p: p.name)
def test_example_tenants_pass_resource_policy(recorded_run, policy):
    assert resource_violations(policy, recorded_run) == []


def test_example_tenants_pass_stack_policy(recorded_run):
    assert stack_violations(recorded_run) == []


def test_example_tenants_pass_the_real_analyzer(recorded_run):
    analyzer = servicer()
    responses = [analyzer.Analyze(analyze_request(r), None) for r in recorded_run]
    responses.append(analyzer.AnalyzeStack(analyze_stack_request(recorded_run), None))
    assert [d.message for response in responses for d in response.diagnostics] == []
    assert [n.policy_name for response in responses for n in response.not_applicable] == []


# --- 1. premium namespaces are isolated -----------------------------------------------------------


@pytest.mark.parametrize(("resource_type", "name", "missing"), [
    ("kubernetes:core/v1:ResourceQuota", "acme-quota", "no ResourceQuota"),
    ("kubernetes:core/v1:LimitRange", "acme-limits", "no LimitRange"),
    ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "acme-deny-all", "no default-deny NetworkPolicy"),
])
def test_premium_namespace_missing_isolation_object_is_flagged(resources, resource_type, name, missing):
    namespace = find(resources, "kubernetes:core/v1:Namespace", "acme-namespace")
    [(message, urn)] = stack_violations(without(resources, find(resources, resource_type, name)))
    assert urn == namespace.urn
    subject = "premium namespace 'tenant-acme' of tenant 'acme' (Pulumi resource 'acme-namespace')"
    assert f"{subject} has {missing}" in message


def test_quota_in_another_namespace_does_not_count(resources):
    edit(find(resources, "kubernetes:core/v1:ResourceQuota", "acme-quota"),
         lambda props: props["metadata"].update(namespace="tenant-globex"))
    [(message, _)] = stack_violations(resources)
    assert "'tenant-acme'" in message and "no ResourceQuota" in message


def test_default_deny_with_an_allow_rule_is_flagged(resources):
    allow_all = [{"from": [{"namespaceSelector": {}}]}]
    edit(find(resources, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "acme-deny-all"),
         lambda props: props["spec"].update(ingress=allow_all))
    [(message, _)] = stack_violations(resources)
    assert "premium namespace 'tenant-acme'" in message
    assert "NetworkPolicy 'default-deny-all': it has ingress rules, which allow traffic" in message


def test_default_deny_without_egress_type_is_flagged(resources):
    edit(find(resources, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "acme-deny-all"),
         lambda props: props["spec"].update(policyTypes=["Ingress"]))
    [(message, _)] = stack_violations(resources)
    assert "NetworkPolicy 'default-deny-all': its policyTypes lack Egress" in message


def test_missing_quota_is_reported_through_the_real_analyzer(resources):
    namespace = find(resources, "kubernetes:core/v1:Namespace", "acme-namespace")
    stack = without(resources, find(resources, "kubernetes:core/v1:ResourceQuota", "acme-quota"))
    [diagnostic] = servicer().AnalyzeStack(analyze_stack_request(stack), None).diagnostics
    assert diagnostic.policyName == premium_namespace_isolation.name
    assert diagnostic.urn == namespace.urn
    assert "'tenant-acme'" in diagnostic.message and "no ResourceQuota" in diagnostic.message


# --- 2. KMS keys rotate ---------------------------------------------------------------------------


@pytest.mark.parametrize(("rotation", "shown"), [(False, "False"), (None, "unset")])
def test_kms_key_without_rotation_is_flagged(resources, rotation, shown):
    key = find(resources, "aws:kms/key:Key", "globex-kms-key")
    if rotation is None:
        del key.inputs["enableKeyRotation"]
    else:
        key.inputs["enableKeyRotation"] = rotation
    [message] = resource_violations(kms_key_rotation_enabled, resources)
    assert message == (
        f"KMS key 'globex-kms-key' of tenant 'globex' has enableKeyRotation {shown}; "
        "create it with enable_key_rotation=True so AWS rotates its key material yearly."
    )


# --- 3. tenant objects stay in their tenant's namespace -------------------------------------------


def test_premium_role_in_another_namespace_is_flagged(resources):
    find(resources, "kubernetes:rbac.authorization.k8s.io/v1:Role", "acme-reader-role").inputs["metadata"][
        "namespace"] = "production"
    [message] = resource_violations(tenant_objects_in_tenant_namespace, resources)
    assert message.startswith(
        "Role 'tenant-acme-reader' (Pulumi resource 'acme-reader-role') of tenant 'acme' (premium) has namespace "
        "'production'; premium tenants' objects belong in 'tenant-acme'."
    )


def test_basic_secret_outside_the_shared_namespace_is_flagged(resources):
    find(resources, "kubernetes:core/v1:Secret", "globex-k8s-credentials").inputs["metadata"][
        "namespace"] = "tenant-acme"
    [message] = resource_violations(tenant_objects_in_tenant_namespace, resources)
    assert message.startswith(
        "Secret 'tenant-globex-credentials' (Pulumi resource 'globex-k8s-credentials') of tenant 'globex' (basic) "
        "has namespace 'tenant-acme'; basic tenants' objects belong in 'production'."
    )


def test_policy_config_names_the_shared_namespace(recorded_run):
    [message] = resource_violations(tenant_objects_in_tenant_namespace, recorded_run, {"sharedNamespace": "shared"})
    assert "'tenant-globex-credentials'" in message and "belong in 'shared'" in message


def test_stack_config_names_the_shared_namespace_when_policy_config_does_not(recorded_run, stack_config):
    stack_config(tenant_policies.SHARED_NAMESPACE_STACK_KEY, "basic-tenants")
    [message] = resource_violations(tenant_objects_in_tenant_namespace, recorded_run)
    assert "'tenant-globex-credentials'" in message and "belong in 'basic-tenants'" in message
    policy_config = {"sharedNamespace": "production"}  # the policy's own config wins
    assert resource_violations(tenant_objects_in_tenant_namespace, recorded_run, policy_config) == []


def test_object_without_namespace_is_placed_where_kubernetes_puts_it(resources):
    del find(resources, "kubernetes:core/v1:ServiceAccount", "acme-service-account").inputs["metadata"]["namespace"]
    [message] = resource_violations(tenant_objects_in_tenant_namespace, resources)
    assert "'acme-service-account'" in message and "no metadata.namespace, so it lands in 'default'" in message
    provider = PolicyProviderResource("pulumi:providers:kubernetes", {"namespace": "tenant-acme"}, "urn:k8s", "k8s")
    assert resource_violations(tenant_objects_in_tenant_namespace, resources, provider=provider) == []


def test_object_with_unknown_tier_is_flagged(resources):
    find(resources, "kubernetes:core/v1:LimitRange", "acme-limits").inputs["metadata"]["labels"][
        tenant_policies.TIER_LABEL] = "gold"
    [message] = resource_violations(tenant_objects_in_tenant_namespace, resources)
    assert "LimitRange 'tenant-acme-limits'" in message and "'gold'" in message


def test_a_premium_tenants_alert_rules_are_its_object_and_must_stay_in_its_namespace(resources):
    rules = find(resources, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "acme-alert-rules")
    assert rules.inputs["metadata"]["labels"][tenant_policies.SLUG_LABEL] == "acme"
    rules.inputs["metadata"]["namespace"] = "monitoring"
    [message] = resource_violations(tenant_objects_in_tenant_namespace, resources)
    assert message.startswith("PrometheusRule 'tenant-acme-alerts' (Pulumi resource 'acme-alert-rules') of tenant "
                              "'acme' (premium) has namespace 'monitoring'")


@pytest.mark.parametrize(("resource_type", "name"), [
    ("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "globex-alert-rules"),
    ("kubernetes:core/v1:ConfigMap", "globex-dashboard"),
    ("kubernetes:core/v1:ConfigMap", "acme-dashboard"),
])
def test_monitoring_namespace_objects_only_name_the_tenant_they_observe(resources, resource_type, name):
    """The policy is not widened for the monitoring namespace: what lives there (basic tenants' rules, every
    dashboard) is no object of the tenant, so it carries `observed-*` labels instead of the slug label the
    policy keys on. Giving one the slug label makes it a tenant object outside the tenant's namespace."""
    watcher = find(resources, resource_type, name)
    labels = watcher.inputs["metadata"]["labels"]
    assert watcher.inputs["metadata"]["namespace"] == "monitoring" and tenant_policies.SLUG_LABEL not in labels
    assert labels[f"{tenant_policies.LABEL_PREFIX}/observed-slug"] == name.split("-")[0]
    labels.update({tenant_policies.SLUG_LABEL: labels[f"{tenant_policies.LABEL_PREFIX}/observed-slug"],
                   tenant_policies.TIER_LABEL: labels[f"{tenant_policies.LABEL_PREFIX}/observed-tier"]})
    [message] = resource_violations(tenant_objects_in_tenant_namespace, resources)
    assert f"(Pulumi resource {name!r})" in message and "has namespace 'monitoring'" in message


# --- 4. Kubernetes Secret data is a Pulumi secret -------------------------------------------------


@pytest.mark.parametrize("field", ["stringData", "data"])
def test_secret_with_plain_data_is_flagged(resources, field):
    secret = find(resources, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
    values = secret.inputs.pop("stringData").value
    secret.inputs[field] = values  # plain: no longer wrapped as a secret
    [message] = resource_violations(kubernetes_secret_data_is_secret, resources)
    assert message.startswith(
        f"Secret 'tenant-acme-credentials' (Pulumi resource 'acme-k8s-credentials') of tenant 'acme' sets "
        f"{field}.SERVICEDESK_API_KEY, {field}.WEBHOOK_SECRET from values that are not Pulumi secrets"
    )
    assert not any(value in message for value in values.values())  # names the keys, never the values


def test_secret_with_each_value_secret_passes(resources):
    secret = find(resources, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
    secret.inputs["stringData"] = {k: mock_runtime.Secret(v) for k, v in secret.inputs["stringData"].value.items()}
    assert resource_violations(kubernetes_secret_data_is_secret, resources) == []


def test_secret_with_one_plain_value_names_that_key(resources):
    secret = find(resources, "kubernetes:core/v1:Secret", "globex-k8s-credentials")
    values = secret.inputs["stringData"].value
    secret.inputs["stringData"] = {"SERVICEDESK_API_KEY": mock_runtime.Secret(values["SERVICEDESK_API_KEY"]),
                                   "WEBHOOK_SECRET": values["WEBHOOK_SECRET"]}
    [message] = resource_violations(kubernetes_secret_data_is_secret, resources)
    assert re.search(r"of tenant 'globex' sets stringData\.WEBHOOK_SECRET from", message)


def test_plain_secret_data_is_reported_through_the_real_analyzer(resources):
    secret = find(resources, "kubernetes:core/v1:Secret", "acme-k8s-credentials")
    secret.inputs["stringData"] = secret.inputs["stringData"].value
    response = servicer().Analyze(analyze_request(secret), None)
    [diagnostic] = response.diagnostics
    assert diagnostic.policyName == kubernetes_secret_data_is_secret.name
    assert diagnostic.enforcementLevel == pulumi_policy.policy.proto.MANDATORY
    assert "Secret 'tenant-acme-credentials'" in diagnostic.message


# --- the policies added for operator safety -------------------------------------------------------


@pytest.mark.parametrize("rule,named", [
    ({"ingress": [{}]}, "ingress[0] has no from"),
    ({"ingress": [{"from": [{"namespaceSelector": {}}]}]}, "every pod of every namespace"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}, "every address (0.0.0.0/0)"),
])
def test_an_allow_all_network_policy_beside_the_default_deny_is_flagged(resources, rule, named):
    policy = find(resources, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "acme-allow-monitoring")
    policy.inputs["spec"] = {**policy.inputs["spec"], **rule}
    [message] = resource_violations(no_allow_all_network_policy, resources)
    assert named in message and "tenant 'acme'" in message


@pytest.mark.parametrize("group", ["system:serviceaccounts", "system:serviceaccounts:production",
                                   "system:authenticated"])
def test_a_rolebinding_to_every_service_account_is_flagged(resources, group):
    binding = find(resources, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "acme-reader-binding")
    binding.inputs["subjects"] = [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}]
    [message] = resource_violations(no_binding_to_every_service_account, resources)
    assert repr(group) in message


@pytest.mark.parametrize("level", ["privileged", "baseline", None])
def test_a_premium_namespace_below_restricted_is_flagged(resources, level):
    namespace = find(resources, "kubernetes:core/v1:Namespace", "acme-namespace")
    labels = namespace.inputs["metadata"]["labels"]
    labels.pop("pod-security.kubernetes.io/enforce")
    if level:
        labels["pod-security.kubernetes.io/enforce"] = level
    [message] = resource_violations(restricted_pod_security, resources)
    assert "must be 'restricted'" in message


def test_a_credentials_secret_without_the_tenant_key_is_flagged(resources):
    secret = find(resources, "aws:secretsmanager/secret:Secret", "acme-credentials")
    secret.inputs.pop("kmsKeyId")
    [message] = resource_violations(credentials_secret_uses_tenant_key, resources)
    assert "names no kmsKeyId" in message and "tenant 'acme'" in message
