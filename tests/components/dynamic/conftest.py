"""A real dynamic provider host (`python -m pulumi.dynamic`, started in the project root) per module."""

from __future__ import annotations

import pytest

from tests.components.dynamic.provider_host import DynamicProviderHost


@pytest.fixture(scope="module")
def host():
    from tests.conftest import ROOT

    with DynamicProviderHost(ROOT) as running:
        yield running
