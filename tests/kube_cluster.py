"""Tenants on the local control plane (services/kube_apiserver.py), for the tests that need a real API server.

`onboard` applies a premium tenant's rendered isolation for real, as the program renders it, and waits until the
cluster enforces it; `eventually` waits for what the API server and the controller-manager do in the background.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from ruamel.yaml import YAML

from components import naming
from components.isolation_manifests import render_premium_isolation
from services.kube_apiserver import LocalKubeApiServer
from tenancy.loader import load_tenants
from tenancy.model import Resources, Tenant, Tier
from tests.conftest import ROOT
from tests.tenant_text import tenant_yaml

SETTLE_S = 30.0  # the authorizer reads bindings through an informer, the controller-manager acts within seconds
INGRESS_NAMESPACE, MONITORING_NAMESPACE = "ingress-nginx", "monitoring"


def repo_tenant(slug: str) -> Tenant:
    """An example tenant of the repository's own tenants/ folder."""
    return load_tenants([ROOT / "tenants" / f"{slug}.yaml"]).by_slug()[slug]


def make_tenant(slug: str, tier: str = "premium", tenant_id: str | None = None) -> Tenant:
    """A tenant shaped like a `tenantctl new` file: the premium tier's default quota unless it says otherwise."""
    tenant_id = tenant_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"kube-tests/{slug}"))
    return Tenant.model_validate(YAML(typ="safe").load(tenant_yaml(slug, tier, tenant_id)))


def isolation_manifests(tenant: Tenant, quota: Resources | None = None) -> list[dict]:
    """What the program renders for a premium tenant's namespace; `quota` overrides its ResourceQuota's figures
    (a cluster whose quota is not the tier's)."""
    assert tenant.tier is Tier.PREMIUM, f"{tenant.slug} is not premium: it has no namespace of its own"
    labels = naming.tenant_labels(tenant.slug, str(tenant.tenant_id), tenant.tier.value)
    manifests = render_premium_isolation(tenant.slug, labels, quota or tenant.effective_resources,
                                         INGRESS_NAMESPACE, MONITORING_NAMESPACE, suspended=tenant.suspended)
    return [manifest.body for manifest in manifests]


def onboard(kube: LocalKubeApiServer, tenant: Tenant, quota: Resources | None = None) -> list[dict]:
    """Apply a premium tenant's isolation for real, and wait until the cluster enforces it (the controller-manager
    has given the namespace its `default` ServiceAccount and the quota its status)."""
    manifests = isolation_manifests(tenant, quota)
    for manifest in manifests:
        reply = kube.apply(manifest)
        assert reply.ok, f"{manifest['kind']} {manifest['metadata']['name']}: {reply.status} {reply.message}"
    namespace = naming.namespace_name(tenant.slug)
    quota_object = next(m for m in manifests if m["kind"] == "ResourceQuota")
    eventually(lambda: kube.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default").ok,
               f"the default ServiceAccount of {namespace}")
    eventually(lambda: kube.get(quota_object).body.get("status", {}).get("hard") == quota_object["spec"]["hard"],
               f"the status of {namespace}'s quota")
    return manifests


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f}s: {what}"
        time.sleep(0.2)
