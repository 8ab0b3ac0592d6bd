"""`tenantctl status`'s STATE: the tenant file's state and a signing-secret rotation under way."""

from __future__ import annotations

from datetime import UTC, datetime

from ruamel.yaml import YAML

from fleet.status import lifecycle_state
from tenancy.model import Tenant
from tests.tenant_text import tenant_yaml

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _tenant(**changes) -> Tenant:
    data = YAML(typ="safe").load(tenant_yaml("acme"))
    data.update(changes)
    return Tenant.model_validate(data)


def test_state_shows_active_suspended_and_a_rotation():
    rotation = {"signing_secret_version": 1, "rotation": {"next_version": 2, "overlap_until": "2026-12-11T00:00:00Z"}}
    overdue = {"signing_secret_version": 1, "rotation": {"next_version": 2, "overlap_until": "2026-12-01T00:00:00Z"}}

    assert lifecycle_state(_tenant(), NOW) == "active"
    assert lifecycle_state(_tenant(state="suspended"), NOW) == "suspended"
    assert lifecycle_state(_tenant(webhook=rotation), NOW) == "active, rotating to v2"
    assert lifecycle_state(_tenant(state="suspended", webhook=overdue), NOW) == "suspended, rotation to v2 overdue"
