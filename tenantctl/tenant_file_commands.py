"""`tenantctl validate|new|schema|plan`: tenant files, checked, written, described and planned under the mock
runtime; no stack is touched."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from tenancy.loader import load_tenants
from tenancy.model import SLUG_PATTERN, Tier, tenant_json_schema
from tenantctl.app import (
    Env,
    Format,
    TenantsDir,
    app,
    emit_json,
    err,
    fail,
    out,
)


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
    from fleet.stack_files import find_project_root, missing_secret_problems

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
        from tenancy.identity_changes import GitRefError, identity_changes

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

    from tenancy.scaffold import ScaffoldError, new_tenant_file, next_steps

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
    from fleet.mock_runtime import ProgramError
    from fleet.plan import PlanError, build_plan, write_manifests
    from fleet.plan import changed_since as find_changes
    from fleet.plan_diff import removed_tenant_counts, tenant_changes
    from fleet.stack_files import find_project_root
    from tenancy.identity_changes import GitRefError
    from tenancy.loader import TenantLoadError, require_tenants
    from tenantctl.plan_render import render_tree

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

