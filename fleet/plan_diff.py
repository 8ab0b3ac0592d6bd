"""What a pull request changes, tenant by tenant: added, changed (field by field) and removed tenants.

Old tenant files come from git at the base ref; both sides are compared as parsed models, so a
reformatted file is no change and a field left at its default equals the default written out.
Resource counts come from the mock runtime's run of the program (`tenantctl plan`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from fleet.tier_change import planned
from tenancy.identity_changes import tenants_at
from tenancy.lifecycle import lifecycle_effects
from tenancy.model import Tenant


@dataclass
class TenantChange:
    kind: str  # added | changed | removed
    slug: str
    tenant_id: str
    tier: str
    resources: int
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)  # (path, old, new)
    # What the next `up` does beyond the fields: a lifecycle change (tenancy.lifecycle), a tier change
    # (fleet.tier_change.planned).
    effects: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "slug": self.slug, "tenant_id": self.tenant_id, "tier": self.tier,
                "resources": self.resources,
                "fields": [{"field": path, "old": old, "new": new} for path, old, new in self.fields],
                "effects": list(self.effects)}

    def render(self) -> list[str]:
        mark = {"added": "+", "changed": "~", "removed": "-"}[self.kind]
        lines = [f"{mark} {self.kind:<7} {self.slug} ({self.tier}, {self.resources} resources)"]
        lines += [f"      {path}: {_shown(old)} -> {_shown(new)}" for path, old, new in self.fields]
        lines += [f"      => {effect}" for effect in self.effects]
        return lines


def _shown(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


def field_changes(old: Tenant, new: Tenant) -> list[tuple[str, Any, Any]]:
    before, after = _flatten(old.model_dump(mode="json")), _flatten(new.model_dump(mode="json"))
    return [(path, before.get(path), after.get(path)) for path in sorted(set(before) | set(after))
            if before.get(path) != after.get(path)]


def tenant_changes(project_root: Path, tenants_dir: Path, ref: str, current: list[Tenant],
                   resource_counts: dict[str, int], count_resources) -> list[TenantChange]:
    """Every tenant added, changed or removed since `ref`, sorted by slug.

    `count_resources(tenants)` plans the given (removed) tenants and returns their resource counts by slug.
    """
    before = {str(t.tenant_id): t for t in tenants_at(project_root, tenants_dir, ref).values()}
    after = {str(t.tenant_id): t for t in current}
    changes = []
    for tenant_id in sorted(set(before) | set(after)):
        old, new = before.get(tenant_id), after.get(tenant_id)
        if old is None:
            changes.append(TenantChange("added", new.slug, tenant_id, new.tier.value, resource_counts.get(new.slug, 0),
                                        effects=lifecycle_effects(None, new)))
        elif new is not None and (fields := field_changes(old, new)):
            notes = [note for note in [planned(old, new)] if note]
            changes.append(TenantChange("changed", new.slug, tenant_id, new.tier.value,
                                        resource_counts.get(new.slug, 0), fields,
                                        [*lifecycle_effects(old, new), *notes]))
    removed = [before[t] for t in sorted(set(before) - set(after))]
    if removed:
        counts = count_resources(removed)
        changes += [TenantChange("removed", t.slug, str(t.tenant_id), t.tier.value, counts.get(t.slug, 0))
                    for t in removed]
    return sorted(changes, key=lambda c: (c.slug, c.kind))


def write_tenant_files(tenants: list[Tenant], directory: Path) -> None:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    for tenant in tenants:
        with (directory / f"{tenant.slug}.yaml").open("w", encoding="utf-8") as handle:
            yaml.dump(tenant.model_dump(mode="json"), handle)


def removed_tenant_counts(project_root: Path, stack: str):
    """`count_resources` for `tenant_changes`: a plan of just those tenants, from their files at the ref."""
    from fleet.plan import build_plan

    def count(tenants: list[Tenant]) -> dict[str, int]:
        with tempfile.TemporaryDirectory(prefix="plan-removed-") as folder:
            write_tenant_files(tenants, Path(folder))
            plan = build_plan(project_root, Path(folder), stack)
        return {t.slug: len(t.resources) for t in plan.tenants}

    return count
