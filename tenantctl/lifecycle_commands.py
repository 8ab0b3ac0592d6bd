"""`tenantctl rotate-signing-secret`: a signing-secret rotation, written into the tenant file for review.

The command changes only the tenant file (tenancy.signing_rotation); the rotation reaches the environment the way
every change does: a pull request, its preview, and `tenantctl up`. Suspension needs no command: it is the tenant
file's `state` field (docs/operations.md).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from tenantctl.app import (
    Rehearsal,
    RehearsalDatabaseUrl,
    StateDir,
    TenantsDir,
    app,
    err,
    fail,
    out,
    tenant_for,
)


@app.command("rotate-signing-secret")
def rotate_signing_secret(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    env: Annotated[str | None, typer.Option("--env", help="The environment whose `up` applies the rotation.")] = None,
    finish: Annotated[bool, typer.Option(
        "--finish", help="Retire the old secret (after the client's admin confirms the new one is saved).")] = False,
    overlap_days: Annotated[float, typer.Option(
        "--overlap-days", help="How long both secrets are accepted; the first `up` after it retires the old one.",
        min=1 / 24, max=90)] = 7.0,
    tenants_dir: TenantsDir = Path("tenants"),
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    database_url: RehearsalDatabaseUrl = None,
) -> None:
    """Write a signing-secret rotation (or, with --finish, its end) into the tenant file; `up` applies it."""
    from components.naming import REHEARSAL_ENV, environment_option
    from tenancy.signing_rotation import RotationError, finish_rotation, start_rotation

    if rehearsal == bool(env):
        raise fail("name the environment that applies the rotation: --env ENV, or --rehearsal")
    if not rehearsal and (state_dir or database_url):
        raise fail("--state-dir and --database-url go with --rehearsal")
    where = environment_option(REHEARSAL_ENV if rehearsal else str(env))
    if rehearsal and state_dir:
        where += f" --state-dir {state_dir}"
    tenant = tenant_for(slug, tenants_dir)
    if tenant is None:
        raise fail(f"no tenant file {tenants_dir / (slug + '.yaml')}")
    path = tenants_dir / f"{slug}.yaml"
    try:
        if finish:
            phase = finish_rotation(path, tenant)
            out.print(f"{path}: signing secret version {phase.current_version} is now the only one; the next `up` "
                      "retires the old secret, and webhooks signed with it are refused from then on.", markup=False)
        else:
            phase = start_rotation(path, tenant, timedelta(days=overlap_days))
            until = phase.overlap_until.strftime("%Y-%m-%d %H:%M UTC")
            out.print(f"{path}: rotation to signing secret version {phase.next_version}; both secrets are accepted "
                      f"until {until}, and the first `up` after that retires the old one.", markup=False)
    except RotationError as exc:
        raise fail(str(exc)) from None
    err.print("Next: review the change (`tenantctl plan`, and in the pull request its preview), then "
              f"`tenantctl up {where} --only {slug}`"
              + ("." if finish else f"; then `tenantctl handoff {slug} {where} --reveal` gives the new secret for "
                 f"the client's admin, and `tenantctl verify {slug} {where}` checks both are accepted."),
              markup=False)
