"""A mocked run of the real program over the example tenants, shared by the component tests."""

from __future__ import annotations

import pytest

from fleet.plan import PLACEHOLDER_SECRET, build_plan


@pytest.fixture(scope="module")
def example_plan(request):
    from tests.conftest import ROOT

    return build_plan(ROOT, ROOT / "tenants", "dev")


@pytest.fixture(scope="module")
def plans_by_slug(example_plan):
    return {tenant.slug: tenant for tenant in example_plan.tenants}


__all__ = ["PLACEHOLDER_SECRET"]
