"""Which tenants a git range removed: a tenant_id in some file at the base ref and in no file at HEAD.

This is the only way a missing file becomes a deletion (fleet rule 3). The file must be gone from the
commit at HEAD, not merely from the working tree, so a partial or sparse checkout removes nothing; and
the tenant_id must be gone from every file, so a rename (same tenant_id, new slug) is not a removal.
"""

from __future__ import annotations

from pathlib import Path

from tenancy.identity_changes import tenants_at
from tenancy.model import Tenant


def removed_since(project_root: Path, tenants_dir: Path, ref: str, current: list[Tenant]) -> dict[str, str]:
    """tenant_id -> its slug at `ref`, for each tenant the range removed. GitRefError when the folder or ref
    is not in git (another tenants folder, an unknown ref): nothing can be proven removed there."""
    before = tenants_at(project_root, tenants_dir, ref)
    head = tenants_at(project_root, tenants_dir, "HEAD")
    present = {str(t.tenant_id) for t in head.values()} | {str(t.tenant_id) for t in current}
    return {str(t.tenant_id): t.slug for t in before.values() if str(t.tenant_id) not in present}
