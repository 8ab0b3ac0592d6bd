"""Shared fixtures: the repository root, and a scratch tenants directory seeded with valid files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.pgfixtures"]

EXAMPLE_TENANTS = sorted((ROOT / "tenants").glob("*.yaml"))


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def tenants_dir(tmp_path: Path) -> Path:
    """A copy of the example tenant files, safe to edit."""
    target = tmp_path / "tenants"
    target.mkdir()
    for path in EXAMPLE_TENANTS:
        shutil.copy(path, target / path.name)
    return target
