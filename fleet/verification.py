"""`tenantctl verify`: the OnboardingCheck's checks, run from the command line for one tenant or all of them, and
with a cluster to ask, the Kubernetes isolation checks (checks.kubernetes_isolation) through its API server.

The signing secrets (the tenant's, and a peer's that its endpoint must refuse) are read the way the
application reads them (`tenancy.signing_secrets`). The Kubernetes checks run as the identity
`checks/kubernetes_checker_access.yaml` grants (SubjectAccessReviews, dry-run pods, NetworkPolicies read).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from checks.kubernetes_isolation import KubernetesApi, SharedWorkload, run_kubernetes_checks
from checks.peers import peer_tenant_ids
from checks.report import CheckReport
from checks.rls import MAX_REAL_PEERS
from components import naming
from components.dynamic.onboarding_check import ALL_CHECKS, run_onboarding_checks
from components.isolation_manifests import kubernetes_check_tenant
from tenancy.model import Tenant

KUBERNETES = "kubernetes"  # the family of checks.kubernetes_isolation, asked of an API server


class VerifyError(Exception):
    pass


@dataclass(frozen=True)
class VerifyTarget:
    """Where the checks look, the same for every tenant of one run."""

    checks: list[str]
    database_url: str | None
    app_database_url: str | None
    fernet_key: str | None
    webhook_base_url: str | None  # the tenant's webhook URL is derived from it...
    webhook_url: str | None  # ...unless given (one tenant only)
    registry: list[UUID]  # every tenant id: the peers come from it
    kubernetes: KubernetesTarget | None = None  # where the `kubernetes` checks ask


@dataclass(frozen=True)
class KubernetesTarget:
    """The cluster the Kubernetes checks ask, as the checker identity, and what they look for there."""

    api: KubernetesApi
    shared_namespace: str
    tenants: list[Tenant]  # every tenant of the registry: each one's peers come from it
    shared: SharedWorkload | None  # the shared workload's account (basic tenants' Secrets)


@dataclass
class VerifyOutcome:
    tenant: Tenant
    report: CheckReport
    seconds: float


def verify(
    tenant_id: str, slug: str, checks: list[str], app_database_url: str | None, webhook_url: str | None,
    signing_secret: str | None, peer_tenant_ids: list[str] | None = None, peer_signing_secret: str | None = None,
    next_signing_secret: str | None = None, suspended: bool = False,
) -> CheckReport:
    unknown = set(checks) - set(ALL_CHECKS)
    if unknown:
        raise VerifyError(f"unknown check(s): {', '.join(sorted(unknown))}; choose from "
                          f"{', '.join((*ALL_CHECKS, KUBERNETES))}")
    return run_onboarding_checks({
        "tenant_id": tenant_id,
        "slug": slug,
        "checks": checks,
        "app_database_url": app_database_url,
        "webhook_url": webhook_url,
        "signing_secret": signing_secret,
        "peer_tenant_ids": peer_tenant_ids or [],
        "peer_signing_secret": peer_signing_secret,
        "next_signing_secret": next_signing_secret,
        "suspended": suspended,
        "timeout_seconds": 15.0,
    })


def verify_tenant(tenant: Tenant, target: VerifyTarget) -> VerifyOutcome:
    """One tenant's checks, timed; VerifyError when they cannot even start (no row, a wrong key)."""
    from tenancy.signing_secrets import SigningSecretError, WebhookSecrets, first_peer_secret, read_webhook_secrets

    started = time.monotonic()
    tenant_id = str(tenant.tenant_id)
    peers = peer_tenant_ids(target.registry, tenant.tenant_id, count=MAX_REAL_PEERS)
    webhook_url = target.webhook_url or (naming.webhook_url(target.webhook_base_url, tenant_id)
                                         if target.webhook_base_url else None)
    secrets, peer_secret = WebhookSecrets(""), None
    try:
        if "webhook" in target.checks:
            # The row says whether the tenant is suspended and which secrets are live: what the endpoint must honour.
            secrets = read_webhook_secrets(target.database_url, tenant_id, target.fernet_key)
            peer_secret = first_peer_secret(target.database_url, peers, target.fernet_key)
        onboarding = [check for check in target.checks if check != KUBERNETES]
        report = verify(tenant_id, tenant.slug, onboarding, target.app_database_url, webhook_url,
                        secrets.current or None, peers, peer_secret, secrets.next,
                        secrets.suspended) if onboarding else CheckReport()
    except SigningSecretError as exc:
        raise VerifyError(str(exc)) from None
    if KUBERNETES in target.checks:
        report.results.extend(kubernetes_report(tenant, target).results)
    return VerifyOutcome(tenant, report, time.monotonic() - started)


def kubernetes_report(tenant: Tenant, target: VerifyTarget) -> CheckReport:
    """The tenant's Kubernetes checks, against its nearest few peers (as the RLS checks choose theirs)."""
    cluster = target.kubernetes
    if cluster is None:
        raise VerifyError("the kubernetes checks need an API server to ask: `tenantctl verify --rehearsal` asks the "
                          "rehearsal's")
    by_id = {str(t.tenant_id): t for t in cluster.tenants} | {str(tenant.tenant_id): tenant}
    peers = [kubernetes_check_tenant(by_id[peer], cluster.shared_namespace)
             for peer in peer_tenant_ids(by_id, tenant.tenant_id, count=MAX_REAL_PEERS)]
    return run_kubernetes_checks(cluster.api, kubernetes_check_tenant(tenant, cluster.shared_namespace), peers,
                                 cluster.shared)
