"""The layout keeps its direction: the domain imports nothing of ours, the Pulumi side only the domain and the
checks, and nothing imports the CLI. Every import counts, including those inside functions (dynamic providers
import inside their methods)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# package -> the packages of ours it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "tenancy": {"tenancy"},
    "checks": {"checks", "tenancy"},
    "components": {"components", "checks", "tenancy"},
    "program": {"program", "components", "checks", "tenancy"},
    "policy": {"policy", "tenant_policies"},
    "services": {"services", "checks", "tenancy"},
    "fleet": {"fleet", "services", "program", "components", "checks", "tenancy"},
    "tenantctl": {"tenantctl", "fleet", "services", "program", "components", "checks", "tenancy"},
    "__main__": {"program", "components"},
}


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def import_violations(root: Path) -> list[str]:
    ours = set(ALLOWED) | {"tests", "bench"}
    found = []
    for package in ALLOWED:
        files = [root / "__main__.py"] if package == "__main__" else sorted((root / package).rglob("*.py"))
        for path in files:
            imported = _imported(ast.parse(path.read_text(), filename=str(path))) & ours
            for name in sorted(imported - ALLOWED[package]):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def test_every_package_imports_only_what_the_layout_allows():
    assert import_violations(ROOT) == []


def test_every_top_level_package_has_a_place_in_the_layout():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED with its direction"


def test_a_domain_module_that_imports_the_fleet_is_reported(tmp_path):
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "__main__.py").write_text("from program import tenant\n")
    (tmp_path / "tenancy" / "model.py").write_text("def f():\n    from fleet import engine\n")
    (tmp_path / "components" / "row.py").write_text("import tenantctl.cli\n")
    assert import_violations(tmp_path) == ["tenancy/model.py imports fleet", "components/row.py imports tenantctl"]
