"""The contract between a platform stack and its tenant stacks: the names of its exports."""

from __future__ import annotations

import pulumi

from components.settings import Adoption, DatabaseSettings, TenantEnvironment

SHARED_NAMESPACE = "sharedNamespace"
INGRESS_NAMESPACE = "ingressNamespace"
MONITORING_NAMESPACE = "monitoringNamespace"
WEBHOOK_BASE_URL = "webhookBaseUrl"
CHECKS_NONCE = "checksNonce"
# Set only where tenantctl records an id for the environment (fleet rule 1); read with get_output.
ENVIRONMENT_ID = "environmentId"
# Secret outputs: they stay secret through the StackReference.
DATABASE_URL = "databaseUrl"
APP_DATABASE_URL = "appDatabaseUrl"
FERNET_KEY = "fernetKey"
SECRET_OUTPUTS = (DATABASE_URL, APP_DATABASE_URL, FERNET_KEY)


def platform_reference_name(env: str) -> str:
    """The platform stack of `env`, fully qualified as a StackReference needs it on any backend."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{env}"


def read_platform(
    reference: pulumi.StackReference, run_checks: bool, purge_slugs: frozenset[str], offboarding: bool = False,
    adopt: Adoption | None = None,
) -> tuple[TenantEnvironment, DatabaseSettings]:
    environment = TenantEnvironment(
        shared_namespace=reference.require_output(SHARED_NAMESPACE),
        ingress_namespace=reference.require_output(INGRESS_NAMESPACE),
        monitoring_namespace=reference.require_output(MONITORING_NAMESPACE),
        webhook_base_url=reference.require_output(WEBHOOK_BASE_URL),
        checks_nonce=reference.require_output(CHECKS_NONCE),
        run_checks=run_checks,
        purge_slugs=purge_slugs,
        offboarding=offboarding,
        adopt=adopt or Adoption(),
    )
    database = DatabaseSettings(
        provisioner_url=pulumi.Output.secret(reference.require_output(DATABASE_URL)),
        app_url=pulumi.Output.secret(reference.require_output(APP_DATABASE_URL)),
        fernet_key=pulumi.Output.secret(reference.require_output(FERNET_KEY)),
        environment_id=reference.get_output(ENVIRONMENT_ID),
    )
    return environment, database
