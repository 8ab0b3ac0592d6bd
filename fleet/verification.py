"""`tenantctl verify`: the OnboardingCheck's checks, run from the command line for one tenant or all of them.

The signing secrets (the tenant's, and a peer's that its endpoint must refuse) are read the way the
application reads them (`tenancy.signing_secrets`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

from checks.peers import peer_tenant_ids
from checks.report import CheckReport
from checks.rls import MAX_REAL_PEERS
from components import naming
from components.dynamic.onboarding_check import ALL_CHECKS, run_onboarding_checks
from tenancy.model import Tenant


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
        raise VerifyError(f"unknown check(s): {', '.join(sorted(unknown))}; choose from {', '.join(ALL_CHECKS)}")
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
        report = verify(tenant_id, tenant.slug, target.checks, target.app_database_url, webhook_url,
                        secrets.current or None, peers, peer_secret, secrets.next, secrets.suspended)
    except SigningSecretError as exc:
        raise VerifyError(str(exc)) from None
    return VerifyOutcome(tenant, report, time.monotonic() - started)
