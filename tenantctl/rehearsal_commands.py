"""`tenantctl rehearse`: the whole fleet against local services, on the real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantctl.app import (
    AllowUnverifiedTls,
    Only,
    TenantsDir,
    app,
    checked_url,
    emit_json,
    err,
    fail,
    out,
)


@app.command()
def rehearse(
    tenants_dir: TenantsDir = Path("tenants"),
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Use this database (default: a throwaway local PostgreSQL).")
    ] = None,
    app_database_url: Annotated[
        str | None, typer.Option("--app-database-url", help="Application role URL (default: app_user, same db).")
    ] = None,
    destroy_all: Annotated[bool, typer.Option("--destroy", help="Remove everything the rehearsal created.")] = False,
    stop: Annotated[bool, typer.Option(
        "--stop", help="Stop the services the state folder keeps running (the AWS emulator, and what --keep-running "
                       "left: PostgreSQL, the Kubernetes API server); change nothing else.")
    ] = False,
    keep_running: Annotated[bool, typer.Option(
        "--keep-running", help="Leave PostgreSQL and the Kubernetes API server running after the run, and print how "
                               "to reach them (kubeconfig, database URL); `--stop` stops them.")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Run `pulumi preview` instead; change nothing.")] = False,
    only: Only = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where the rehearsal keeps its state (default .rehearsal/).")
    ] = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Run every stack, also one whose desired state is unchanged since a clean run.")] = False,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Refresh every stack first (up: saved; --preview: previewed), then run it.")] = False,
) -> None:
    """A real `pulumi up` (or preview, or destroy) of every tenant on a local backend, against local services. A
    tenant stack whose desired state is unchanged since a clean run is skipped, and the summary says so."""
    from fleet.rehearse import REHEARSAL_DIR, RehearseFailure, run_rehearse, stop_services

    if sum((preview, destroy_all, stop)) > 1:
        raise fail("choose one of --preview, --destroy and --stop", as_json=as_json)
    if (force or refresh) and (destroy_all or stop):
        raise fail("--force and --refresh go with an up or --preview only", as_json=as_json)
    if keep_running and (destroy_all or stop):
        raise fail("--keep-running goes with an up or --preview only", as_json=as_json)
    if stop:
        from fleet.stack_files import find_project_root

        base = state_dir or find_project_root(tenants_dir.resolve().parent) / REHEARSAL_DIR
        try:
            stopped = stop_services(base)
        except RehearseFailure as exc:
            raise fail(str(exc), as_json=as_json) from None
        if as_json:
            emit_json({"ok": True, "stopped": stopped})
        for line in stopped:
            err.print(line, markup=False)
        return
    database_url = checked_url(database_url, "--database-url", allow_unverified_tls, as_json)
    app_database_url = checked_url(app_database_url, "--app-database-url", allow_unverified_tls, as_json)
    try:
        result = run_rehearse(tenants_dir, database_url, app_database_url, destroy_all,
                              progress=None if as_json else lambda line: err.print(line, markup=False),
                              state_base=state_dir, preview=preview, only=set(only) if only else None,
                              force=force, refresh=refresh, keep_running=keep_running)
    except RehearseFailure as exc:
        raise fail(str(exc), as_json=as_json, details=exc.details) from None
    if as_json:
        emit_json(result.as_dict())
    else:
        from fleet.rehearse import summary_table

        out.print(summary_table(result))
    if not result.ok:
        raise typer.Exit(1)

