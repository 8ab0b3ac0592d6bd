"""Command-line entry point. Each command is a thin layer over a function the Pulumi program also uses."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tenantctl.cli_guard import GuardedGroup, print_traceback
from tenantctl.loader import load_tenants
from tenantctl.model import SLUG_PATTERN, Tier, tenant_json_schema
from tenantctl.redaction import redact

app = typer.Typer(
    cls=GuardedGroup,
    help="Tenant onboarding as code: validate, plan, verify and rehearse MSP client onboarding.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich help labels every flag <bool> although flags take no value.
    rich_markup_mode=None,
)
# Not a terminal (CI logs, pipes): no width to fit, so nothing is cut at rich's default of 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show its traceback too.")] = False,
) -> None:
    """Tenant onboarding as code: validate, plan, verify and rehearse MSP client onboarding."""

TenantsDir = Annotated[Path, typer.Option("--tenants-dir", help="Directory of tenant files.")]
Env = Annotated[str | None, typer.Option("--env", "--stack",
                                         help="Environment: checks each tenant's stacks/Pulumi.<env>.<slug>.yaml.")]


AllowUnverifiedTls = Annotated[
    bool, typer.Option("--allow-unverified-tls",
                       help="Accept database URLs to other hosts without sslmode=verify-full/verify-ca.")
]


def checked_url(url: str | None, what: str, allow_unverified: bool, as_json: bool = False) -> str | None:
    """A database URL from a flag, parsed once here; a bad one ends the command with a message, no password."""
    from tenantctl.database_url import DatabaseUrlError, parse_database_url

    if url is None:
        return None
    try:
        return parse_database_url(url, what=what, allow_unverified=allow_unverified)
    except DatabaseUrlError as exc:
        raise fail(str(exc), as_json=as_json) from None


Wait = Annotated[bool, typer.Option(
    "--wait", help="If another run holds the environment lock, wait for it (up to --wait-timeout) instead of failing.")]
WaitTimeout = Annotated[float, typer.Option(
    "--wait-timeout", min=0, help="Seconds --wait waits for the environment lock before failing.")]


def _lock_store(tenants_dir: Path):
    """The project backend's record store (tenantctl.state_folder); UnsupportedBackend for other backends."""
    from tenantctl.stack_files import find_project_root
    from tenantctl.state_folder import project_store

    return project_store(find_project_root(tenants_dir.resolve().parent))


@contextlib.contextmanager
def _environment_locked(env: str, tenants_dir: Path, operation: str, wait: bool, wait_timeout: float,
                        as_json: bool = False) -> Iterator[None]:
    """Hold the environment lock (rule 5) around a run that changes the environment; a held one ends it."""
    from tenantctl import environment_lock
    from tenantctl.state_folder import UnsupportedBackend

    say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
    try:
        records = _lock_store(tenants_dir)
    except UnsupportedBackend as exc:  # before anything runs: no run goes on without the lock (rule 5)
        raise fail(f"environment {env}: {exc}", as_json=as_json) from None
    try:
        holder = environment_lock.acquire(records, env, operation, wait=wait, wait_timeout=wait_timeout, say=say)
    except environment_lock.LockError as exc:
        raise fail(str(exc), as_json=as_json) from None
    try:
        yield
    finally:
        environment_lock.release(records, env, holder)


def _report_lock(env: str, tenants_dir: Path) -> None:
    """A read-only command only reports a held lock (rule 2): it neither waits for it nor clears it."""
    from tenantctl import environment_lock
    from tenantctl.state_folder import UnsupportedBackend

    try:
        held = environment_lock.lock_status(_lock_store(tenants_dir), env)
    except UnsupportedBackend as exc:
        held = f"environment {env}: {exc}; `up` would refuse"
    except environment_lock.LockError as exc:
        held = str(exc)
    if held:
        err.print(held, markup=False)


class Format(StrEnum):
    text = "text"
    json = "json"


def emit_json(data: object) -> None:
    # Plain json: rich's highlighter takes seconds on a large plan.
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def fail(message: str, code: int = 1, as_json: bool = False, details: list[str] | None = None) -> typer.Exit:
    """Report an error (as JSON on stdout when the command was asked for JSON) and return the exit to raise.
    The message is one line, and it and every detail pass the one redaction (tenantctl.redaction); with --debug
    the traceback of the error being handled comes first."""
    print_traceback()
    message = " ".join(redact(message).split())
    details = [redact(line) for line in details or []]
    if as_json:
        emit_json({"ok": False, "errors": [*(details or []), message]})
    else:
        for line in details or []:
            err.print(line, markup=False)
        err.print(f"[bold red]error:[/] {message}", markup=True)
    return typer.Exit(code)


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Tenant files (default: all in --tenants-dir).")] = None,
    tenants_dir: TenantsDir = Path("tenants"),
    env: Env = None,
    output: Annotated[Format, typer.Option("--format", help="text or json")] = Format.text,
    changed_since: Annotated[
        str | None,
        typer.Option("--changed-since", help="Compare with this git ref: report renames, refuse tenant_id changes."),
    ] = None,
) -> None:
    """Check tenant files, each alone and all together; report every error as file:line: field: message."""
    from tenantctl.stack_files import find_project_root, missing_secret_problems

    if paths and len(paths) == 1 and paths[0].is_dir():
        tenants_dir, paths = paths[0], None  # `validate tenants/`: the folder, every file in it
    missing = [p for p in paths or [] if not p.is_file()]
    if missing:
        raise fail(", ".join(f"{p}: no such file" + (" (give a folder alone)" if p.is_dir() else "") for p in missing),
                   as_json=output is Format.json)
    result = load_tenants(paths=paths, tenants_dir=tenants_dir)
    problems = list(result.problems)
    if env:
        root = find_project_root((paths[0].parent if paths else tenants_dir).resolve().parent)
        problems += missing_secret_problems(root, env, [(t.path, str(t.path), t.tenant) for t in result.tenants])
    renames: list[tuple[str, str]] = []
    if changed_since:
        from tenantctl.identity_changes import GitRefError, identity_changes

        try:
            changes = identity_changes(find_project_root(tenants_dir.resolve().parent), tenants_dir, changed_since,
                                       result)
        except GitRefError as exc:
            raise fail(str(exc), as_json=output is Format.json) from None
        problems += changes.problems
        renames = changes.renames
    problems.sort()
    if output is Format.json:
        emit_json({
            "ok": not problems,
            "files": result.files_checked,
            "tenants": [t.tenant.slug for t in result.tenants],
            "renames": [{"from": old, "to": new} for old, new in renames],
            "errors": [p.as_dict() for p in problems],
        })
    else:
        for old, new in renames:
            err.print(f"rename: {old} -> {new} (same tenant_id; its row and history stay)", markup=False)
        for problem in problems:
            out.print(str(problem), markup=False)
        if problems:
            err.print(f"{len(problems)} error(s) in {result.files_checked} file(s)", markup=False)
        elif result.files_checked == 0:
            err.print(f"no tenant files found in {tenants_dir}", markup=False)
        else:
            err.print(f"{result.files_checked} tenant file(s) OK", markup=False)
    if problems or result.files_checked == 0:
        raise typer.Exit(1)


@app.command()
def new(
    slug: Annotated[str, typer.Argument(help="DNS-1123 label, 3-40 chars; becomes tenants/<slug>.yaml.")],
    name: Annotated[str, typer.Option("--name", help="Client company name.")],
    tier: Annotated[Tier, typer.Option("--tier", help="basic (shared namespace) or premium (own namespace).")],
    servicedesk_url: Annotated[
        str, typer.Option("--servicedesk-url", help="https URL of the client's ServiceDesk Plus (no placeholder).")
    ],
    admin_email: Annotated[str, typer.Option("--admin-email", help="Client admin contact (no placeholder).")],
    tenants_dir: TenantsDir = Path("tenants"),
) -> None:
    """Write a new tenant file with a fresh tenant_id and print the next steps."""
    import re

    from tenantctl.scaffold import ScaffoldError, new_tenant_file, next_steps

    if not re.fullmatch(SLUG_PATTERN, slug) or not 3 <= len(slug) <= 40:
        raise fail(f"slug {slug!r} must be a DNS-1123 label of 3-40 characters (lowercase letters, digits, '-')")
    try:
        path, secret_key = new_tenant_file(tenants_dir, slug, name, tier, servicedesk_url, admin_email)
    except ScaffoldError as exc:
        raise fail(str(exc)) from None
    out.print(f"Wrote {path}", markup=False)
    out.print("Next steps:", markup=False)
    for number, step in enumerate(next_steps(path, secret_key), start=1):
        out.print(f"  {number}. {step}", markup=False)


@app.command()
def schema(
    write: Annotated[bool, typer.Option("--write", help="Write tenants/schema.json instead of printing it.")] = False,
    tenants_dir: TenantsDir = Path("tenants"),
) -> None:
    """Print (or write) the JSON Schema of tenant files, generated from the pydantic model."""
    text = json.dumps(tenant_json_schema(), indent=2, sort_keys=True) + "\n"
    if write and not tenants_dir.is_dir():
        raise fail(f"{tenants_dir} is not a folder: the schema is written beside the tenant files")
    if write:
        (tenants_dir / "schema.json").write_text(text, encoding="utf-8")
        out.print(f"Wrote {tenants_dir / 'schema.json'}", markup=False)
    else:
        sys.stdout.write(text)


@app.command()
def plan(
    tenants_dir: TenantsDir = Path("tenants"),
    stack: Annotated[str, typer.Option("--env", "--stack",
                                       help="Environment whose platform stack config is used.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write each tenant's Kubernetes objects here.")] = None,
    changed_since: Annotated[
        str | None, typer.Option("--changed-since", help="Only tenants whose files changed since this git ref.")
    ] = None,
) -> None:
    """Show what each tenant gets by running the real program under Pulumi's mock runtime (no cloud needed)."""
    from tenantctl.identity_changes import GitRefError
    from tenantctl.loader import TenantLoadError, require_tenants
    from tenantctl.mock_runtime import ProgramError
    from tenantctl.plan import PlanError, build_plan, write_manifests
    from tenantctl.plan import changed_since as find_changes
    from tenantctl.plan_diff import removed_tenant_counts, tenant_changes
    from tenantctl.plan_render import render_tree
    from tenantctl.stack_files import find_project_root

    root = find_project_root(tenants_dir.resolve().parent)
    only = changes = None
    if changed_since:
        try:
            changes = find_changes(root, tenants_dir, changed_since)
        except PlanError as exc:
            raise fail(str(exc), as_json=as_json) from None
        only = None if changes.program_changed else changes.slugs
    try:
        result = build_plan(root, tenants_dir, stack, only)
        diff = []
        if changed_since:
            counts = {slug: len(children) for slug, children in result.run.by_parent().items() if slug}
            diff = tenant_changes(root, tenants_dir, changed_since, require_tenants(tenants_dir), counts,
                                  removed_tenant_counts(root, stack))
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    except (ProgramError, GitRefError) as exc:
        raise fail(str(exc), as_json=as_json) from None
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise fail(f"--out {out_dir} is a file; give a folder (it is created if missing)", as_json=as_json)
        for path in write_manifests(result, out_dir):
            err.print(f"wrote {path}", markup=False)
    if as_json:
        data = result.as_dict()
        if changed_since:
            data.update(changed_since=changed_since, program_changed=changes.program_changed,
                        changes=[change.as_dict() for change in diff])
        emit_json(data)
        return
    for change in diff:
        for line in change.render():
            out.print(line, markup=False)
    if changed_since and changes.program_changed:
        out.print("The program itself changed: every tenant below may change.", markup=False)
    if not result.tenants:
        out.print("No tenant changes." if not diff else "", markup=False)
    for tree in render_tree(result):
        out.print(tree)


def _tenant_for(slug: str, tenants_dir: Path):
    from tenantctl.loader import parse_tenant_file

    path = tenants_dir / f"{slug}.yaml"
    if not path.is_file():
        return None
    tenant, problems = parse_tenant_file(path)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False)
        raise fail(f"{path} is invalid; fix it first (tenantctl validate)")
    return tenant


def _stack_settings(tenants_dir: Path, stack: str) -> tuple[str, str]:
    from tenantctl.stack_files import StackFileError, find_project_root, read_stack_file

    try:
        stack_file = read_stack_file(find_project_root(tenants_dir.resolve().parent), stack)
    except StackFileError as exc:
        raise fail(str(exc)) from None
    return (
        str(stack_file.plain("webhookBaseUrl", "https://api.ai-agents.production")),
        str(stack_file.plain("sharedNamespace", "production")),
    )


@app.command()
def handoff(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")],
    stack: Annotated[str, typer.Option("--env", "--stack", help="Environment the tenant is deployed to.")] = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Also print the signing secret (needs your AWS access to it).")
    ] = False,
    rehearsal: Annotated[bool, typer.Option(
        "--rehearsal", help="A tenant of the rehearsal environment (its receiver, region and AWS emulator).")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="With --rehearsal: the database it rehearses on (it picks the state folder).")] = None,
) -> None:
    """Print what the client's ServiceDesk Plus admin needs (Markdown); never the secret unless --reveal."""
    from tenantctl.handoff import HandoffError, render_handoff, reveal_signing_secret
    from tenantctl.stack_files import find_project_root, tenant_region

    tenant = _tenant_for(slug, tenants_dir)
    if tenant is None:
        raise fail(f"no tenant file {tenants_dir / (slug + '.yaml')}")
    endpoint, aws_env, option = None, None, None
    if rehearsal:
        from tenantctl import engine
        from tenantctl.rehearsal_endpoints import recorded_endpoints

        try:
            ends = recorded_endpoints(tenants_dir, database_url, state_dir)
        except engine.EngineError as exc:
            raise fail(str(exc)) from None
        stack, base_url, shared_namespace, region = ends.env, ends.webhook_base_url, ends.shared_namespace, ends.region
        endpoint, aws_env, option = ends.aws_endpoint, ends.aws_environment(), "--rehearsal"
        if reveal and endpoint is None:
            raise fail("the rehearsal's AWS emulator is not running, and the secrets it held went with it: "
                       "run `tenantctl rehearse` (it starts the emulator and recreates them), then reveal again")
    else:
        base_url, shared_namespace = _stack_settings(tenants_dir, stack)
        region = tenant_region(find_project_root(tenants_dir.resolve().parent), stack, slug)
    out.print(render_handoff(tenant, stack, base_url, shared_namespace, region, endpoint, option), markup=False)
    if reveal:
        try:
            secret = reveal_signing_secret(tenant, region, endpoint, aws_env)
        except HandoffError as exc:
            raise fail(str(exc)) from None
        err.print("[yellow]The signing secret follows; do not paste it into tickets or chat.[/]")
        out.print(secret, markup=False)


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
) -> None:
    """Offboard exactly one tenant: lift its guards, destroy its own stack <env>.<slug>, keep the stack as a
    tombstone (its history guarded; --erase-history removes the stack too)."""
    import re
    import shlex

    from components.tenant_stack import KMS_DELETION_WINDOW_DAYS as KMS_WINDOW
    from components.tenant_stack import SECRET_RECOVERY_WINDOW_DAYS as SECRET_WINDOW
    from tenantctl.offboarding import OffboardingError, count_history, database_url_from_stack
    from tenantctl.offboarding import offboarding_commands as planned_commands
    from tenantctl.tenant_data import describe_counts

    if not re.fullmatch(SLUG_PATTERN, slug):
        raise fail(f"{slug!r} is not a tenant slug")
    if rehearsal:
        env = "rehearsal"
    tenant = _tenant_for(slug, tenants_dir)
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
    if not yes:
        premium = tenant is None or tenant.tier is Tier.PREMIUM
        for command in planned_commands(env, slug, purge_data, tenant is not None, premium, erase_history):
            out.print(shlex.join(command), markup=False)
        return
    # The rehearsal's runs are kept apart by its state folder's own lock; an environment's by its lock (rule 5).
    with contextlib.nullcontext() if rehearsal else _environment_locked(env, tenants_dir, f"destroy {slug}", wait,
                                                                        wait_timeout):
        _offboard(env, slug, tenants_dir, url if rehearsal else None, state_dir, rehearsal, purge_data,
                  erase_history, tenant is not None)


@contextlib.contextmanager
def _tenant_stack(env: str, slug: str, tenants_dir: Path, database_url: str | None, state_dir: Path | None,
                  rehearsal: bool) -> Iterator:
    """A tenant's stack spec: the rehearsal's (its services started for the while), or the environment's."""
    from components.naming import tenant_stack_name
    from tenantctl import engine, fleet_command
    from tenantctl.rehearse_command import rehearsal_stack
    from tenantctl.stack_files import find_project_root

    name = tenant_stack_name(env, slug)
    if rehearsal:
        with rehearsal_stack(tenants_dir, database_url, state_dir, name) as spec:
            yield spec
    else:
        yield engine.StackSpec(fleet_command.project_backend(find_project_root(tenants_dir.resolve().parent), env),
                               name)


def _offboard(env: str, slug: str, tenants_dir: Path, database_url: str | None, state_dir: Path | None,
              rehearsal: bool, purge: bool, erase_history: bool, tenant_file: bool) -> None:
    from tenantctl import engine
    from tenantctl.offboarding import OffboardingError, offboard
    from tenantctl.rehearse_command import RehearseFailure

    try:
        with _tenant_stack(env, slug, tenants_dir, database_url, state_dir, rehearsal) as spec:
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
    from tenantctl import engine
    from tenantctl.rehearse_command import RehearseFailure
    from tenantctl.restore import RestoreError, restore_stack

    if not re.fullmatch(SLUG_PATTERN, slug):
        raise fail(f"{slug!r} is not a tenant slug")
    env = "rehearsal" if rehearsal else env
    name = tenant_stack_name(env, slug)
    try:
        with _tenant_stack(env, slug, tenants_dir, database_url, state_dir, rehearsal) as spec:
            restored = restore_stack(spec)
    except (RestoreError, RehearseFailure, engine.EngineError) as exc:
        raise fail(str(exc)) from None
    then = "tenantctl rehearse" if rehearsal else f"tenantctl up --env {env}"
    err.print(f"{name}: KMS key {restored.kms_key_id} and secret {restored.secret_arn} restored; re-add "
              f"tenants/{slug}.yaml and run `{then}`: it adopts them", markup=False)


EnvName = Annotated[str, typer.Option("--env", help="Environment: platform stack <env>, tenant stacks <env>.<slug>.")]
Only = Annotated[list[str] | None, typer.Option("--only", help="Only this tenant's stack (repeatable).")]
ChangedSince = Annotated[str | None, typer.Option(
    "--changed-since", help="Only stacks a change since this git ref affects (shared code: all).")]
Concurrency = Annotated[int, typer.Option(
    "--concurrency", min=1, max=32, help="Stacks run at once (each tenant creates one KMS key: AWS allows 5/s).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
PolicyPacks = Annotated[list[Path] | None, typer.Option("--policy-pack", help="Run every stack with this policy pack.")]


def _fleet(operation: str, env: str, tenants_dir: Path, only: list[str] | None, changed_since: str | None,
           concurrency: int, as_json: bool, policy_packs: list[Path] | None, markdown: Path | None = None,
           max_removals: int = 1) -> None:
    from tenantctl import engine, fleet_command
    from tenantctl.fleet import FleetError
    from tenantctl.identity_changes import GitRefError
    from tenantctl.loader import TenantLoadError, require_tenants
    from tenantctl.plan import PlanError
    from tenantctl.stack_files import find_project_root

    try:
        tenants = require_tenants(tenants_dir, allow_none=operation == "preview")
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    root = find_project_root(tenants_dir.resolve().parent)
    say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
    try:
        result = fleet_command.run(root, tenants_dir, env, operation, tenants, set(only) if only else None,
                                   changed_since, concurrency, say, [str(p) for p in policy_packs or []],
                                   max_removals=max_removals)
    except FleetError as exc:
        problems = getattr(exc, "problems", [str(exc)])
        raise fail(f"refused before anything ran: {len(problems)} problem(s)", as_json=as_json,
                   details=problems) from None
    except (engine.EngineError, PlanError, GitRefError) as exc:
        raise fail(str(exc), as_json=as_json) from None
    if markdown is not None:
        markdown.write_text(fleet_command.markdown_summary(result), encoding="utf-8")
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
) -> None:
    """`pulumi preview` of the environment's affected stacks, in parallel, with one summary. Writes nothing to the
    backend: renames, removals and orphans are reported as what `up` would do."""
    _report_lock(env, tenants_dir)
    _fleet("preview", env, tenants_dir, only, changed_since, concurrency, as_json, policy_packs, markdown, max_removals)


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
) -> None:
    """`pulumi up` of the platform stack, then the affected tenant stacks in waves (canaries first). A tenant whose
    tenant_id left every file in the --changed-since range is offboarded (its stack kept as a tombstone); a stack
    without a file is an orphan, left alone. Exit 1 when any stack failed or an orphan exists."""
    with _environment_locked(env, tenants_dir, "up", wait, wait_timeout, as_json):
        _fleet("up", env, tenants_dir, only, changed_since, concurrency, as_json, policy_packs, markdown, max_removals)


@app.command("migrate-stacks")
def migrate_stacks(
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would move; change nothing.")] = False,
    as_json: AsJson = False,
    wait: Wait = False,
    wait_timeout: WaitTimeout = 900,
) -> None:
    """Move each tenant of the single <env> stack into its own stack <env>.<slug> (`pulumi state move`), then
    preview every moved stack: a correct migration shows no create, delete or replace."""
    from tenantctl import engine, fleet_command
    from tenantctl.loader import TenantLoadError, require_tenants
    from tenantctl.migrate_stacks import MigrationError, migrate
    from tenantctl.stack_files import find_project_root

    try:
        tenants = require_tenants(tenants_dir)
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    root = find_project_root(tenants_dir.resolve().parent)
    backend = fleet_command.project_backend(root, env)
    say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
    if dry_run:
        _report_lock(env, tenants_dir)
    with contextlib.nullcontext() if dry_run else _environment_locked(env, tenants_dir, "migrate-stacks", wait,
                                                                      wait_timeout, as_json):
        try:
            result = migrate(env, tenants, fleet_command.project_specs(backend), dry_run, say)
        except (MigrationError, engine.EngineError) as exc:
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
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="The rehearsal environment instead.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="With --rehearsal: the database it rehearses on (it picks the state folder).")] = None,
) -> None:
    """Remove the environment lock: a provably stale one, or with --force any one."""
    from tenantctl import environment_lock
    from tenantctl.rehearsal import STACK
    from tenantctl.rehearse_command import REHEARSAL_DIR, _state_dir
    from tenantctl.stack_files import find_project_root
    from tenantctl.state_folder import UnsupportedBackend, rehearsal_records

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


@app.command("render-operator")
def render_operator(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Stack objects (one file each).")],
    repo: Annotated[str, typer.Option("--repo", help="Git URL of this repository, as the operator clones it.")],
    namespace: Annotated[str, typer.Option("--namespace", help="Namespace the operator runs the stacks in.")],
    service_account: Annotated[str, typer.Option(
        "--service-account", help="Prefix of each Stack's own workspace ServiceAccount (<prefix>-<stack object>).")],
    env: EnvName = "prod",
    tenants_dir: TenantsDir = Path("tenants"),
    branch: Annotated[str | None, typer.Option(
        "--branch", help="Refused: a branch moves without review; give --commit.")] = None,
    commit: Annotated[str | None, typer.Option(
        "--commit", help="The 40-hex sha to pin: one whose CI run passed the policy pack (the operator runs none).")
    ] = None,
    repo_dir: Annotated[str | None, typer.Option("--repo-dir", help="Folder of Pulumi.yaml in the repo.")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="Self-managed backend (else Pulumi Cloud).")] = None,
    env_secret: Annotated[list[str] | None, typer.Option(
        "--env-secret", help="NAME=SECRET/KEY: a workspace variable from a Kubernetes Secret.")] = None,
    stack_secret: Annotated[list[str] | None, typer.Option(
        "--stack-secret", help="NAME=KEY: a workspace variable from each Stack's own Secret <stack object>-secrets.")
    ] = None,
    git_token: Annotated[str | None, typer.Option("--git-token", help="SECRET/KEY of a private repo's token.")] = None,
    resync_seconds: Annotated[int, typer.Option("--resync-seconds", help="How often each stack is re-applied.")] = 600,
    crds: Annotated[Path | None, typer.Option(
        "--crds", help="Folder of the operator's CRDs (kubectl get crd stacks.pulumi.com -o yaml).")] = None,
) -> None:
    """Pulumi Kubernetes Operator `Stack` objects pinned to one commit, in `up`'s canary-first order, each with a
    workspace ServiceAccount of its own that reaches only its own Secrets."""
    from tenantctl.loader import TenantLoadError
    from tenantctl.operator_command import OperatorOptionsError, operator_source_from_options, render_operator_files
    from tenantctl.operator_crds import CrdFolderError

    try:
        source = operator_source_from_options(
            repo_url=repo, namespace=namespace, service_account=service_account, branch=branch, commit=commit,
            repo_dir=repo_dir, backend=backend, env_secrets=env_secret or (), stack_secrets=stack_secret or (),
            git_token=git_token,
            resync_seconds=resync_seconds)
        result = render_operator_files(tenants_dir, env, out_dir, source, crds)
    except OperatorOptionsError as exc:
        raise fail(f"{len(exc.problems)} problem(s) with the options", details=list(exc.problems)) from None
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", details=[str(p) for p in exc.problems]) from None
    except (CrdFolderError, FileExistsError, ValueError) as exc:
        raise fail(str(exc)) from None
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    if not result.ok:
        raise fail(f"{len(result.problems)} object(s) do not match the operator's CRDs; nothing was written",
                   details=result.problems)
    for path in result.written:
        out.print(str(path), markup=False)
    err.print(f"validated against {result.validated_against}" if result.validated_against else
              "not validated: give --crds DIR with the operator's CRDs to check the objects first", markup=False)



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

    from tenantctl import engine, fleet_command, fleet_status, refresh_guard, tenant_data
    from tenantctl.db import DatabaseError
    from tenantctl.loader import TenantLoadError, require_tenants
    from tenantctl.rehearse_command import RehearseFailure, rehearsal_sources
    from tenantctl.stack_files import find_project_root
    from tenantctl.state_folder import UnsupportedBackend, rehearsal_records

    try:
        tenants = require_tenants(tenants_dir, allow_none=True)
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    url = checked_url(database_url, "--database-url", allow_unverified_tls, as_json)
    try:
        with contextlib.ExitStack() as stack:
            if rehearsal:
                spec_for, stacks, url = stack.enter_context(rehearsal_sources(tenants_dir, url, state_dir))
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



class VerifyFormat(StrEnum):
    text = "text"
    json = "json"
    prometheus = "prometheus"


@app.command()
def verify(
    slug: Annotated[str | None, typer.Argument(help="Tenant slug (or --all).")] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Every tenant file, one after the other.")] = False,
    tenants_dir: TenantsDir = Path("tenants"),
    stack: Annotated[str, typer.Option("--env", "--stack", help="Environment whose webhookBaseUrl is used.")] = "prod",
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="TENANT_DATABASE_URL",
                                 help="Provisioner URL, to read the tenant's signing secret.")
    ] = None,
    app_database_url: Annotated[
        str | None, typer.Option("--app-database-url", envvar="APP_DATABASE_URL",
                                 help="The application's role (default: app_user on --database-url's database).")
    ] = None,
    webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="Override the tenant's webhook URL.")] = None,
    fernet_key: Annotated[
        str | None, typer.Option("--fernet-key", envvar="TENANT_FERNET_KEY", help="Application Fernet key.")
    ] = None,
    checks: Annotated[str, typer.Option("--checks", help="Comma-separated: rls,webhook.")] = "rls,webhook",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (= --format json).")] = False,
    output: Annotated[VerifyFormat, typer.Option(
        "--format", help="text, json, or prometheus (tenant_probe_success per tenant and check).")] = VerifyFormat.text,
    pushgateway: Annotated[str | None, typer.Option(
        "--pushgateway", envvar="TENANT_PUSHGATEWAY_URL", help="Also push the probe series to this Pushgateway.")
    ] = None,
    secrets_dir: Annotated[Path | None, typer.Option(
        "--secrets-dir", envvar="TENANT_SECRETS_DIR",
        help="A folder of secret files (database-url, app-database-url, fernet-key), such as a mounted Secret: "
             "each fills the option not given.")] = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
    rehearsal: Annotated[bool, typer.Option(
        "--rehearsal", help="The rehearsal environment: its database, Fernet key and receiver.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")] = None,
) -> None:
    """Run the post-deploy checks (signed webhook probe, RLS isolation) for one tenant or all; exit 1 on a failure."""
    from tenantctl import secret_files

    output = VerifyFormat.json if as_json else output
    as_json = output is VerifyFormat.json
    try:
        database_url = database_url or secret_files.read_secret(secrets_dir, secret_files.DATABASE_URL)
        app_database_url = app_database_url or secret_files.read_secret(secrets_dir, secret_files.APP_DATABASE_URL)
        fernet_key = fernet_key or secret_files.read_secret(secrets_dir, secret_files.FERNET_KEY)
    except secret_files.SecretFileError as exc:
        raise fail(str(exc), as_json=as_json) from None
    if (slug is None) == (not all_tenants):
        raise fail("give a tenant slug or --all (not both)", as_json=as_json)
    from tenantctl.loader import TenantLoadError, require_tenants

    try:
        registry = require_tenants(tenants_dir)
    except TenantLoadError as exc:
        raise fail(f"{len(exc.problems)} error(s) in tenant files", as_json=as_json,
                   details=[str(p) for p in exc.problems]) from None
    if all_tenants:
        tenants = registry
        if webhook_url is not None:
            raise fail("--webhook-url names one tenant's endpoint: not with --all", as_json=as_json)
    else:
        tenant = _tenant_for(slug, tenants_dir)
        if tenant is None:
            raise fail(f"no tenant file {tenants_dir / (slug + '.yaml')}", as_json=as_json)
        tenants = [tenant]
    selected = [c.strip() for c in checks.split(",") if c.strip()]
    database_url = checked_url(database_url, "--database-url", allow_unverified_tls, as_json)
    app_database_url = checked_url(app_database_url, "--app-database-url", allow_unverified_tls, as_json)
    if rehearsal:
        from tenantctl import engine
        from tenantctl.rehearsal_endpoints import running_endpoints
        from tenantctl.rehearse_command import RehearseFailure

        say = (lambda _line: None) if as_json else (lambda line: err.print(line, markup=False))
        try:
            with running_endpoints(tenants_dir, database_url, app_database_url, state_dir, say) as ends:
                _verify_tenants(tenants, registry, selected, ends.database_url, ends.app_database_url,
                                ends.fernet_key, ends.webhook_base_url, webhook_url, all_tenants, output, pushgateway)
        except (engine.EngineError, RehearseFailure) as exc:
            raise fail(str(exc), as_json=as_json) from None
        return
    if app_database_url is None and database_url:
        from psycopg.conninfo import conninfo_to_dict

        from tenantctl.db import with_user

        if conninfo_to_dict(database_url).get("password"):
            # The provisioner's password is not app_user's: a derived URL would fail to log in (a false P0).
            raise fail("app_user has its own password: give --app-database-url (or APP_DATABASE_URL)",
                       as_json=as_json)
        app_database_url = with_user(database_url, "app_user")
    if "rls" in selected and not app_database_url:
        raise fail("the rls check needs --app-database-url (or --database-url)", as_json=as_json)
    base_url = None
    if "webhook" in selected:
        if not (database_url and fernet_key):
            raise fail("the webhook check needs --database-url and --fernet-key to read the signing secret",
                       as_json=as_json)
        if webhook_url is None:
            base_url, _shared = _stack_settings(tenants_dir, stack)
    _verify_tenants(tenants, registry, selected, database_url, app_database_url, fernet_key, base_url, webhook_url,
                    all_tenants, output, pushgateway)


def _verify_tenants(tenants, registry, selected: list[str], database_url: str | None, app_database_url: str | None,
                    fernet_key: str | None, base_url: str | None, webhook_url: str | None, all_tenants: bool,
                    output: VerifyFormat, pushgateway: str | None) -> None:
    from tenantctl import probe_metrics
    from tenantctl.verification import VerifyError, VerifyTarget, verify_tenant

    as_json = output is VerifyFormat.json
    # Other tenants of the registry are probed as real peers: isolation must hold against them, not just a made-up one.
    target = VerifyTarget(selected, database_url, app_database_url, fernet_key, base_url, webhook_url,
                          [t.tenant_id for t in registry])
    outcomes = []
    for tenant in tenants:
        try:
            outcomes.append(verify_tenant(tenant, target))
        except VerifyError as exc:
            if not all_tenants:
                raise fail(str(exc), as_json=as_json) from None
            outcomes.append(probe_metrics.setup_failure(tenant, str(exc)))
    if output is VerifyFormat.prometheus or pushgateway:
        exposition = probe_metrics.registry_for(outcomes)
        if pushgateway:
            try:
                probe_metrics.push(pushgateway, exposition)
            except probe_metrics.PushError as exc:
                raise fail(str(exc), as_json=as_json) from None
    if output is VerifyFormat.prometheus:
        sys.stdout.write(probe_metrics.exposition_text(exposition))
    elif as_json:
        reports = [{"slug": o.tenant.slug, "seconds": round(o.seconds, 3), **o.report.as_dict()} for o in outcomes]
        emit_json(reports[0] if not all_tenants else {"ok": all(o.report.ok for o in outcomes), "tenants": reports})
    else:
        for outcome in outcomes:
            out.print(outcome.report.render(f"tenant {outcome.tenant.slug}"), markup=False)
    if not all(o.report.ok for o in outcomes):
        raise typer.Exit(1)


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
        "--stop", help="Stop the services the state folder keeps running (the AWS emulator); change nothing else.")
    ] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Run `pulumi preview` instead; change nothing.")] = False,
    only: Only = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where the rehearsal keeps its state (default .rehearsal/).")
    ] = None,
    allow_unverified_tls: AllowUnverifiedTls = False,
) -> None:
    """A real `pulumi up` (or preview, or destroy) of every tenant on a local backend, against local services."""
    from tenantctl.rehearse_command import REHEARSAL_DIR, RehearseFailure, run_rehearse, stop_services

    if sum((preview, destroy_all, stop)) > 1:
        raise fail("choose one of --preview, --destroy and --stop", as_json=as_json)
    if stop:
        from tenantctl.stack_files import find_project_root

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
                              state_base=state_dir, preview=preview, only=set(only) if only else None)
    except RehearseFailure as exc:
        raise fail(str(exc), as_json=as_json, details=exc.details) from None
    if as_json:
        emit_json(result.as_dict())
    else:
        from tenantctl.rehearse_command import summary_table

        out.print(summary_table(result))
    if not result.ok:
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="tenantctl")
