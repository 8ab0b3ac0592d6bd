"""Refuses a fleet run on an environment that was never migrated to a stack per tenant.

An install older than `tenantctl migrate-stacks` keeps every tenant's TenantStack in the one stack
`<env>`. Today `<env>` is the platform stack, and the platform program declares no tenant: an `up`
of it deletes every tenant resource it does not declare (KMS keys, secrets, namespaces, the rows).
So `tenantctl up` and `preview` (and the rehearsal's `up` and `preview`) read the `<env>` stack's
exported state first (one `pulumi stack export`, secrets left encrypted) and refuse, naming the
tenants and `tenantctl migrate-stacks`, when it still holds a TenantStack.

Why this guard lives here and not in the program: a Pulumi program cannot see its own stack's
state before it registers resources, and deletions are planned by the engine from what the program
did *not* register, so the platform program cannot tell that it is about to delete tenants.
`protect` does not help either: it is set by the program that declares a resource, and the old
program never set it. A plain `pulumi up --stack <env>` on an unmigrated environment is therefore
still dangerous: it deletes every tenant. Run `tenantctl migrate-stacks --env <env>` first (the rehearsal:
`tenantctl migrate-stacks --rehearsal`).
"""

from __future__ import annotations

from components.naming import TENANT_STACK_TYPE
from fleet import engine

GUARDED_OPERATIONS = ("up", "preview")


def tenant_stacks_in(state: dict) -> list[str]:
    """The names (slugs) of the TenantStacks in a stack's exported state, sorted."""
    resources = state.get("deployment", {}).get("resources") or []
    return sorted(engine.resource_name(r["urn"]) for r in resources if r.get("type") == TENANT_STACK_TYPE)


def unmigrated_tenants(spec: engine.StackSpec) -> list[str]:
    """The tenants still in the platform stack `spec.name` (none when that stack does not exist yet).

    Only the backend and the name of `spec` are used: no config is written, nothing is created."""
    from pulumi.automation import errors as auto_errors

    try:
        stack = engine.open_stack(engine.StackSpec(spec.backend, spec.name), create=False)
        return tenant_stacks_in(engine.export_state(stack))
    except auto_errors.StackNotFoundError:
        return []
    except auto_errors.CommandError as exc:
        raise engine.EngineError(f"cannot read stack {spec.name} to check that it holds no tenant: "
                                 f"{str(exc).strip().splitlines()[-1]}") from None


def refusal(env: str, operation: str, tenants: list[str], migrate_command: str | None = None) -> str:
    """The one-line refusal; `migrate_command` migrates this environment (default `tenantctl migrate-stacks --env
    <env>`; the rehearsal's is `tenantctl migrate-stacks --rehearsal`)."""
    return (f"stack {env} still holds {len(tenants)} tenant(s) of the single-stack layout ({', '.join(tenants)}): "
            f"the platform program would delete them ({operation} refused); "
            f"run `{migrate_command or f'tenantctl migrate-stacks --env {env}'}` first")


def refuse_unmigrated(spec: engine.StackSpec, operation: str, migrate_command: str | None = None) -> None:
    """EngineError naming the tenants, and `migrate_command`, when `operation` (up or preview; a destroy is not
    guarded) would run the platform program on a stack that still holds tenants."""
    if operation not in GUARDED_OPERATIONS:
        return
    tenants = unmigrated_tenants(spec)
    if tenants:
        raise engine.EngineError(refusal(spec.name, operation, tenants, migrate_command))
