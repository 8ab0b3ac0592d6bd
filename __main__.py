"""The Pulumi program: one TenantStack per tenant file in `tenants/`.

Every file is validated first, with the same loader and messages as `tenantctl validate`;
any error stops the program before a single resource is registered.
"""

from pathlib import Path

import pulumi

from components.providers import stack_providers
from components.settings import DATABASE_KEYS, SettingsError, missing_secret_keys, read_database_settings, read_settings
from components.tenant_stack import TenantStack, TenantStackArgs
from tenantctl.loader import TenantLoadError, require_tenants
from tenantctl.model import SECRET_SET_COMMAND


def main() -> None:
    config = pulumi.Config()
    try:
        settings = read_settings(config)
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None
    try:
        tenants = require_tenants(Path(settings.tenants_dir))
    except TenantLoadError as exc:
        for problem in exc.problems:
            pulumi.log.error(str(problem))
        raise pulumi.RunError(f"{len(exc.problems)} error(s) in tenant files; run `tenantctl validate`") from None

    missing = missing_secret_keys(config, [*DATABASE_KEYS, *(t.servicedesk.api_key_secret for t in tenants)])
    if missing:
        commands = "\n".join("  " + SECRET_SET_COMMAND.format(key=k).replace(" --stack <stack>", "") for k in missing)
        raise pulumi.RunError(f"missing secret config for stack {pulumi.get_stack()}:\n{commands}")

    database = read_database_settings(config)
    providers = stack_providers(settings)
    outputs = {}
    for tenant in tenants:
        stack = TenantStack(
            tenant.slug,
            TenantStackArgs(
                tenant=tenant,
                servicedesk_api_key=config.require_secret(tenant.servicedesk.api_key_secret),
                settings=settings,
                database=database,
            ),
            opts=pulumi.ResourceOptions(providers=providers),
        )
        outputs[tenant.slug] = {
            "tenant_id": stack.tenant_id,
            "tier": tenant.tier.value,
            "namespace": stack.namespace,
            "webhook_url": stack.webhook_url,
            "kms_key_arn": stack.kms_key_arn,
            "secret_arn": stack.secret_arn,
        }
    pulumi.export("tenants", outputs)


main()
