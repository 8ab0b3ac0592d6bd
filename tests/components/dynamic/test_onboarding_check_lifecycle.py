"""OnboardingCheck, run by Pulumi's provider host, through a tenant's lifecycle: after a finished rotation the old
secret must be refused, and a suspended premium tenant's quota must allow no pod."""

from __future__ import annotations

import pytest

from tenancy import credentials
from tests.components.dynamic.provider_host import ProviderHostError
from tests.components.dynamic.test_onboarding_check import URN, onboarded, props  # noqa: F401 (fixture)


def _rotate_row_to(app_db, tenant_id, secret: str, keep_old_as_next: str | None = None) -> None:
    app_db.execute(
        "UPDATE tenant_configs SET webhook_signing_secret_encrypted = %s, webhook_next_signing_secret_encrypted = %s"
        " WHERE tenant_id = %s",
        (credentials.encrypt(app_db.fernet_key, secret),
         credentials.encrypt(app_db.fernet_key, keep_old_as_next) if keep_old_as_next else None, tenant_id))


def test_after_a_finished_rotation_the_retired_secret_is_probed_and_refused(host, onboarded):  # noqa: F811
    app_db, tenant, receiver = onboarded
    news = props(app_db, tenant, receiver)
    _id, outs = host.create(URN, news)
    new = "new-" + tenant.signing_secret
    _rotate_row_to(app_db, tenant.tenant_id, new)

    outs = host.update(URN, _id, outs, {**news, "signing_secret": new, "row_revision": "r2"})

    assert outs["report"]["checks"]["webhook_retired_secret_refused"]["ok"] is True
    assert "retired_signing_secrets" not in outs and tenant.signing_secret not in str(outs["report"])


def test_an_application_still_accepting_the_retired_secret_fails_up(host, onboarded):  # noqa: F811
    app_db, tenant, receiver = onboarded
    news = props(app_db, tenant, receiver)
    _id, outs = host.create(URN, news)
    new = "new-" + tenant.signing_secret
    _rotate_row_to(app_db, tenant.tenant_id, new, keep_old_as_next=tenant.signing_secret)  # never retired

    with pytest.raises(ProviderHostError) as info:
        host.update(URN, _id, outs, {**news, "signing_secret": new, "row_revision": "r2"})

    assert "FAIL  webhook_retired_secret_refused" in info.value.message
    assert tenant.signing_secret not in info.value.message


def test_a_suspended_tenant_passes_with_a_quota_of_no_pod_and_fails_with_one_that_admits_pods(host, onboarded):  # noqa: F811
    app_db, tenant, receiver = onboarded
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (tenant.tenant_id,))
    news = props(app_db, tenant, receiver, suspended=True, quota_pods="0")

    _id, outs = host.create(URN, news)

    checks = outs["report"]["checks"]
    assert checks["webhook_suspended_refused"]["ok"] and checks["kubernetes_suspended_no_pod"]["ok"]
    with pytest.raises(ProviderHostError) as info:
        host.create(URN, {**news, "quota_pods": "20"})
    assert "FAIL  kubernetes_suspended_no_pod" in info.value.message and "allows 20 pods" in info.value.message
