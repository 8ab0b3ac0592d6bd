"""The layout before a stack per tenant, as a test fixture: every TenantStack in the one `<env>` stack.

The program of that layout was `__main__.py` before commit ca3135e (`git show ca3135e^:__main__.py`).
It cannot run any more as it was (it reads settings through `components.settings.read_settings`, which
the stack-per-tenant change split up), so the fixture is `program.fleet_view.declare_fleet`, which
declares the same resources under the same URNs: each tenant's `TenantStack(slug, ...)` at the stack's
top level, with the same providers (`stack_providers`: `aws-local`, and the rendering Kubernetes
provider) and the same `previous_slugs` aliases. What differs is not a resource the migration moves:
the old program also declared the `ProvisionerAccess` with `manageProvisionerRole` (the rehearsal
does not set it), checked every tenant's secrets and hosts up front, and exported slightly fewer
fields per tenant under the same `tenants` output.

`_services` starts what `tenantctl rehearse` starts, so a test can drive stacks its own way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fleet import engine
from fleet.rehearsal import STACK, STATE_FILE, LocalServices, RehearsalState, spec_maker
from program.fleet_view import declare_fleet
from services import aws_emulator
from services.receiver import WebhookReceiver
from tests.conftest import ROOT


@contextlib.contextmanager
def services(rehearsal, app_db) -> Iterator[tuple[RehearsalState, LocalServices]]:
    """What `tenantctl rehearse` starts, started here so a test can drive stacks its own way."""
    state = RehearsalState.load(rehearsal.state_dir / STATE_FILE)
    aws = aws_emulator.ensure_running(rehearsal.state_dir)
    receiver = WebhookReceiver(app_db.app_dsn, app_db.fernet_key, port=state.environment.get("receiver_port", 0))
    with receiver.start() as running:
        state.environment["receiver_port"] = int(running.base_url.rsplit(":", 1)[1])
        state.save()
        yield state, LocalServices(rehearsal.database_url, app_db.app_dsn, running.base_url, aws.endpoint)
    state.save()


def single_stack_up(rehearsal, app_db, tenants) -> dict[str, int]:
    """An install older than `migrate-stacks`: every TenantStack in the one `rehearsal` stack, its config all
    in it. Returns the engine's resource changes."""
    from pulumi import automation as auto

    with services(rehearsal, app_db) as (state, running):
        spec_for = spec_maker(ROOT, rehearsal.tenants_dir, state, rehearsal.state_dir, running)
        platform = spec_for(STACK, None)
        config, secrets = dict(platform.config), dict(platform.secrets)
        for tenant in tenants:
            spec = spec_for(f"{STACK}.{tenant.slug}", tenant)
            config.update(spec.config)
            secrets.update(spec.secrets)
        stack = auto.create_or_select_stack(stack_name=STACK, project_name="tenant-onboarding",
                                            program=lambda: declare_fleet(tenants),
                                            opts=engine.workspace_options(platform.backend))
        values = {(k if ":" in k else f"tenant-onboarding:{k}"): auto.ConfigValue(v) for k, v in config.items()}
        values.update({f"tenant-onboarding:{k}": auto.ConfigValue(v, secret=True) for k, v in secrets.items()})
        stack.set_all_config(values)
        return dict(stack.up(color="never", on_output=lambda _l: None).summary.resource_changes)


def main(argv: list[str]) -> int:
    """`tenantctl migrate-stacks` of a single-stack rehearsal, as a process the crash tests can kill:
    `python -m tests.e2e.single_stack TENANTS_DIR STATE_BASE DATABASE_URL APP_DATABASE_URL` with the Fernet key
    in TENANT_FERNET_KEY. (The same `migrate` as `tenantctl migrate-stacks --rehearsal`, with the services the
    test started: the crash tests kill it at points they choose.)
    Prints the result as JSON; exit 0 when the migration is complete and clean."""
    import json
    import os
    from pathlib import Path
    from types import SimpleNamespace

    from fleet.migrate_stacks import migrate
    from fleet.rehearse import _state_dir
    from tenancy.loader import require_tenants

    tenants_dir, state_base, database_url, app_dsn = argv
    rehearsal = SimpleNamespace(tenants_dir=Path(tenants_dir), database_url=database_url,
                                state_dir=_state_dir(Path(state_base), database_url))
    app_db = SimpleNamespace(app_dsn=app_dsn, fernet_key=os.environ["TENANT_FERNET_KEY"])
    with services(rehearsal, app_db) as (state, running):
        spec_for = spec_maker(ROOT, rehearsal.tenants_dir, state, rehearsal.state_dir, running)
        result = migrate(STACK, require_tenants(rehearsal.tenants_dir), spec_for, dry_run=False)
    print(json.dumps(result.as_dict()))
    return 0 if result.ok else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
