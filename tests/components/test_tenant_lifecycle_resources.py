"""TenantStack through a tenant's lifecycle, under the mock runtime: what suspension and a signing-secret rotation
declare (and what they leave alone)."""

from __future__ import annotations

import shutil

import pytest

from fleet.plan import build_plan
from tests.conftest import ROOT

GENERATED_TYPE = "random:index/randomPassword:RandomPassword"


@pytest.fixture(scope="module")
def lifecycle_plan(tmp_path_factory):
    """acme suspended during a rotation's overlap, globex with a rotation whose overlap has ended."""
    tenants = tmp_path_factory.mktemp("lifecycle") / "tenants"
    shutil.copytree(ROOT / "tenants", tenants)
    acme = tenants / "acme.yaml"
    acme.write_text(acme.read_text().replace("tier: premium\n", "tier: premium\nstate: suspended\n").replace(
        "  signing_secret_version: 1  # rotate with `tenantctl rotate-signing-secret` (a hand bump drops webhooks)\n",
        "  signing_secret_version: 1\n  rotation: {next_version: 2, overlap_until: '2999-01-01T00:00:00Z'}\n"))
    globex = tenants / "globex.yaml"
    text = globex.read_text()
    assert "signing_secret_version: 1" in text
    globex.write_text(text.replace("signing_secret_version: 1",
                                   "signing_secret_version: 1\n  rotation: {next_version: 2, overlap_until: "
                                   "'2001-01-01T00:00:00Z'}", 1))
    return {tenant.slug: tenant for tenant in build_plan(ROOT, tenants, "dev").tenants}


def _of(tenant, suffix):
    return [r for r in tenant.resources if r.type.endswith(suffix)]


def test_an_overlap_declares_both_secret_versions_each_keyed_by_its_version(lifecycle_plan):
    passwords = {r.name: r.inputs["keepers"] for r in _of(lifecycle_plan["acme"], GENERATED_TYPE)}
    assert passwords == {"acme-webhook-signing-secret-v1": {"signing_secret_version": "1"},
                         "acme-webhook-signing-secret-v2": {"signing_secret_version": "2"}}


def test_an_overlap_puts_the_next_secret_beside_the_current_one_in_the_row_and_the_secrets(lifecycle_plan):
    acme = lifecycle_plan["acme"]
    [row] = _of(acme, "TenantConfigRow")
    [k8s_secret] = [r for r in _of(acme, "core/v1:Secret")]
    assert row.inputs["webhook_next_signing_secret"] and row.inputs["suspended"] is True
    assert set(k8s_secret.inputs["stringData"].value) >= {"WEBHOOK_SECRET", "WEBHOOK_SECRET_NEXT"}


def test_a_passed_overlap_keeps_only_the_next_version(lifecycle_plan):
    globex = lifecycle_plan["globex"]
    assert [r.name for r in _of(globex, GENERATED_TYPE)] == ["globex-webhook-signing-secret-v2"]
    [row] = _of(globex, "TenantConfigRow")
    assert row.inputs.get("webhook_next_signing_secret") is None and row.inputs["suspended"] is False


def test_a_suspended_premium_namespace_admits_no_pod_and_keeps_everything_else(lifecycle_plan, plans_by_slug):
    acme, active = lifecycle_plan["acme"], plans_by_slug["acme"]
    [quota] = _of(acme, "ResourceQuota")
    assert quota.inputs["spec"]["hard"]["pods"] == "0"
    assert quota.inputs["spec"]["hard"]["requests.cpu"] == "2"
    suspended_types = sorted(r.type for r in acme.resources if not r.type.endswith("RandomPassword"))
    assert suspended_types == sorted(r.type for r in active.resources if not r.type.endswith("RandomPassword"))
    [check] = _of(acme, "OnboardingCheck")
    assert check.inputs["suspended"] is True
