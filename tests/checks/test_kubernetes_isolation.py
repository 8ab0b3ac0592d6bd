"""The Kubernetes isolation checks against a real API server: a correctly onboarded fleet passes, and each way of
breaking a tenant's isolation fails the check that should see it, naming the tenant and why.

One control plane for the module (it takes seconds to start). Every break is made on a tenant, or a shared
account, of its own, so no test depends on another's order and the correct fleet stays correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from ruamel.yaml import YAML

from checks.kubernetes_isolation import (
    ACCOUNT_ACCESS,
    BASIC_CHECKS,
    CHECKER_ACCESS,
    DEFAULT_DENY,
    POD_SECURITY,
    PREMIUM_CHECKS,
    QUOTA,
    SHARED_ACCOUNT_ACCESS,
    SUSPENDED_NO_POD,
    KubernetesTenant,
    SharedWorkload,
    just_over_cpu,
    just_over_memory,
    open_rules,
    parse_quantity,
    probe_pod,
    run_fleet_kubernetes_checks,
    run_kubernetes_checks,
)
from checks.report import CheckReport
from components import naming
from components.isolation_manifests import DEFAULT_DENY_POLICY, kubernetes_check_tenant
from components.settings import PlatformSettings
from services.kube_apiserver import LocalKubeApiServer
from tenancy.model import Resources, TenantState
from tests.kube_cluster import eventually, make_tenant, onboard, repo_tenant

pytestmark = pytest.mark.xdist_group("kube-apiserver")

SHARED_NAMESPACE = PlatformSettings().shared_namespace
RBAC = "rbac.authorization.k8s.io"
CHECKER = "tenantctl-kubernetes-checker"


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[LocalKubeApiServer]:
    with LocalKubeApiServer(base_dir=tmp_path_factory.mktemp("kube")) as server:
        yield server


def apply_all(kube: LocalKubeApiServer, *manifests: dict) -> None:
    for manifest in manifests:
        reply = kube.apply(manifest)
        assert reply.ok, f"{manifest['kind']} {manifest['metadata']['name']}: {reply.status} {reply.message}"


def secret_reader(kube: LocalKubeApiServer, name: str, namespace: str, account: SharedWorkload) -> None:
    """A Role that reads every Secret of `namespace`, bound to `account`."""
    role_ref = {"apiGroup": RBAC, "kind": "Role", "name": name}
    apply_all(kube,
              {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name, "namespace": namespace},
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]},
              {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
               "roleRef": role_ref, "subjects": [{"kind": "ServiceAccount", "name": account.service_account,
                                                  "namespace": account.namespace}]})


def shared_account(kube: LocalKubeApiServer, name: str) -> SharedWorkload:
    """A service account in the shared namespace that reads its Secrets, as the application's workload does."""
    account = SharedWorkload(SHARED_NAMESPACE, name)
    apply_all(kube, {"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": name, "namespace": SHARED_NAMESPACE}})
    secret_reader(kube, f"{name}-reads-secrets", SHARED_NAMESPACE, account)
    return account


@pytest.fixture(scope="module")
def shared(kube: LocalKubeApiServer) -> SharedWorkload:
    apply_all(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SHARED_NAMESPACE}})
    return shared_account(kube, "servicedesk-enhancer")


def premium(kube: LocalKubeApiServer, slug: str, quota: Resources | None = None) -> KubernetesTenant:
    """A premium tenant onboarded for real (its ResourceQuota at `quota` instead of the tier's, if given)."""
    tenant = make_tenant(slug)
    onboard(kube, tenant, quota)
    return kubernetes_check_tenant(tenant, SHARED_NAMESPACE)


@pytest.fixture(scope="module")
def fleet(kube: LocalKubeApiServer, shared: SharedWorkload) -> list[KubernetesTenant]:
    """acme (premium) and globex (basic) from tenants/, and initech, another premium tenant."""
    acme = repo_tenant("acme")
    onboard(kube, acme)
    globex = kubernetes_check_tenant(repo_tenant("globex"), SHARED_NAMESPACE)
    return [kubernetes_check_tenant(acme, SHARED_NAMESPACE), premium(kube, "initech"), globex]


def by_slug(fleet: list[KubernetesTenant], slug: str) -> KubernetesTenant:
    return next(tenant for tenant in fleet if tenant.slug == slug)


def failing(report: CheckReport) -> dict[str, str]:
    return {result.name: result.detail for result in report.failed}


def fails_with(check, name: str, what: str) -> str:
    """Wait until `check()` fails exactly `name` (the server acts on a change within moments), and return its
    detail."""
    seen: dict[str, str] = {}

    def failed() -> bool:
        seen.update(failing(check()))
        return set(seen) == {name}

    eventually(failed, what)
    return seen[name]


# A correct fleet -------------------------------------------------------------------------------------------------

def test_a_correctly_isolated_fleet_passes_every_check(kube, fleet, shared):
    reports = run_fleet_kubernetes_checks(kube, fleet, shared)
    assert {slug: failing(report) for slug, report in reports.items()} == {"acme": {}, "initech": {}, "globex": {}}
    assert [result.name for result in reports["acme"].results] == list(PREMIUM_CHECKS)
    assert [result.name for result in reports["globex"].results] == list(BASIC_CHECKS)
    details = {result.name: result.detail for result in reports["acme"].results}
    assert all(detail.startswith("tenant acme (premium): ") for detail in details.values())
    assert "needs a network plugin" in details[DEFAULT_DENY]
    assert 'violates PodSecurity "restricted:latest"' in details[POD_SECURITY]
    assert "cpu 2001m and memory 4097Mi" in details[QUOTA]


def test_the_checks_store_nothing(kube, fleet, shared):
    run_fleet_kubernetes_checks(kube, fleet, shared)
    for tenant in fleet:
        assert kube.request("GET", f"/api/v1/namespaces/{tenant.namespace}/pods").body["items"] == []
    quota = kube.request("GET", "/api/v1/namespaces/tenant-acme/resourcequotas").body["items"][0]
    assert set(quota["status"]["used"].values()) == {"0"}


def test_an_unreachable_server_is_a_failed_result_not_an_exception(fleet, shared):
    class Down:
        def request(self, method, path, body=None, *, query=None):
            raise ConnectionRefusedError("connection refused")

    report = run_kubernetes_checks(Down(), by_slug(fleet, "acme"), fleet, shared)
    assert [result.name for result in report.failed] == list(PREMIUM_CHECKS)
    assert all("tenant acme (premium): the API server could not be asked: ConnectionRefusedError"
               in result.detail for result in report.failed)


# Each break fails the check that should see it, naming the tenant ----------------------------------------------

def test_an_account_bound_to_cluster_admin_fails_the_access_matrix(kube, fleet, shared):
    rooted = premium(kube, "rooted")
    apply_all(kube, {
        "apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "rooted-is-admin"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": rooted.service_account, "namespace": rooted.namespace}],
    })
    detail = fails_with(lambda: run_kubernetes_checks(kube, rooted, fleet, shared), ACCOUNT_ACCESS,
                        "the cluster-admin binding seen")
    assert detail.startswith("tenant rooted (premium): its service account "
                             "system:serviceaccount:tenant-rooted:tenant-rooted is not held to its own")
    assert "can do anything to anything (verb, resource and API group *) cluster-wide" in detail
    assert 'allowed by ClusterRoleBinding "rooted-is-admin" of ClusterRole "cluster-admin"' in detail
    assert "and " in detail.splitlines()[-1]  # the rest counted, not listed


def test_a_binding_that_reads_another_tenants_secret_fails_the_access_matrix(kube, fleet, shared):
    snoop, acme = premium(kube, "snoop"), by_slug(fleet, "acme")
    apply_all(kube, {
        "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
        "metadata": {"name": "snoop-reads-acme", "namespace": acme.namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": naming.reader_role_name("acme")},
        "subjects": [{"kind": "ServiceAccount", "name": snoop.service_account, "namespace": snoop.namespace}],
    })
    detail = fails_with(lambda: run_kubernetes_checks(kube, snoop, fleet, shared), ACCOUNT_ACCESS,
                        "the cross-tenant binding seen")
    granted = 'allowed by RoleBinding "snoop-reads-acme/tenant-acme" of Role "tenant-acme-reader" to ServiceAccount ' \
              '"tenant-snoop/tenant-snoop"'
    assert detail.splitlines()[1:] == [
        f"can get secrets tenant-acme-credentials in tenant-acme (tenant acme's namespace): {granted}",
        f"can list configmaps in tenant-acme (tenant acme's namespace): {granted}",
    ]
    assert detail.startswith("tenant snoop (premium): ")


@pytest.mark.parametrize(("slug", "level", "said"), [
    ("relaxed", "privileged", ["tenant relaxed (premium): a privileged pod was admitted in tenant-relaxed"]),
    ("lenient", "baseline", ["refused below the restricted level", 'PodSecurity "baseline:latest"']),
])
def test_a_namespace_relaxed_below_restricted_fails_pod_security(kube, fleet, shared, slug, level, said):
    tenant = premium(kube, slug)
    kube.request("PATCH", f"/api/v1/namespaces/{tenant.namespace}",
                 {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}},
                 content_type="application/merge-patch+json")
    detail = fails_with(lambda: run_kubernetes_checks(kube, tenant, fleet, shared), POD_SECURITY,
                        f"the {level} label seen")
    assert detail.startswith(f"tenant {slug} (premium): ") and all(part in detail for part in said), detail


def test_a_removed_quota_fails_the_quota_check(kube, fleet, shared):
    unquoted = premium(kube, "unquoted")
    assert kube.request("DELETE", "/api/v1/namespaces/tenant-unquoted/resourcequotas/tenant-unquoted-quota").ok
    detail = fails_with(lambda: run_kubernetes_checks(kube, unquoted, fleet, shared), QUOTA, "the quota gone")
    assert detail == (
        "tenant unquoted (premium): a pod asking cpu 2001m (the tier allows 2) was admitted in tenant-unquoted: its "
        "ResourceQuota is missing or above the tier; a pod asking memory 4097Mi (the tier allows 4Gi) was admitted "
        "in tenant-unquoted: its ResourceQuota is missing or above the tier")


def test_a_quota_raised_past_the_tier_fails_the_quota_check(kube, fleet, shared):
    raised = premium(kube, "raised", quota=Resources(cpu="2500m", memory="4Gi", pods=20))
    detail = fails_with(lambda: run_kubernetes_checks(kube, raised, fleet, shared), QUOTA, "the raised quota seen")
    assert detail == ("tenant raised (premium): a pod asking cpu 2001m (the tier allows 2) was admitted in "
                      "tenant-raised: its ResourceQuota is missing or above the tier")


def test_a_deleted_default_deny_policy_fails_the_network_check(kube, fleet, shared):
    exposed = premium(kube, "exposed")
    path = f"/apis/networking.k8s.io/v1/namespaces/tenant-exposed/networkpolicies/{DEFAULT_DENY_POLICY}"
    assert kube.request("DELETE", path).ok
    detail = run_kubernetes_checks(kube, exposed, fleet, shared).failed[0].detail
    assert detail.startswith(f"tenant exposed (premium): no NetworkPolicy {DEFAULT_DENY_POLICY} in tenant-exposed")
    assert detail.endswith("which this check does not prove.")
    assert set(failing(run_kubernetes_checks(kube, exposed, fleet, shared))) == {DEFAULT_DENY}


def test_an_allow_all_policy_beside_the_default_deny_fails_the_network_check(kube, fleet, shared):
    undone = premium(kube, "undone")
    apply_all(kube, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": "allow-everything", "namespace": undone.namespace},
                     "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}})
    assert failing(run_kubernetes_checks(kube, undone, fleet, shared)) == {DEFAULT_DENY: (
        "tenant undone (premium): in tenant-undone, allow-everything allows ingress from every peer on every port. "
        "The API server stores and admits NetworkPolicies; enforcing them needs a network plugin that implements "
        "NetworkPolicy, which this check does not prove.")}


def test_a_shared_account_that_reads_a_premium_namespace_fails_the_basic_tenants_check(kube, fleet, shared):
    leaky = shared_account(kube, "leaky-enhancer")
    secret_reader(kube, "leaky-enhancer-reads-acme", "tenant-acme", leaky)
    globex = by_slug(fleet, "globex")
    detail = fails_with(lambda: run_kubernetes_checks(kube, globex, fleet, leaky), SHARED_ACCOUNT_ACCESS,
                        "the shared account's reach into tenant-acme seen")
    assert detail.splitlines()[0] == (
        "tenant globex (basic): the shared workload's service account system:serviceaccount:production:"
        "leaky-enhancer is not held to its own (2 of 22 SubjectAccessReviews answered otherwise):")
    assert detail.splitlines()[1].startswith(
        "can get secrets tenant-acme-credentials in tenant-acme (tenant acme's namespace): allowed by RoleBinding "
        '"leaky-enhancer-reads-acme/tenant-acme"')
    assert detail.splitlines()[2].startswith("can list secrets in tenant-acme (tenant acme's namespace)")


def test_a_basic_tenant_without_the_shared_account_named_is_unproven(fleet):
    report = run_kubernetes_checks(object(), by_slug(fleet, "globex"), fleet, None)  # type: ignore[arg-type]
    assert failing(report) == {SHARED_ACCOUNT_ACCESS: (
        "tenant globex (basic): which service account the shared workload in production runs as was not given, "
        "so what it can read is unproven")}


# The identity that runs the checks -------------------------------------------------------------------------------

def test_the_checks_pass_as_the_checker_identity_which_can_do_no_more(kube, fleet, shared):
    apply_all(kube, *YAML(typ="safe").load_all(CHECKER_ACCESS.read_text()))
    checker = kube.as_user(kube.issue_client_certificate(CHECKER))
    elsewhere = probe_pod("tenantctl-probe", by_slug(fleet, "acme"))
    elsewhere["metadata"]["namespace"] = "kube-system"
    del elsewhere["spec"]["serviceAccountName"]
    eventually(lambda: "may only probe premium tenants' namespaces"
               in checker.request("POST", "/api/v1/namespaces/kube-system/pods", elsewhere,
                                  query={"dryRun": "All"}).body.get("message", ""),
               "the checker's binding and its dry-run-only policy in force")

    reports = run_fleet_kubernetes_checks(checker, fleet, shared)
    assert {slug: failing(report) for slug, report in reports.items()} == {"acme": {}, "initech": {}, "globex": {}}

    for_real = checker.request("POST", "/api/v1/namespaces/tenant-acme/pods", probe_pod("real", fleet[0]))
    assert for_real.status in (403, 422), for_real.body
    assert "tenantctl-kubernetes-checker may only dry-run pods (dryRun=All)" in for_real.message
    for method, path, body in [
        ("GET", "/api/v1/namespaces/tenant-acme/secrets/tenant-acme-credentials", None),
        ("GET", "/api/v1/secrets", None),
        ("GET", "/api/v1/namespaces/tenant-acme/resourcequotas", None),
        ("POST", "/api/v1/namespaces/tenant-acme/configmaps",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "tenant-acme"}}),
        ("DELETE", f"/apis/networking.k8s.io/v1/namespaces/tenant-acme/networkpolicies/{DEFAULT_DENY_POLICY}", None),
        ("PATCH", "/api/v1/namespaces/tenant-acme", {"metadata": {"labels": {"x": "y"}}}),
    ]:
        reply = checker.request(method, path, body, content_type="application/merge-patch+json"
                                if method == "PATCH" else "application/json")
        assert reply.status == 403, f"{method} {path}: {reply.status} {reply.body}"
    assert kube.request("GET", "/api/v1/namespaces/tenant-acme/pods").body["items"] == []


# Pure parts --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("quantity", "cpu", "memory"), [
    ("2", "2001m", "1048578"), ("500m", "501m", "1048577"), ("4Gi", "4294967296001m", "4097Mi"),
    ("1.5", "1501m", "1048578"), ("1e3", "1000001m", "1049576"), ("512Mi", "536870912001m", "513Mi"),
])
def test_just_over_is_the_smallest_step_past_the_quota(quantity, cpu, memory):
    assert (just_over_cpu(quantity), just_over_memory(quantity)) == (cpu, memory)
    assert parse_quantity(cpu) > parse_quantity(quantity) and parse_quantity(memory) > parse_quantity(quantity)


def test_a_quantity_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="'2 cores' is not a Kubernetes quantity"):
        parse_quantity("2 cores")


@pytest.mark.parametrize(("rule", "opens"), [
    ({"ingress": [{}]}, True),
    ({"ingress": [{"from": [{"namespaceSelector": {}}]}]}, True),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}, True),
    ({"ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"a": "b"}}}]}]}, False),
    ({"ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}]}]}, False),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}]}, False),
    ({"egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}, False),
])
def test_a_rule_open_to_every_peer_is_seen(rule, opens):
    assert bool(open_rules({"podSelector": {}, **rule})) is opens



def test_with_a_peer_count_each_account_is_probed_against_its_nearest_peers_only():
    class Recorder:
        """Says no to every review and refuses every pod; records, per account, the namespaces it was asked about."""

        def __init__(self) -> None:
            self.asked: dict[str, set[str]] = {}

        def request(self, method, path, body=None, *, query=None):
            if not path.endswith("subjectaccessreviews"):
                return SimpleNamespace(status=403, body={"message": "refused"})
            namespace = body["spec"]["resourceAttributes"]["namespace"]
            self.asked.setdefault(body["spec"]["user"].split(":")[2], set()).add(namespace)
            return SimpleNamespace(status=201, body={"status": {"allowed": False}})

    tenants = [kubernetes_check_tenant(make_tenant(f"peer{i}", tenant_id=f"00000000-0000-0000-0000-00000000000{i}"),
                                       SHARED_NAMESPACE) for i in range(1, 6)]
    recorder = Recorder()
    run_fleet_kubernetes_checks(recorder, tenants, peer_count=2)
    assert recorder.asked["tenant-peer1"] == {"", "tenant-peer1", "tenant-peer2", "tenant-peer3"}  # the next two
    assert recorder.asked["tenant-peer5"] == {"", "tenant-peer5", "tenant-peer1", "tenant-peer2"}  # wrapping round
    everyone = Recorder()
    run_fleet_kubernetes_checks(everyone, tenants)
    assert everyone.asked["tenant-peer1"] == {"", *(f"tenant-peer{i}" for i in range(1, 6))}


# A suspended tenant ----------------------------------------------------------------------------------------------

def _suspended(slug: str):
    return make_tenant(slug).model_copy(update={"state": TenantState.SUSPENDED})


def test_a_suspended_tenants_quota_refuses_a_pod_and_every_other_check_still_passes(kube, fleet, shared):
    tenant = _suspended("dormant")
    onboard(kube, tenant)
    target = kubernetes_check_tenant(tenant, SHARED_NAMESPACE)

    report = run_kubernetes_checks(kube, target, fleet, shared)

    assert report.ok, report.render()
    assert [r.name for r in report.results][-1] == SUSPENDED_NO_POD
    assert "its quota refused a small pod in tenant-dormant" in report.results[-1].detail


def test_a_suspended_tenant_whose_quota_still_admits_pods_fails(kube, fleet, shared):
    """The namespace as an active tenant has it (the suspension never applied): a pod is admitted."""
    onboard(kube, make_tenant("sleepless"))
    target = kubernetes_check_tenant(_suspended("sleepless"), SHARED_NAMESPACE)

    assert failing(run_kubernetes_checks(kube, target, fleet, shared)) == {SUSPENDED_NO_POD: (
        "tenant sleepless (premium) is suspended, but a small pod was admitted in tenant-sleepless (server-side "
        "dry-run): its ResourceQuota must allow 0 pods while it is suspended")}
