"""The Pulumi program: one TenantStack per tenant file in `tenants/`.

Every file is validated first, with the same loader and messages as `tenantctl validate`;
any error stops the program before a single resource is registered.
"""

from pathlib import Path
from urllib.parse import urlsplit

import pulumi

from components.providers import stack_providers
from components.provisioner_access import ProvisionerAccess, ProvisionerAccessArgs
from components.settings import (
    DATABASE_KEYS,
    SettingsError,
    check_database_urls,
    missing_secret_keys,
    read_database_settings,
    read_settings,
)
from components.tenant_stack import TenantStack, TenantStackArgs
from tenantctl.checks.peers import peer_tenant_ids
from tenantctl.host_checks import resolved_non_public
from tenantctl.loader import TenantLoadError, require_tenants
from tenantctl.model import SECRET_SET_COMMAND


def main() -> None:
    config = pulumi.Config()
    try:
        settings = read_settings(config)
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None
    try:
        tenants = require_tenants(Path(settings.tenants_dir), allow_none=config.get_bool("allowNoTenants") or False)
    except TenantLoadError as exc:
        for problem in exc.problems:
            pulumi.log.error(str(problem))
        only = f": {exc.problems[0]}" if len(exc.problems) == 1 else ""
        raise pulumi.RunError(f"{len(exc.problems)} error(s) in tenant files; run `tenantctl validate`{only}") from None

    hosts = {t.slug: urlsplit(t.servicedesk.url).hostname for t in tenants}
    resolved = resolved_non_public(list(hosts.values()))
    unsafe = [f"tenants/{slug}.yaml: servicedesk.url: {resolved[host]}" for slug, host in hosts.items()
              if host in resolved]
    if unsafe:
        raise pulumi.RunError("ServiceDesk Plus hosts must be public:\n" + "\n".join(unsafe))

    manage_role = config.get_bool("manageProvisionerRole") or False
    database_keys = [key for key in DATABASE_KEYS if not (manage_role and key == "databaseUrl")]
    missing = missing_secret_keys(config, [*database_keys, *(name for t in tenants for name in t.secret_names)])
    if missing:
        commands = "\n".join("  " + SECRET_SET_COMMAND.format(key=k).replace(" --stack <stack>", "") for k in missing)
        raise pulumi.RunError(f"missing secret config for stack {pulumi.get_stack()}:\n{commands}")

    try:
        check_database_urls(config, [key for key in database_keys if key.endswith("Url")])
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None
    provisioner_url = managed_provisioner_url(config) if manage_role else None
    database = read_database_settings(config, provisioner_url)
    providers = stack_providers(settings)
    outputs = {}
    for tenant in tenants:
        stack = TenantStack(
            tenant.slug,
            TenantStackArgs(
                tenant=tenant,
                servicedesk_api_key=config.require_secret(tenant.servicedesk.api_key_secret),
                llm_api_key=config.require_secret(tenant.llm.api_key_secret) if tenant.llm else None,
                settings=settings,
                database=database,
                peer_tenant_ids=peer_tenant_ids([t.tenant_id for t in tenants], tenant.tenant_id),
            ),
            opts=pulumi.ResourceOptions(
                providers=providers,
                aliases=[pulumi.Alias(name=old) for old in tenant.previous_slugs],
            ),
        )
        outputs[tenant.slug] = {
            "tenant_id": stack.tenant_id,
            "tier": tenant.tier.value,
            "namespace": stack.namespace,
            "webhook_url": stack.webhook_url,
            "kms_key_arn": stack.kms_key_arn,
            "secret_arn": stack.secret_arn,
            "checks": stack.checks,
            "checked_at": stack.checked_at,
        }
    pulumi.export("tenants", outputs)


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


main()
