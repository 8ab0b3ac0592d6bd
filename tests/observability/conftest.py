"""The tenants these tests render rules and dashboards for: the repository's own, and a small generated fleet
with every `observability` override, so both tiers, defaults and overrides are covered."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tenancy.loader import require_tenants
from tenancy.model import Tenant
from tests.conftest import EXAMPLE_TENANTS, ROOT
from tests.tenant_text import tenant_yaml

FLEET_NAMESPACE = uuid.UUID("3b0e8f0a-6c1d-4e55-9a43-0f4c1e2d7a90")
# slug -> (tier, observability section of its file, or "")
GENERATED = {
    "fleet-premium": ("premium", ""),
    "fleet-basic": ("basic", ""),
    "fleet-premium-tuned": ("premium", "observability:\n  slo_objective: 0.9995\n  silent_after_hours: 2\n"
                                       "  enhancement_p95_seconds: 30\n  queue_age_seconds: 120\n"),
    "fleet-basic-silent": ("basic", "observability:\n  slo_objective: 0.95\n  silent_after_hours: 1\n"),
}


def write_fleet(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for path in EXAMPLE_TENANTS:
        shutil.copy(path, directory / path.name)
    for slug, (tier, extra) in GENERATED.items():
        tenant_id = uuid.uuid5(FLEET_NAMESPACE, slug)
        (directory / f"{slug}.yaml").write_text(tenant_yaml(slug, tier=tier, tenant_id=str(tenant_id), extra=extra))
    return directory


@pytest.fixture(scope="session")
def fleet_dir(tmp_path_factory) -> Path:
    return write_fleet(tmp_path_factory.mktemp("fleet") / "tenants")


@pytest.fixture(scope="session")
def fleet(fleet_dir) -> list[Tenant]:
    return require_tenants(fleet_dir)


@pytest.fixture(scope="session")
def repo_tenants() -> list[Tenant]:
    return require_tenants(ROOT / "tenants")
