"""Every tenant of an environment declared in one program, each exactly as its tenant stack declares it.

`tenantctl plan` simulates this to show a whole fleet in one run. It is also the layout before
stacks per tenant (every TenantStack in the `<env>` stack), which `tenantctl migrate-stacks` starts
from. Settings come from the one stack's config, as they did then. The end-to-end tests create that
old layout with it (`tests/e2e/single_stack.py`, which says how it differs from the old `__main__.py`),
so keep its resources and URNs as they are.
"""

from __future__ import annotations

import pulumi

from components.providers import stack_providers
from components.settings import (
    DatabaseSettings,
    SettingsError,
    TenantEnvironment,
    read_offboarding,
    read_platform_settings,
    read_provider_settings,
    read_purge_slugs,
    read_run_checks,
)
from program.tenant import declare_tenant, tenant_outputs
from tenancy.model import Tenant


def declare_fleet(tenants: list[Tenant], fleet: list[Tenant] | None = None) -> None:
    """`tenants` declared as their stacks declare them; `fleet` (default: the same) are the peers each one's
    isolation check probes against (a plan runs one region at a time, with the whole fleet as peers)."""
    config = pulumi.Config()
    try:
        environment = TenantEnvironment.of(read_platform_settings(config), read_run_checks(config),
                                           read_purge_slugs(config), read_offboarding(config))
        providers = stack_providers(read_provider_settings(config))
    except SettingsError as exc:
        raise pulumi.RunError(str(exc)) from None
    database = DatabaseSettings(config.require_secret("databaseUrl"), config.require_secret("appDatabaseUrl"),
                                config.require_secret("fernetKey"))
    fleet_ids = [t.tenant_id for t in fleet or tenants]
    outputs = {}
    for tenant in tenants:
        stack = declare_tenant(tenant, fleet_ids, config, environment, database, providers)
        outputs[tenant.slug] = tenant_outputs(tenant, stack)
    pulumi.export("tenants", outputs)
