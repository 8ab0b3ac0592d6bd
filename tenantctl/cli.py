"""Command-line entry point. Each command is a thin layer over a function the Pulumi program also uses."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tenantctl.loader import load_tenants
from tenantctl.model import SLUG_PATTERN, Tier, tenant_json_schema

app = typer.Typer(
    help="Tenant onboarding as code: validate, plan, verify and rehearse MSP client onboarding.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

TenantsDir = Annotated[Path, typer.Option("--tenants-dir", help="Directory of tenant files.")]
Stack = Annotated[str | None, typer.Option("--stack", help="Pulumi stack name (reads Pulumi.<stack>.yaml).")]


class Format(StrEnum):
    text = "text"
    json = "json"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True)
    return typer.Exit(code)


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Tenant files (default: all in --tenants-dir).")] = None,
    tenants_dir: TenantsDir = Path("tenants"),
    stack: Stack = None,
    output: Annotated[Format, typer.Option("--format", help="text or json")] = Format.text,
) -> None:
    """Check tenant files, each alone and all together; report every error as file:line: field: message."""
    from tenantctl.stack_files import StackFileError, find_project_root, missing_secret_problems, read_stack_file

    missing = [p for p in paths or [] if not p.is_file()]
    if missing:
        raise fail(", ".join(f"{p}: no such file" for p in missing))
    result = load_tenants(paths=paths, tenants_dir=tenants_dir)
    problems = list(result.problems)
    if stack:
        root = find_project_root((paths[0].parent if paths else tenants_dir).resolve().parent)
        try:
            stack_file = read_stack_file(root, stack)
        except StackFileError as exc:
            raise fail(str(exc)) from None
        problems += missing_secret_problems(
            stack_file, [(t.path, str(t.path), t.tenant) for t in result.tenants]
        )
    problems.sort()
    if output is Format.json:
        out.print_json(json.dumps({
            "ok": not problems,
            "files": result.files_checked,
            "tenants": [t.tenant.slug for t in result.tenants],
            "errors": [p.as_dict() for p in problems],
        }))
    else:
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
        str, typer.Option("--servicedesk-url", help="https URL of the client's ServiceDesk Plus.")
    ] = "https://servicedesk.example.com",
    admin_email: Annotated[str, typer.Option("--admin-email", help="Client admin contact.")] = "admin@example.com",
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
    if write:
        (tenants_dir / "schema.json").write_text(text, encoding="utf-8")
        out.print(f"Wrote {tenants_dir / 'schema.json'}", markup=False)
    else:
        sys.stdout.write(text)


@app.command()
def plan(
    tenants_dir: TenantsDir = Path("tenants"),
    stack: Annotated[str, typer.Option("--stack", help="Stack whose plain config is used.")] = "dev",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write each tenant's Kubernetes objects here.")] = None,
    changed_since: Annotated[
        str | None, typer.Option("--changed-since", help="Only tenants whose files changed since this git ref.")
    ] = None,
    targets: Annotated[
        bool, typer.Option("--targets", help="With --changed-since: print only the --target URNs for pulumi.")
    ] = False,
) -> None:
    """Show what each tenant gets by running the real program under Pulumi's mock runtime (no cloud needed)."""
    from tenantctl.loader import TenantLoadError
    from tenantctl.mock_runtime import ProgramError
    from tenantctl.plan import PlanError, build_plan, target_urns, write_manifests
    from tenantctl.plan import changed_since as find_changes
    from tenantctl.plan_render import render_tree
    from tenantctl.stack_files import find_project_root

    root = find_project_root(tenants_dir.resolve().parent)
    only = None
    if changed_since:
        try:
            changes = find_changes(root, tenants_dir, changed_since)
        except PlanError as exc:
            raise fail(str(exc)) from None
        if targets:
            for urn in target_urns(stack, changes):
                out.print(urn, markup=False)
            return
        only = None if changes.program_changed else changes.slugs
    elif targets:
        raise fail("--targets needs --changed-since")
    try:
        result = build_plan(root, tenants_dir, stack, only)
    except TenantLoadError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        raise fail(f"{len(exc.problems)} error(s) in tenant files") from None
    except ProgramError as exc:
        raise fail(str(exc)) from None
    if out_dir is not None:
        for path in write_manifests(result, out_dir):
            err.print(f"wrote {path}", markup=False)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        if not result.tenants:
            out.print("No tenant changes.", markup=False)
        for tree in render_tree(result):
            out.print(tree)


def main() -> None:
    app(prog_name="tenantctl")
