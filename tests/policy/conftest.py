"""Fixtures of the policy-pack tests: the resources of one mocked run of the real program, and an
analyzer set up the way `policy/__main__.py` sets it up."""

from __future__ import annotations

import copy

import pulumi.runtime.config
import pulumi_policy.policy as servicer_module
import pytest

from fleet.mock_runtime import RegisteredResource
from fleet.plan import build_plan
from policy import tenant_policies
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def recorded_run() -> list[RegisteredResource]:
    return build_plan(ROOT, ROOT / "tenants", "dev").run.resources


@pytest.fixture
def resources(recorded_run) -> list[RegisteredResource]:
    """The recorded resources, safe to mutate."""
    return copy.deepcopy(recorded_run)


@pytest.fixture(autouse=True)
def analyzer_as_the_pack_runs_it(monkeypatch):
    """Secrets visible to validations, as after `analyze_with_secrets()`; restored after each test."""
    monkeypatch.setattr(servicer_module, "deserialize_properties", servicer_module.deserialize_properties)
    tenant_policies.analyze_with_secrets()


@pytest.fixture
def stock_analyzer(monkeypatch):
    """pulumi-policy's analyzer untouched: validations get secrets already unwrapped."""
    from pulumi_policy.deserialize import deserialize_properties

    monkeypatch.setattr(servicer_module, "deserialize_properties", deserialize_properties)


@pytest.fixture(autouse=True)
def no_stack_config(monkeypatch):
    """No `tenant-onboarding:sharedNamespace` from the stack unless a test sets one (see `stack_config`)."""
    monkeypatch.delitem(pulumi.runtime.config.CONFIG.get(), tenant_policies.SHARED_NAMESPACE_STACK_KEY, raising=False)
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    env_key = pulumi.runtime.config.get_config_env_key(tenant_policies.SHARED_NAMESPACE_STACK_KEY)
    monkeypatch.delenv(env_key, raising=False)


@pytest.fixture
def stack_config(monkeypatch):
    def set_config(key: str, value: str) -> None:
        monkeypatch.setitem(pulumi.runtime.config.CONFIG.get(), key, value)

    return set_config
