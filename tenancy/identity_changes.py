"""What a change does to tenant identities since a git ref: renames to report, id changes to refuse.

A tenant is its `tenant_id` (RLS key, webhook URL, history); the slug is only its name. So a file
whose `tenant_id` changed is an error (that would be a different tenant in an old one's place), and
a tenant whose slug changed is a rename, which must list the old slug in `previous_slugs` so Pulumi
moves its resources (aliases) instead of recreating them with a new signing secret.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tenancy.loader import LoadResult, Problem, line_of_key, parse_tenant_bytes
from tenancy.model import Tenant


class GitRefError(Exception):
    pass


@dataclass
class IdentityChanges:
    renames: list[tuple[str, str]] = field(default_factory=list)  # (old slug, new slug)
    problems: list[Problem] = field(default_factory=list)


def _git(project_root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=project_root, capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError as exc:
        raise GitRefError(f"git {args[0]} failed: {exc.stderr.strip() or exc}") from None
    except FileNotFoundError:
        raise GitRefError("git is not installed; --changed-since needs it") from None


def tenants_at(project_root: Path, tenants_dir: Path, ref: str) -> dict[str, Tenant]:
    """The valid tenant files at `ref`, by file path relative to the project root."""
    try:
        relative = tenants_dir.resolve().relative_to(project_root.resolve()).as_posix()
    except ValueError:
        raise GitRefError(f"{tenants_dir} is not inside the git work tree at {project_root}") from None
    _git(project_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    listed = _git(project_root, "ls-tree", "--name-only", f"{ref}:{relative}" if relative != "." else ref)
    tenants = {}
    for name in listed.splitlines():
        if not name.endswith((".yaml", ".yml")) or name == "schema.json":
            continue
        path = f"{relative}/{name}" if relative != "." else name
        raw = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=project_root, capture_output=True).stdout
        tenant, problems = parse_tenant_bytes(raw, path, expected_slug=Path(name).stem)
        if tenant is not None and not problems:
            tenants[path] = tenant
    return tenants


def identity_changes(project_root: Path, tenants_dir: Path, ref: str, current: LoadResult) -> IdentityChanges:
    """Compare the current tenant files with those at `ref`."""
    before = tenants_at(project_root, tenants_dir, ref)
    by_id_before = {str(t.tenant_id): t for t in before.values()}
    changes = IdentityChanges()
    for loaded in current.tenants:
        tenant = loaded.tenant
        display = str(loaded.path)
        relative = loaded.path.resolve().relative_to(project_root.resolve()).as_posix()
        previous = before.get(relative)
        if previous is not None and previous.tenant_id != tenant.tenant_id:
            changes.problems.append(Problem(
                display, line_of_key(loaded.path, "tenant_id"), "tenant_id",
                f"changed since {ref} (was {previous.tenant_id}); a tenant's id never changes (RLS key, webhook URL, "
                "history): restore it, or onboard the new client in a new file",
            ))
            continue
        old = by_id_before.get(str(tenant.tenant_id))
        if old is not None and old.slug != tenant.slug:
            changes.renames.append((old.slug, tenant.slug))
            if old.slug not in tenant.previous_slugs:
                changes.problems.append(Problem(
                    display, line_of_key(loaded.path, "slug"), "previous_slugs",
                    f"tenant {tenant.tenant_id} was {old.slug!r} at {ref}: add `previous_slugs: [{old.slug}]` so its "
                    "resources and signing secret move to the new name instead of being recreated",
                ))
    return changes
