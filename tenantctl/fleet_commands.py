"""`tenantctl preview|up|migrate-stacks|unlock|status`: an environment's stacks, run, migrated, unlocked and
reported."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from tenantctl.app import (
    AllowUnverifiedTls,
    EnvName,
    Only,
    Rehearsal,
    RehearsalDatabaseUrl,
    StateDir,
    TenantsDir,
    Wait,
    WaitTimeout,
    _lock_store,
    app,
    checked_url,
    emit_json,
    environment_locked,
    err,
    fail,
    out,
    report_lock,
)

ChangedSince = Annotated[str | None, typer.Option(
    "--changed-since", help="Only stacks a change since this git ref affects (shared code: all).")]

Concurrency = Annotated[int, typer.Option(
    "--concurrency", min=1, max=32, help="Stacks run at once (each tenant creates one KMS key: AWS allows 5/s).")]


AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

Force = Annotated[bool, typer.Option(
    "--force", help="Run every selected stack, also one whose desired state is unchanged since a clean run "
                    "(the engine's own word; the selection itself is unchanged).")]

Refresh = Annotated[bool, typer.Option(
    "--refresh", help="Refresh every selected stack first (its drift: saved by up, only previewed by preview), "
                      "then run it; nothing is skipped.")]

Until = Annotated[str | None, typer.Option(
    "--until", metavar="canary", help="A gated release: run the platform and the canary wave only, record the release "
                                      "as awaiting approval, and hold every later stack (listed).")]

After = Annotated[str | None, typer.Option(
    "--after", metavar="canary", help="A gated release, once approved: run the waves after the canary and the "
                                      "removals; refused unless the canary of this commit and selection succeeded "
                                      "and its stacks are still what it applied.")]

PolicyPacks = Annotated[list[Path] | None, typer.Option("--policy-pack", help="Run every stack with this policy pack.")]


@dataclass(frozen=True)
class Where:
    """The environment a command names: `--env E`, or `--rehearsal [--state-dir DIR] [--database-url URL]`."""

    env: str
    tenants_dir: Path
    rehearsal: bool = False
    state_dir: Path | None = None
    database_url: str | None = None
    wait: bool = False
    wait_timeout: float = 900


@contextlib.contextmanager
def _environment(where: Where, operation: str, say: Callable[[str], None], as_json: bool, *, read_only: bool,
                 services: bool = True) -> Iterator:
    """The environment the run acts on (fleet.project_runs.FleetEnvironment), held for it: its lock taken by a
    run that changes it, or only reported by a read-only one (rules 2 and 5). The rehearsal's is
    fleet.rehearse.rehearsal_environment, with its services up for the while."""
    from fleet import project_runs
    from fleet.rehearse import rehearsal_environment
    from fleet.stack_files import find_project_root

    if where.rehearsal:
        url = checked_url(where.database_url, "--database-url", False, as_json)
        with rehearsal_environment(where.tenants_dir, url, where.state_dir, operation, say, read_only=read_only,
                                   services=services, wait=where.wait, wait_timeout=where.wait_timeout) as target:
            yield target
        return
    given = [name for name, value in (("--state-dir", where.state_dir), ("--database-url", where.database_url))
             if value is not None]
    if given:
        raise fail(f"{' and '.join(given)} only go with --rehearsal", as_json=as_json)
    root = find_project_root(where.tenants_dir.resolve().parent)
    if read_only:
        report_lock(where.env, where.tenants_dir)
        yield project_runs.project_environment(root, where.env)
        return
    with environment_locked(where.env, where.tenants_dir, operation, where.wait, where.wait_timeout, as_json):
        yield project_runs.project_environment(root, where.env)


def _fleet(operation: str, where: Where, only: list[str] | None, changed_since: str | None, concurrency: int,
           as_json: bool, policy_packs: list[Path] | None, markdown: Path | None = None,
           max_removals: int = 1, force: bool = False, refresh: bool = False, stage: str | None = None,
           without_export: bool = False) -> None:
    from fleet import engine
    from fleet import project_runs as fleet_command
    from fleet.plan import PlanError
    from fleet.rehearse import RehearseFailure
    from fleet.rollout import FleetError
    from fleet.stack_files import find_project_root
    from tenancy.identity_changes import GitRefError
    from tenancy.loader import TenantLoadError, require_tenants

    tenants_dir = where.tenants_dir

    def load_tenants():
        try:
            return require_tenants(tenants_dir, allow_none=operation == "preview")
        except TenantLoadError as exc:
            raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                       details=[str(p) for p in exc.problems]) from None

    # The rehearsal's files are read before its services start; an environment's lock is taken (or a held one
    # reported) before anything else.
    tenants = load_tenants() if where.rehearsal else None
    root = find_project_root(tenants_dir.resolve().parent)
    say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
    try:
        with _environment(where, operation, say, as_json, read_only=operation == "preview") as target:
            tenants = tenants if tenants is not None else load_tenants()
            result = fleet_command.run(root, tenants_dir, target.name, operation, tenants,
                                       set(only) if only else None, changed_since, concurrency, say,
                                       [str(p) for p in policy_packs or []], max_removals=max_removals, target=target,
                                       force=force, refresh=refresh, stage=stage, without_export=without_export)
    except FleetError as exc:
        problems = getattr(exc, "problems", [str(exc)])
        raise fail(f"refused before anything ran: {len(problems)} problem(s)", as_json=as_json,
                   details=problems) from None
    except (engine.EngineError, PlanError, GitRefError, RehearseFailure) as exc:
        raise fail(str(exc), as_json=as_json, details=getattr(exc, "details", None)) from None
    if markdown is not None:
        markdown.write_text(fleet_command.markdown_summary(result, target.option), encoding="utf-8")
    if as_json:
        emit_json(result.as_dict())
    else:
        out.print(fleet_command.summary_table(result))
    if not result.ok:
        raise typer.Exit(1)


Markdown = Annotated[Path | None, typer.Option("--markdown", help="Also write the summary as Markdown here.")]

MaxRemovals = Annotated[int, typer.Option(
    "--max-removals", min=0,
    help="Refuse the run, before anything runs, when removals and orphans together exceed this.")]


@app.command()
def preview(
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    only: Only = None,
    changed_since: ChangedSince = None,
    concurrency: Concurrency = 4,
    as_json: AsJson = False,
    policy_packs: PolicyPacks = None,
    markdown: Markdown = None,
    max_removals: MaxRemovals = 1,
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    database_url: RehearsalDatabaseUrl = None,
    force: Force = False,
    refresh: Refresh = False,
) -> None:
    """`pulumi preview` of the environment's affected stacks, in parallel, with one summary. Writes nothing to the
    backend: renames, removals and orphans are reported as what `up` would do. A tenant stack whose desired state
    is unchanged since a clean run is skipped, and the summary says so (--force, --refresh: none is). With
    --rehearsal: the rehearsal's stacks, against its services."""
    _fleet("preview", Where(env, tenants_dir, rehearsal, state_dir, database_url), only, changed_since, concurrency,
           as_json, policy_packs, markdown, max_removals, force, refresh)


@app.command()
def up(
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    only: Only = None,
    changed_since: ChangedSince = None,
    concurrency: Concurrency = 4,
    as_json: AsJson = False,
    policy_packs: PolicyPacks = None,
    markdown: Markdown = None,
    max_removals: MaxRemovals = 1,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900,
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    database_url: RehearsalDatabaseUrl = None,
    force: Force = False,
    refresh: Refresh = False,
    until: Until = None,
    after: After = None,
    without_export: Annotated[bool, typer.Option(
        "--without-export", help="Offboard the run's removals without a recorded export (tenantctl export): what "
                                 "the offboard deletes is kept nowhere.")] = False,
) -> None:
    """`pulumi up` of the platform stack, then the affected tenant stacks in waves (canaries first). A tenant stack
    whose desired state is unchanged since a clean run is skipped, and the summary says so (--force: every
    selected stack runs; --refresh: each is refreshed, then run). A tenant whose tenant_id left every file in the
    --changed-since range is offboarded (its stack kept as a tombstone); a stack without a file is an orphan, left
    alone; a removal is refused (exit 1) unless `tenantctl export` recorded an export of the tenant as it is now,
    made within 24 h, or --without-export is given. Exit 1 when any stack failed or an orphan exists. With
    --rehearsal: the rehearsal's stacks, against its services. A gated release: `--until canary`, an approval,
    then `--after canary` with the same options."""
    for option, value in (("--until", until), ("--after", after)):
        if value is not None and value != "canary":
            raise fail(f"{option} {value!r}: the only gate is `canary` (after the canary wave)", as_json=as_json)
    if until and after:
        raise fail("--until canary and --after canary are the two halves of a gated release: give one",
                   as_json=as_json)
    stage = "until-canary" if until else "after-canary" if after else None
    _fleet("up", Where(env, tenants_dir, rehearsal, state_dir, database_url, wait, wait_timeout), only, changed_since,
           concurrency, as_json, policy_packs, markdown, max_removals, force, refresh, stage, without_export)


@app.command("migrate-stacks")
def migrate_stacks(
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would move; change nothing.")] = False,
    as_json: AsJson = False,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900,
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    database_url: RehearsalDatabaseUrl = None,
) -> None:
    """Move each tenant of the single <env> stack into its own stack <env>.<slug> (`pulumi state move`), then
    preview every moved stack: a correct migration shows no create, delete or replace. With --rehearsal: a
    rehearsal made by an earlier release."""
    from fleet import engine
    from fleet.migrate_stacks import MigrationError, migrate
    from fleet.rehearse import RehearseFailure
    from tenancy.loader import TenantLoadError, require_tenants

    try:
        tenants = require_tenants(tenants_dir)
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
    where = Where(env, tenants_dir, rehearsal, state_dir, database_url, wait, wait_timeout)
    try:
        # A dry run reads the state only: no service, and no lock (it reports a held one).
        with _environment(where, "migrate-stacks", say, as_json, read_only=dry_run, services=not dry_run) as target:
            result = migrate(target.name, tenants, target.specs(None), dry_run, say,
                             command=target.command("migrate-stacks"))
    except (MigrationError, engine.EngineError, RehearseFailure) as exc:
        raise fail(str(exc), as_json=as_json) from None
    if as_json:
        emit_json(result.as_dict())
    for error in result.errors:
        err.print(f"error: {error}", markup=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def unlock(
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    force: Annotated[bool, typer.Option(
        "--force", help="Remove the lock even if its holder may be alive: only once every process of it is gone.")
    ] = False,
    rehearsal: Rehearsal = False,
    state_dir: StateDir = None,
    database_url: RehearsalDatabaseUrl = None,
) -> None:
    """Remove the environment lock: a provably stale one, or with --force any one."""
    from fleet import environment_lock
    from fleet.rehearsal import STACK
    from fleet.rehearse import REHEARSAL_DIR, _state_dir
    from fleet.stack_files import find_project_root
    from fleet.state_folder import UnsupportedBackend, rehearsal_records

    if rehearsal:
        root = find_project_root(tenants_dir.resolve().parent)
        env, records = STACK, rehearsal_records(_state_dir(state_dir or root / REHEARSAL_DIR, database_url))
    else:
        try:
            records = _lock_store(tenants_dir)
        except UnsupportedBackend as exc:
            raise fail(f"environment {env}: {exc}") from None
    try:
        out.print(environment_lock.unlock(records, env, force), markup=False)
    except environment_lock.LockError as exc:
        raise fail(str(exc)) from None


@app.command()
def status(
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    refresh: Annotated[bool, typer.Option("--refresh", help="Also preview a refresh of every stack: drift.")] = False,
    as_json: AsJson = False,
    concurrency: Concurrency = 4,
    max_unverified_hours: Annotated[float, typer.Option(
        "--max-unverified-hours", min=0, help="A tenant last verified longer ago fails the status.")] = 168,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="TENANT_DATABASE_URL", help="Provisioner URL: shows each tenant_configs row.")] = None,
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="The rehearsal environment instead.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="With --refresh: wait for a run that holds the environment or a stack (up to "
                       "--wait-timeout) instead of refusing.")] = False,
    wait_timeout: WaitTimeout = 900,
) -> None:
    """Every tenant as desired (its file), applied (its stack), ready, verified and drifted; orphans both ways.
    Exit 1 when a tenant failed, is pending, unverified for too long or drifted, or a stack has no file.
    With --refresh it refuses (or, with --wait, waits) while a run such as `up` holds the environment or a stack."""
    import contextlib
    from datetime import timedelta

    from fleet import engine, refresh_guard
    from fleet import project_runs as fleet_command
    from fleet import status as fleet_status
    from fleet.rehearse import RehearseFailure, rehearsal_sources
    from fleet.stack_files import find_project_root
    from fleet.state_folder import UnsupportedBackend, rehearsal_records
    from tenancy import tenant_data
    from tenancy.db import DatabaseError
    from tenancy.loader import TenantLoadError, require_tenants

    try:
        tenants = require_tenants(tenants_dir, allow_none=True)
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    url = checked_url(database_url, "--database-url", allow_unverified_tls, as_json)
    try:
        with contextlib.ExitStack() as stack:
            if rehearsal:
                spec_for, stacks, url = stack.enter_context(
                    rehearsal_sources(tenants_dir, url, state_dir, kubernetes=refresh))
                env = "rehearsal"
            else:
                backend = fleet_command.project_backend(find_project_root(tenants_dir.resolve().parent), env)
                spec_for, stacks = fleet_command.project_specs(backend), engine.list_stacks(backend)
            if refresh:
                specs = [spec_for(name, None) for name in stacks]
                try:
                    records = (rehearsal_records(spec_for(env, None).backend.work_dir.parent) if rehearsal
                               else _lock_store(tenants_dir))
                except UnsupportedBackend:
                    records = None  # no environment lock there to wait for; the stacks' engine locks still count
                refresh_guard.wait_until_unlocked(
                    lambda: refresh_guard.holder_in_the_way(records, env, specs), wait=wait, wait_timeout=wait_timeout,
                    say=(lambda _line: None) if as_json else (lambda line: err.print(line, markup=False)))
            rows = (lambda ids: tenant_data.row_update_times(url, ids)) if url else None
            report = fleet_status.collect(env, tenants, tenants_dir, stacks, spec_for, refresh=refresh,
                                          concurrency=concurrency, rows=rows,
                                          max_unverified=timedelta(hours=max_unverified_hours))
    except (engine.EngineError, RehearseFailure, DatabaseError) as exc:
        raise fail(str(exc), as_json=as_json) from None
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(fleet_status.status_table(report))
        for line in fleet_status.orphan_lines(report):
            out.print(line, markup=False)
        for tenant in report.failing:
            err.print(f"{tenant.tenant}: {'; '.join(tenant.problems)}", markup=False)
    if not report.ok:
        raise typer.Exit(1)

