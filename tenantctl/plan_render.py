"""Text rendering of a plan: one rich Tree per tenant."""

from __future__ import annotations

from rich.tree import Tree

from fleet.mock_runtime import masked

SUMMARY_KEYS = ("name", "metadata", "description", "kmsKeyId", "enableKeyRotation", "deletionWindowInDays",
                "recoveryWindowInDays", "length", "keepers", "tenant_id", "webhook_url")


def _summary(inputs: dict) -> str:
    shown = masked(inputs)
    parts = []
    for key in SUMMARY_KEYS:
        if key not in shown:
            continue
        value = shown[key]
        if key == "metadata" and isinstance(value, dict):
            value = "/".join(str(v) for v in (value.get("namespace"), value.get("name")) if v)
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def render_tree(plan) -> list[Tree]:
    trees = []
    for tenant in plan.tenants:
        tree = Tree(f"[bold]{tenant.slug}[/] ({tenant.tier}, tenant_id {tenant.tenant_id})")
        for resource in tenant.resources:
            summary = _summary(resource.inputs)
            tree.add(f"[cyan]{resource.type}[/] {resource.name}" + (f"  [dim]{summary}[/]" if summary else ""))
        trees.append(tree)
    return trees
