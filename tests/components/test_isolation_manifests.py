"""What the Kubernetes checks look for is what the manifests render: the same names, and the tenant's quota."""

from __future__ import annotations

from components import naming
from components.isolation_manifests import kubernetes_check_tenant, render_premium_isolation
from tenancy.model import Tier
from tests.kube_cluster import make_tenant, repo_tenant


def test_a_premium_tenants_check_target_names_what_its_manifests_render():
    acme = repo_tenant("acme")
    target = kubernetes_check_tenant(acme, "production")
    manifests = [m.body for m in render_premium_isolation(
        "acme", naming.tenant_labels("acme", str(acme.tenant_id), "premium"), acme.effective_resources, "in", "mon")]
    rendered = {body["kind"]: body for body in manifests}  # one of each kind but NetworkPolicy
    deny = [body for body in manifests if body["kind"] == "NetworkPolicy"
            and "ingress" not in body["spec"] and "egress" not in body["spec"]]
    assert target.namespace == rendered["Namespace"]["metadata"]["name"]
    assert target.service_account == rendered["ServiceAccount"]["metadata"]["name"]
    assert [target.credentials_secret] == rendered["Role"]["rules"][0]["resourceNames"]
    assert [target.default_deny_policy] == [policy["metadata"]["name"] for policy in deny]
    assert (target.quota.cpu, target.quota.memory) == (rendered["ResourceQuota"]["spec"]["hard"]["limits.cpu"],
                                                       rendered["ResourceQuota"]["spec"]["hard"]["limits.memory"])
    assert (target.tier, target.tenant_id) == (Tier.PREMIUM, str(acme.tenant_id))


def test_a_basic_tenants_check_target_is_its_secret_in_the_shared_namespace():
    target = kubernetes_check_tenant(make_tenant("hooli", "basic"), "shared-apps")
    assert (target.namespace, target.credentials_secret) == ("shared-apps", "tenant-hooli-credentials")
    assert (target.service_account, target.quota, target.default_deny_policy) == (None, None, None)
