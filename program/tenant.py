"""A tenant stack `<env>.<slug>`: the TenantStack of the one tenant file named by the stack.

Every tenant file is loaded and validated (with the same loader and messages as `tenantctl
validate`): identities must stay unique across the folder, and the post-deploy check probes a few
peers. What every tenant shares comes from the platform stack `<env>` through a StackReference.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pulumi

from checks.host import resolved_non_public
from checks.peers import peer_tenant_ids
from components.naming import environment_option
from components.providers import stack_providers
from components.settings import (
    DatabaseSettings,
    SettingsError,
    TenantEnvironment,
    missing_secret_keys,
    read_adoption,
    read_offboarding,
    read_provider_settings,
    read_purge_slugs,
    read_run_checks,
)
from components.tenant_stack import TenantStack, TenantStackArgs
from program.platform_outputs import platform_reference_name, read_platform
from tenancy.loader import TenantLoadError, require_tenants
from tenancy.model import SECRET_SET_COMMAND, Tenant
from tenancy.redaction import redact


def main(env: str, slug: str) -> None:
    config = pulumi.Config()
    try:
        providers = stack_providers(read_provider_settings(config))
        run_checks, purge_slugs = read_run_checks(config), read_purge_slugs(config)
        offboarding, adopt = read_offboarding(config), read_adoption(config)
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None
    tenants_dir = Path(config.get("tenantsDir") or "tenants")
    tenants = _load(tenants_dir)
    tenant = next((t for t in tenants if t.slug == slug), None)
    if tenant is None:
        raise pulumi.RunError(
            f"stack {pulumi.get_stack()} is tenant {slug!r}, but {tenants_dir}/ has no tenant file for it: restore "
            f"the file, or offboard the tenant by name (`tenantctl destroy {slug} {environment_option(env)} --yes`)"
        )
    host = urlsplit(tenant.servicedesk.url).hostname
    unsafe = resolved_non_public([host])
    if host in unsafe:
        raise pulumi.RunError(f"{tenants_dir}/{slug}.yaml: servicedesk.url: {unsafe[host]}")
    missing = missing_secret_keys(config, tenant.secret_names)
    if missing:
        commands = "\n".join("  " + SECRET_SET_COMMAND.format(key=k).replace("<stack>", pulumi.get_stack())
                             for k in missing)
        raise pulumi.RunError(f"missing secret config for stack {pulumi.get_stack()}:\n{commands}")

    reference = pulumi.StackReference(config.get("platformStack") or platform_reference_name(env))
    environment, database = read_platform(reference, run_checks, purge_slugs, offboarding, adopt)
    stack = declare_tenant(tenant, [t.tenant_id for t in tenants], config, environment, database, providers)
    pulumi.export("tenant", tenant_outputs(tenant, stack))


def _load(tenants_dir: Path) -> list[Tenant]:
    try:
        return require_tenants(tenants_dir)
    except TenantLoadError as exc:
        for problem in exc.problems:
            pulumi.log.error(redact(str(problem)))
        only = f": {redact(str(exc.problems[0]))}" if len(exc.problems) == 1 else ""
        raise pulumi.RunError(f"{len(exc.problems)} error(s) in tenant files; run `tenantctl validate`{only}") from None


def declare_tenant(
    tenant: Tenant,
    fleet_tenant_ids: list,
    config: pulumi.Config,
    environment: TenantEnvironment,
    database: DatabaseSettings | None,
    providers: dict[str, pulumi.ProviderResource],
) -> TenantStack:
    """The tenant's TenantStack, named by its slug at the stack's top level (what `migrate-stacks` moves)."""
    return TenantStack(
        tenant.slug,
        TenantStackArgs(
            tenant=tenant,
            servicedesk_api_key=config.require_secret(tenant.servicedesk.api_key_secret),
            llm_api_key=config.require_secret(tenant.llm.api_key_secret) if tenant.llm else None,
            settings=environment,
            database=database,
            peer_tenant_ids=peer_tenant_ids(fleet_tenant_ids, tenant.tenant_id),
        ),
        opts=pulumi.ResourceOptions(
            providers=providers,
            aliases=[pulumi.Alias(name=old) for old in tenant.previous_slugs],
        ),
    )


def tenant_outputs(tenant: Tenant, stack: TenantStack) -> dict:
    return {
        "slug": tenant.slug,
        "file_digest": tenant.digest,
        "tenant_id": stack.tenant_id,
        "tier": tenant.tier.value,
        "namespace": stack.namespace,
        "webhook_url": stack.webhook_url,
        "kms_key_arn": stack.kms_key_arn,
        "secret_arn": stack.secret_arn,
        "checks": stack.checks,
        "checked_at": stack.checked_at,
    }
