"""The Kubernetes objects of a premium tenant's dedicated namespace, rendered as plain manifests.

Rendering registers nothing, so the same objects can be created by `TenantStack`, written out by
`tenantctl plan --out`, and checked against the Kubernetes schemas. The ingress and monitoring
namespace names may be Outputs (a tenant stack reads them from its platform stack).

`kubernetes_check_tenant` says what the Kubernetes checks (checks.kubernetes_isolation) look for in a cluster
for one tenant, from the same names and quota as these manifests.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from checks.kubernetes_isolation import KubernetesTenant
from components import naming
from tenancy.model import Resources, Tenant, Tier

# Per-container defaults for pods that do not declare their own requests/limits; they must fit
# the smallest quota a premium tenant can have, so they stay modest.
CONTAINER_DEFAULT_LIMITS = {"cpu": "500m", "memory": "512Mi"}
CONTAINER_DEFAULT_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
DEFAULT_DENY_POLICY = "default-deny-all"


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object; `suffix` names its Pulumi resource (`<slug>-<suffix>`)."""

    suffix: str
    body: dict

    @property
    def kind(self) -> str:
        return self.body["kind"]


def _metadata(name: str, labels: dict[str, str], namespace: str | None = None) -> dict:
    metadata: dict = {"name": name, "labels": dict(labels)}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def _from_namespace(namespace: pulumi.Input[str]) -> dict:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def render_namespace(slug: str, labels: dict[str, str]) -> Manifest:
    psa = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    return Manifest("namespace", {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(naming.namespace_name(slug), {**labels, **psa}),
    })


def render_resource_quota(slug: str, labels: dict[str, str], resources: Resources, *,
                          suspended: bool = False) -> Manifest:
    """The namespace's quota; a suspended tenant's admits no pod (`pods: 0`), and its running pods are not evicted
    by it (a quota is checked at admission), so the workload scaled to zero stays at zero."""
    return Manifest("quota", {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(f"tenant-{slug}-quota", labels, naming.namespace_name(slug)),
        "spec": {"hard": {
            "requests.cpu": resources.cpu,
            "limits.cpu": resources.cpu,
            "requests.memory": resources.memory,
            "limits.memory": resources.memory,
            "pods": "0" if suspended else str(resources.pods),
        }},
    })


def render_limit_range(slug: str, labels: dict[str, str]) -> Manifest:
    return Manifest("limits", {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(f"tenant-{slug}-limits", labels, naming.namespace_name(slug)),
        "spec": {"limits": [{
            "type": "Container",
            "default": dict(CONTAINER_DEFAULT_LIMITS),
            "defaultRequest": dict(CONTAINER_DEFAULT_REQUESTS),
        }]},
    })


def render_network_policies(slug: str, labels: dict[str, str], ingress_ns: pulumi.Input[str],
                            monitoring_ns: pulumi.Input[str]) -> list[Manifest]:
    namespace = naming.namespace_name(slug)

    def policy(suffix: str, name: str, spec: dict) -> Manifest:
        return Manifest(suffix, {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata(name, labels, namespace),
            "spec": {"podSelector": {}, **spec},
        })

    return [
        # No ingress/egress rules at all: with both policy types listed this denies everything,
        # and the policies below add back only what a tenant needs.
        policy("deny-all", DEFAULT_DENY_POLICY, {"policyTypes": ["Ingress", "Egress"]}),
        policy("allow-ingress-controller", "allow-from-ingress-controller", {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_from_namespace(ingress_ns)]}],
        }),
        policy("allow-monitoring", "allow-from-monitoring", {
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_from_namespace(monitoring_ns)]}],
        }),
        policy("allow-dns", "allow-dns-egress", {
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{**_from_namespace("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }),
    ]


def render_rbac(slug: str, labels: dict[str, str]) -> list[Manifest]:
    namespace = naming.namespace_name(slug)
    account = naming.service_account_name(slug)
    role = naming.reader_role_name(slug)
    return [
        Manifest("service-account", {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(account, labels, namespace),
            "automountServiceAccountToken": False,
        }),
        Manifest("reader-role", {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(role, labels, namespace),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": [naming.credentials_secret_name(slug)],
                    "verbs": ["get"],
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        Manifest("reader-binding", {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(role, labels, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }),
    ]


def render_premium_isolation(
    slug: str, labels: dict[str, str], resources: Resources, ingress_ns: pulumi.Input[str],
    monitoring_ns: pulumi.Input[str], *, suspended: bool = False,
) -> list[Manifest]:
    """Everything a premium tenant's namespace holds except its credentials Secret."""
    return [
        render_namespace(slug, labels),
        render_resource_quota(slug, labels, resources, suspended=suspended),
        render_limit_range(slug, labels),
        *render_network_policies(slug, labels, ingress_ns, monitoring_ns),
        *render_rbac(slug, labels),
    ]


def kubernetes_check_tenant(tenant: Tenant, shared_namespace: str) -> KubernetesTenant:
    """What the Kubernetes checks look for of `tenant`: a premium tenant's namespace, service account, quota and
    default-deny policy as rendered above; a basic tenant's credentials Secret in the shared namespace."""
    slug = tenant.slug
    common = {"slug": slug, "tenant_id": str(tenant.tenant_id), "tier": tenant.tier,
              "credentials_secret": naming.credentials_secret_name(slug)}
    if tenant.tier is not Tier.PREMIUM:
        return KubernetesTenant(namespace=shared_namespace, **common)
    return KubernetesTenant(namespace=naming.namespace_name(slug), service_account=naming.service_account_name(slug),
                            quota=tenant.effective_resources, default_deny_policy=DEFAULT_DENY_POLICY,
                            suspended=tenant.suspended, **common)
