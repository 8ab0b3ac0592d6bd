"""`tenantctl destroy|restore`: offboarding exactly one tenant, and taking it back within its windows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from tenancy.model import SLUG_PATTERN, Tier
from tenantctl.app import (
    AllowUnverifiedTls,
    TenantsDir,
    Wait,
    WaitTimeout,
    app,
    checked_url,
    environment_locked,
    err,
    fail,
    out,
    tenant_for,
)


@app.command()
def destroy(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    env: Annotated[str, typer.Option("--env", "--stack", help="Environment of the tenant's stack.")] = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    yes: Annotated[bool, typer.Option("--yes", help="Run the offboarding instead of printing its steps.")] = False,
    purge_data: Annotated[
        bool, typer.Option("--purge-data", help="Delete the tenant's history rows too (irreversible).")
    ] = False,
    erase_history: Annotated[bool, typer.Option(
        "--erase-history", help="Also remove the stack and its history (`pulumi stack rm`) instead of a tombstone.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", envvar="TENANT_DATABASE_URL",
                     help="Provisioner database URL (default: the stack's databaseUrl via the Pulumi CLI)."),
    ] = None,
    tenant_id: Annotated[str | None, typer.Option("--tenant-id", help="Needed when the tenant file is gone.")] = None,
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="A tenant of the rehearsal environment.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900,
    export_file: Annotated[Path | None, typer.Option(
        "--export", help="An export of the tenant (tenantctl export) made within 24 h and matching its row now.")
    ] = None,
    without_export: Annotated[bool, typer.Option(
        "--without-export", help="Offboard without an export: what the destroy deletes is kept nowhere.")] = False,
) -> None:
    """Offboard exactly one tenant: lift its guards, destroy its own stack <env>.<slug>, keep the stack as a
    tombstone (its history guarded; --erase-history removes the stack too)."""
    import re
    import shlex

    from components.tenant_stack import KMS_DELETION_WINDOW_DAYS as KMS_WINDOW
    from components.tenant_stack import SECRET_RECOVERY_WINDOW_DAYS as SECRET_WINDOW
    from fleet.offboarding import OffboardingError, count_history, database_url_from_stack
    from fleet.offboarding import offboarding_commands as planned_commands
    from tenancy.tenant_data import describe_counts

    if not re.fullmatch(SLUG_PATTERN, slug):
        raise fail(f"{slug!r} is not a tenant slug")
    if rehearsal:
        env = "rehearsal"
    tenant = tenant_for(slug, tenants_dir)
    if purge_data and tenant is None:
        raise fail(
            f"--purge-data needs tenants/{slug}.yaml: the purge is applied through the tenant's own resource, "
            "which the program declares from its file. Restore the file (with `offboarding: {purge_data: true}` "
            "if you prefer a pull request), or destroy without --purge-data to keep the history."
        )
    tenant_id = tenant_id or (str(tenant.tenant_id) if tenant else None)
    url = checked_url(database_url or (None if rehearsal else database_url_from_stack(env)), "--database-url",
                      allow_unverified_tls)
    if url and tenant_id:
        try:
            counts = count_history(url, tenant_id)
        except OffboardingError as exc:
            raise fail(str(exc)) from None
        if any(counts.values()) and not purge_data:
            raise fail(
                f"tenant {slug} still has history rows ({describe_counts(counts)}); "
                "re-run with --purge-data to delete them too, or export them first"
            )
        if any(counts.values()):
            err.print(f"the destroy will purge: {describe_counts(counts)}", markup=False)
    else:
        err.print(
            "[yellow]history not checked (no database URL or tenant id); the tenant_configs row's delete "
            "will still refuse while history rows exist[/]"
        )
    if tenant is not None:
        err.print(
            f"[yellow]tenants/{slug}.yaml still exists: remove it in a pull request too, "
            "or the next deploy recreates the tenant[/]"
        )
    err.print(
        f"The tenant's KMS key is scheduled for deletion ({KMS_WINDOW}-day window) and its Secrets Manager secret "
        f"keeps a {SECRET_WINDOW}-day recovery window; `tenantctl restore {slug}` takes both back within that time."
    )
    if yes or export_file is not None:
        from tenantctl.export_commands import export_gate

        export_gate(export_file, without_export, url, tenant_id, env, slug)
    if not yes:
        premium = tenant is None or tenant.tier is Tier.PREMIUM
        for command in planned_commands(env, slug, purge_data, tenant is not None, premium, erase_history):
            out.print(shlex.join(command), markup=False)
        return
    _offboard(env, slug, tenants_dir, url if rehearsal else None, state_dir, rehearsal, purge_data,
              erase_history, tenant is not None, wait, wait_timeout)


@contextlib.contextmanager
def _tenant_stack(env: str, slug: str, tenants_dir: Path, database_url: str | None, state_dir: Path | None,
                  rehearsal: bool, operation: str, wait: bool = False, wait_timeout: float = 900) -> Iterator:
    """A tenant's stack spec, held with its environment's lock for a command that changes it (rule 5): the
    rehearsal's (its services started for the while), or the environment's."""
    from components.naming import tenant_stack_name
    from fleet import engine
    from fleet import project_runs as fleet_command
    from fleet.rehearse import rehearsal_stack
    from fleet.stack_files import find_project_root

    name = tenant_stack_name(env, slug)
    if rehearsal:
        with rehearsal_stack(tenants_dir, database_url, state_dir, name, f"{operation} {slug}",
                             lambda line: err.print(line, markup=False), wait=wait, wait_timeout=wait_timeout) as spec:
            yield spec
    else:
        with environment_locked(env, tenants_dir, f"{operation} {slug}", wait, wait_timeout):
            yield engine.StackSpec(
                fleet_command.project_backend(find_project_root(tenants_dir.resolve().parent), env), name)


def _offboard(env: str, slug: str, tenants_dir: Path, database_url: str | None, state_dir: Path | None,
              rehearsal: bool, purge: bool, erase_history: bool, tenant_file: bool, wait: bool,
              wait_timeout: float) -> None:
    from fleet import engine
    from fleet.offboarding import OffboardingError, offboard
    from fleet.rehearse import RehearseFailure

    try:
        with _tenant_stack(env, slug, tenants_dir, database_url, state_dir, rehearsal, "destroy", wait,
                           wait_timeout) as spec:
            offboard(spec, purge, erase_history, tenant_file, lambda line: err.print(line, markup=False))
    except (OffboardingError, RehearseFailure, engine.EngineError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        # The worker passed the Ctrl-C to its engine, which saved what it did; the steps can be run again.
        raise fail(f"interrupted: run `tenantctl destroy {slug} --yes` again to finish the offboarding") from None


@app.command()
def restore(
    slug: Annotated[str, typer.Argument(help="Slug of the offboarded tenant.")],
    env: Annotated[str, typer.Option("--env", "--stack", help="Environment of the tenant's stack.")] = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="TENANT_DATABASE_URL", help="With --rehearsal: the database it ran on.")] = None,
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="A tenant of the rehearsal environment.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
) -> None:
    """Within the windows, take an offboarded tenant's KMS key and secret back; then re-add its file and run
    `tenantctl up`, which adopts them instead of creating new ones."""
    import re

    from components.naming import tenant_stack_name
    from fleet import engine
    from fleet.rehearse import RehearseFailure
    from fleet.restore import RestoreError, restore_stack

    if not re.fullmatch(SLUG_PATTERN, slug):
        raise fail(f"{slug!r} is not a tenant slug")
    env = "rehearsal" if rehearsal else env
    name = tenant_stack_name(env, slug)
    try:
        with _tenant_stack(env, slug, tenants_dir, database_url, state_dir, rehearsal, "restore") as spec:
            restored = restore_stack(spec)
    except (RestoreError, RehearseFailure, engine.EngineError) as exc:
        raise fail(str(exc)) from None
    then = "tenantctl rehearse" if rehearsal else f"tenantctl up --env {env}"
    err.print(f"{name}: KMS key {restored.kms_key_id} and secret {restored.secret_arn} restored; re-add "
              f"tenants/{slug}.yaml and run `{then}`: it adopts them", markup=False)

