"""The typer app every command registers with, the options and output they share, and `fail`: one
error line, redacted, with --debug its traceback."""

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

from tenancy.redaction import redact
from tenantctl.cli_guard import GuardedGroup, print_traceback

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


TenantsDir = Annotated[Path, typer.Option("--tenants-dir", help="Directory of tenant files.")]

Env = Annotated[str | None, typer.Option("--env", "--stack",
                                         help="Environment: checks each tenant's stacks/Pulumi.<env>.<slug>.yaml.")]


AllowUnverifiedTls = Annotated[
    bool, typer.Option("--allow-unverified-tls",
                       help="Accept database URLs to other hosts without sslmode=verify-full/verify-ca.")
]


def checked_url(url: str | None, what: str, allow_unverified: bool, as_json: bool = False) -> str | None:
    """A database URL from a flag, parsed once here; a bad one ends the command with a message, no password."""
    from tenancy.database_url import DatabaseUrlError, parse_database_url

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
    """The project backend's record store (fleet.state_folder); UnsupportedBackend for other backends."""
    from fleet.stack_files import find_project_root
    from fleet.state_folder import project_store

    return project_store(find_project_root(tenants_dir.resolve().parent))


@contextlib.contextmanager
def environment_locked(env: str, tenants_dir: Path, operation: str, wait: bool, wait_timeout: float,
                        as_json: bool = False) -> Iterator[None]:
    """Hold the environment lock (rule 5) around a run that changes the environment; a held one ends it."""
    from fleet import environment_lock
    from fleet.state_folder import UnsupportedBackend

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


def report_lock(env: str, tenants_dir: Path) -> None:
    """A read-only command only reports a held lock (rule 2): it neither waits for it nor clears it."""
    from fleet import environment_lock
    from fleet.state_folder import UnsupportedBackend

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
    The message is one line, and it and every detail pass the one redaction (tenancy.redaction); with --debug
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


def tenant_for(slug: str, tenants_dir: Path):
    from tenancy.loader import parse_tenant_file

    path = tenants_dir / f"{slug}.yaml"
    if not path.is_file():
        return None
    tenant, problems = parse_tenant_file(path)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False)
        raise fail(f"{path} is invalid; fix it first (tenantctl validate)")
    return tenant


EnvName = Annotated[str, typer.Option("--env", help="Environment: platform stack <env>, tenant stacks <env>.<slug>.")]

Only = Annotated[list[str] | None, typer.Option("--only", help="Only this tenant's stack (repeatable).")]

# The rehearsal as an environment (fleet rule 1): the options every command that acts on one takes.
Rehearsal = Annotated[bool, typer.Option(
    "--rehearsal", help="The rehearsal environment instead: its local backend and services.")]

StateDir = Annotated[Path | None, typer.Option("--state-dir", help="With --rehearsal: its state folder.")]

RehearsalDatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", help="With --rehearsal: the database it rehearses on (it picks the state folder).")]

