"""WebhookReceiver and a tenant's lifecycle: a suspended tenant's signed webhooks are refused with 423 (after the
signature is judged), and during a rotation a webhook signed with either secret is accepted."""

from __future__ import annotations

import secrets

from tenancy import credentials
from tenancy.credentials import sign_body
from tests.services.test_receiver import BODY, _send


def test_a_suspended_tenant_is_refused_with_423_and_a_reason(app_db, receiver):
    tenant = app_db.add_tenant()
    other = app_db.add_tenant()
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (tenant.tenant_id,))

    status, answer = _send(receiver.webhook_url(tenant.tenant_id), signature=sign_body(tenant.signing_secret, BODY))
    other_status, _ = _send(receiver.webhook_url(other.tenant_id), signature=sign_body(other.signing_secret, BODY))

    assert status == 423 and answer["error"] == "tenant suspended" and answer["suspended_at"]
    assert other_status == 202, "another tenant is not affected"


def test_a_suspended_tenant_tells_nothing_to_a_caller_who_cannot_sign(app_db, receiver):
    tenant = app_db.add_tenant()
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (tenant.tenant_id,))

    assert _send(receiver.webhook_url(tenant.tenant_id), signature=None)[0] == 401
    assert _send(receiver.webhook_url(tenant.tenant_id), signature=sign_body("guess", BODY))[0] == 401


def test_resume_accepts_again(app_db, receiver):
    tenant = app_db.add_tenant()
    url, signature = receiver.webhook_url(tenant.tenant_id), sign_body(tenant.signing_secret, BODY)
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (tenant.tenant_id,))
    assert _send(url, signature=signature)[0] == 423

    app_db.execute("UPDATE tenant_configs SET suspended_at = NULL WHERE tenant_id = %s", (tenant.tenant_id,))

    assert _send(url, signature=signature)[0] == 202


def test_during_a_rotation_either_secret_is_accepted_and_after_it_only_the_new_one(app_db, receiver):
    tenant = app_db.add_tenant()
    peer = app_db.add_tenant()
    url, new = receiver.webhook_url(tenant.tenant_id), secrets.token_urlsafe(36)
    encrypted = credentials.encrypt(app_db.fernet_key, new)
    app_db.execute("UPDATE tenant_configs SET webhook_next_signing_secret_encrypted = %s WHERE tenant_id = %s",
                   (encrypted, tenant.tenant_id))

    assert _send(url, signature=sign_body(tenant.signing_secret, BODY))[0] == 202
    assert _send(url, signature=sign_body(new, BODY))[0] == 202
    assert _send(url, signature=sign_body(peer.signing_secret, BODY))[0] == 401
    assert _send(receiver.webhook_url(peer.tenant_id), signature=sign_body(new, BODY))[0] == 401, \
        "another tenant's next secret is no good for this one"

    app_db.execute("UPDATE tenant_configs SET webhook_signing_secret_encrypted = %s,"
                   " webhook_next_signing_secret_encrypted = NULL WHERE tenant_id = %s", (encrypted, tenant.tenant_id))

    assert _send(url, signature=sign_body(new, BODY))[0] == 202
    assert _send(url, signature=sign_body(tenant.signing_secret, BODY))[0] == 401
