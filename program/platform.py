"""The platform stack `<env>`: what every tenant of the environment shares, exported for the tenant stacks.

- the shared namespace of basic-tier tenants (kept in the cluster if the stack is ever destroyed:
  the application runs there);
- the provisioner's database URL, from config or, with `manageProvisionerRole`, from the
  `tenant_provisioner` role Pulumi creates with pulumi-postgresql;
- the application's database URL and the Fernet key, as secret outputs;
- the namespace names, the webhook base URL and the checks nonce, as plain outputs;
- optionally (`verificationSchedule`), the CronJob that re-runs every tenant's checks on a schedule.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components.providers import stack_providers
from components.provisioner_access import ProvisionerAccess, ProvisionerAccessArgs
from components.scheduled_verification import (
    ScheduledVerification,
    ScheduledVerificationArgs,
    read_verification_settings,
)
from components.settings import (
    DATABASE_KEYS,
    SettingsError,
    check_database_urls,
    missing_secret_keys,
    read_platform_settings,
    read_provider_settings,
)
from program import platform_outputs as names
from tenancy.model import SECRET_SET_COMMAND

SHARED_NAMESPACE_LABELS = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "ai-agents"}


def main() -> None:
    config = pulumi.Config()
    try:
        settings = read_platform_settings(config)
        providers = stack_providers(read_provider_settings(config), aws_resources=False)
        verification = read_verification_settings(config)
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None
    manage_role = config.get_bool("manageProvisionerRole") or False
    keys = [key for key in DATABASE_KEYS if not (manage_role and key == "databaseUrl")]
    missing = missing_secret_keys(config, keys)
    if missing:
        commands = "\n".join("  " + SECRET_SET_COMMAND.format(key=k).replace(" --stack <stack>", "") for k in missing)
        raise pulumi.RunError(f"missing secret config for platform stack {pulumi.get_stack()}:\n{commands}")
    try:
        check_database_urls(config, [key for key in keys if key.endswith("Url")])
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None

    provisioner_url = managed_provisioner_url(config) if manage_role else config.require_secret("databaseUrl")
    shared = k8s.core.v1.Namespace(
        "shared-namespace",
        metadata={"name": settings.shared_namespace, "labels": SHARED_NAMESPACE_LABELS},
        opts=pulumi.ResourceOptions(provider=providers.get("kubernetes"), retain_on_delete=True),
    )
    if verification:
        webhook = urlsplit(settings.webhook_base_url)
        ScheduledVerification("verification", ScheduledVerificationArgs(
            env=pulumi.get_stack(),
            settings=verification,
            ingress_namespace=settings.ingress_namespace,
            webhook_port=webhook.port or (443 if webhook.scheme == "https" else 80),
            database_url=provisioner_url,
            app_database_url=config.require_secret("appDatabaseUrl"),
            fernet_key=config.require_secret("fernetKey"),
        ), opts=pulumi.ResourceOptions(providers=providers))
    pulumi.export(names.SHARED_NAMESPACE, shared.metadata.name)
    pulumi.export(names.INGRESS_NAMESPACE, settings.ingress_namespace)
    pulumi.export(names.MONITORING_NAMESPACE, settings.monitoring_namespace)
    pulumi.export(names.WEBHOOK_BASE_URL, settings.webhook_base_url)
    pulumi.export(names.CHECKS_NONCE, settings.checks_nonce)
    pulumi.export(names.DATABASE_URL, pulumi.Output.secret(provisioner_url))
    pulumi.export(names.APP_DATABASE_URL, config.require_secret("appDatabaseUrl"))
    pulumi.export(names.FERNET_KEY, config.require_secret("fernetKey"))
    environment_id = config.get("environmentId")  # set by tenantctl from the id recorded beside the state
    if environment_id:
        pulumi.export(names.ENVIRONMENT_ID, environment_id)


def managed_provisioner_url(config: pulumi.Config) -> pulumi.Output[str]:
    """With `manageProvisionerRole`, Pulumi owns the provisioner role (pulumi-postgresql provider config)."""
    server = pulumi.Config("postgresql")
    access = ProvisionerAccess("provisioner", ProvisionerAccessArgs(
        database=config.get("databaseName") or "app",
        host=server.require("host"),
        port=server.get_int("port") or 5432,
        sslmode=server.get("sslmode"),
    ))
    return access.database_url
