"""OnboardingCheck run by Pulumi's provider host: passes on a sound setup, fails `pulumi up` with a report otherwise."""

from __future__ import annotations

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.dynamic.onboarding_check import OnboardingCheckProvider
from services.receiver import WebhookReceiver
from tests.components.dynamic.provider_host import ProviderHostError

URN = "urn:pulumi:dev::tenant-onboarding::tenant-onboarding:index:TenantStack$pulumi-python:dynamic:Resource::t-check"
PROVIDER = serialize_provider(OnboardingCheckProvider())


@pytest.fixture
def onboarded(app_db):
    tenant = app_db.add_tenant()
    with WebhookReceiver(app_db.app_dsn, app_db.fernet_key) as receiver:
        yield app_db, tenant, receiver


def props(app_db, tenant, receiver, **overrides):
    values = {
        "__provider": PROVIDER,
        "tenant_id": str(tenant.tenant_id),
        "slug": "acme",
        "webhook_url": receiver.webhook_url(tenant.tenant_id),
        "signing_secret": tenant.signing_secret,
        "app_database_url": app_db.app_dsn,
        "row_revision": "r1",
        "nonce": "0",
        "checks": None,
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return values


def test_sound_setup_passes_and_records_report(host, onboarded):
    app_db, tenant, receiver = onboarded
    _id, outs = host.create(URN, props(app_db, tenant, receiver))
    assert outs["report"]["ok"] is True
    assert {"webhook_signed_probe_accepted", "webhook_unsigned_refused", "cross_tenant_isolation"} <= set(
        outs["report"]["checks"])
    assert receiver.accepted == 1 and receiver.rejected == 2
    assert tenant.signing_secret not in str(outs["report"])


def test_peers_are_probed_with_a_real_peer_secret_read_from_the_database(host, onboarded):
    app_db, tenant, receiver = onboarded
    peer = app_db.add_tenant(name="Peer Corp")
    news = props(app_db, tenant, receiver, peer_tenant_ids=[str(peer.tenant_id)], fernet_key=app_db.fernet_key)
    _id, outs = host.create(URN, news)
    checks = outs["report"]["checks"]
    assert checks["webhook_peer_secret_refused"]["ok"] is True and receiver.rejected == 3
    assert "1 real one" in checks["cross_tenant_isolation"]["detail"]
    assert peer.signing_secret not in str(outs["report"])


def test_a_new_peer_alone_does_not_rerun_the_checks(host, onboarded):
    app_db, tenant, receiver = onboarded
    news = props(app_db, tenant, receiver, peer_tenant_ids=[])
    _id, outs = host.create(URN, news)
    assert host.diff(URN, _id, outs, {**news, "peer_tenant_ids": [str(app_db.add_tenant().tenant_id)]}).changes is False


def test_wrong_signing_secret_fails_up_naming_the_check(host, onboarded):
    app_db, tenant, receiver = onboarded
    with pytest.raises(ProviderHostError) as info:
        host.create(URN, props(app_db, tenant, receiver, signing_secret="not-the-secret"))  # noqa: S106
    message = info.value.message
    assert "onboarding checks failed for tenant acme" in message
    assert "FAIL  webhook_signed_probe_accepted" in message
    assert "not-the-secret" not in message


def test_broken_isolation_fails_up_naming_the_check(host, onboarded):
    app_db, tenant, receiver = onboarded
    app_db.execute("ALTER TABLE ticket_history DISABLE ROW LEVEL SECURITY")
    with pytest.raises(ProviderHostError) as info:
        host.create(URN, props(app_db, tenant, receiver, checks=["rls"]))
    assert "FAIL  rls_enabled_and_forced" in info.value.message


@pytest.mark.parametrize("field,value", [("row_revision", "r2"), ("nonce", "1"), ("webhook_url", "http://x/"),
                                         ("app_database_url", "postgresql://app_user@127.0.0.1:1/other")])
def test_reruns_when_its_triggers_change(host, onboarded, field, value):
    app_db, tenant, receiver = onboarded
    news = props(app_db, tenant, receiver)
    _id, outs = host.create(URN, news)
    assert host.diff(URN, _id, outs, dict(news)).changes is False
    assert host.diff(URN, _id, outs, {**news, field: value}).changes is True


def test_reruns_when_the_signing_secret_rotates(host, onboarded):
    app_db, tenant, receiver = onboarded
    news = props(app_db, tenant, receiver)
    _id, outs = host.create(URN, news)
    assert host.diff(URN, _id, outs, {**news, "signing_secret": "rotated"}).changes is True


def test_update_runs_the_checks_again(host, onboarded):
    app_db, tenant, receiver = onboarded
    news = props(app_db, tenant, receiver)
    _id, outs = host.create(URN, news)
    host.update(URN, _id, outs, {**news, "nonce": "2"})
    assert receiver.accepted == 2
