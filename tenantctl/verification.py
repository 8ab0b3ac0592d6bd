"""`tenantctl verify`: the OnboardingCheck's checks, run from the command line for one tenant.

The signing secret is read the way the application reads it: from the tenant's `tenant_configs`
row, decrypted with the application's Fernet key.
"""

from __future__ import annotations

import psycopg

from components.dynamic.onboarding_check import ALL_CHECKS, run_onboarding_checks
from tenantctl import credentials, db
from tenantctl.checks.report import CheckReport


class VerifyError(Exception):
    pass


def read_signing_secret(database_url: str, tenant_id: str, fernet_key: str) -> str:
    try:
        connection = db.connect(database_url)
    except db.DatabaseError as exc:
        raise VerifyError(str(exc)) from None
    try:
        with connection, connection.cursor() as cursor:
            db.set_tenant_variable(cursor, tenant_id)
            cursor.execute(
                "SELECT webhook_signing_secret_encrypted FROM tenant_configs WHERE tenant_id = %s", (tenant_id,)
            )
            row = cursor.fetchone()
    except psycopg.Error as exc:
        raise VerifyError(f"reading tenant_configs on {db.describe_dsn(database_url)}: {db.first_line(exc)}") from None
    if row is None:
        raise VerifyError(f"tenant {tenant_id} has no tenant_configs row in {db.describe_dsn(database_url)}")
    try:
        return credentials.decrypt(fernet_key, row[0])
    except credentials.CredentialError as exc:
        raise VerifyError(str(exc)) from None


def verify(
    tenant_id: str, slug: str, checks: list[str], app_database_url: str | None, webhook_url: str | None,
    signing_secret: str | None,
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
        "timeout_seconds": 15.0,
    })
