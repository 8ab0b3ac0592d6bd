"""`tenantctl verify`: the OnboardingCheck's checks, run from the command line for one tenant.

The signing secrets (the tenant's, and a peer's that its endpoint must refuse) are read the way the
application reads them (`tenantctl.signing_secrets`).
"""

from __future__ import annotations

from components.dynamic.onboarding_check import ALL_CHECKS, run_onboarding_checks
from tenantctl.checks.report import CheckReport


class VerifyError(Exception):
    pass


def verify(
    tenant_id: str, slug: str, checks: list[str], app_database_url: str | None, webhook_url: str | None,
    signing_secret: str | None, peer_tenant_ids: list[str] | None = None, peer_signing_secret: str | None = None,
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
        "timeout_seconds": 15.0,
    })
