"""run_webhook_checks through a tenant's lifecycle: the reference receiver passes each phase, and an endpoint with
the phase's typical bug fails it (behaviour, not text)."""

from __future__ import annotations

import secrets
from email.message import Message

from checks.webhook import (
    NEXT_SECRET_ACCEPTED,
    RETIRED_SECRET_REFUSED,
    SIGNATURE_HEADER,
    SIGNED_ACCEPTED,
    SUSPENDED_REFUSED,
    UNSIGNED_REFUSED,
    WRONG_SIGNATURE_REFUSED,
    run_webhook_checks,
)
from tenancy import credentials
from tenancy.credentials import signature_matches
from tests.checks.test_webhook_checks import FAST, _failed, _names, endpoint


def _signed_with_any(accepted: list[str], status: int = 202):
    def respond(headers: Message, body: bytes) -> int:
        signature = headers.get(SIGNATURE_HEADER)
        if signature and any(signature_matches(secret, body, signature) for secret in accepted):
            return status
        return 401
    return respond


def test_reference_receiver_passes_a_rotation_overlap_and_then_its_finish(app_db, receiver):
    tenant = app_db.add_tenant()
    new = secrets.token_urlsafe(36)
    encrypted = credentials.encrypt(app_db.fernet_key, new)
    app_db.execute("UPDATE tenant_configs SET webhook_next_signing_secret_encrypted = %s WHERE tenant_id = %s",
                   (encrypted, tenant.tenant_id))
    url = receiver.webhook_url(tenant.tenant_id)

    overlap = run_webhook_checks(url, tenant.signing_secret, tenant.tenant_id, next_signing_secret=new, **FAST)
    assert overlap.ok, overlap.render()
    assert _names(overlap) == [SIGNED_ACCEPTED, NEXT_SECRET_ACCEPTED, UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED]

    app_db.execute("UPDATE tenant_configs SET webhook_signing_secret_encrypted = %s,"
                   " webhook_next_signing_secret_encrypted = NULL WHERE tenant_id = %s", (encrypted, tenant.tenant_id))
    finished = run_webhook_checks(url, new, tenant.tenant_id, retired_signing_secrets=[tenant.signing_secret], **FAST)
    assert finished.ok, finished.render()
    assert _names(finished)[-1] == RETIRED_SECRET_REFUSED


def test_an_endpoint_that_knows_only_the_old_secret_fails_the_next_secret_probe():
    old, new = secrets.token_urlsafe(36), secrets.token_urlsafe(36)
    with endpoint(_signed_with_any([old])) as server:
        report = run_webhook_checks(server.url, old, "t", next_signing_secret=new, **FAST)
    assert _failed(report) == {NEXT_SECRET_ACCEPTED}


def test_an_endpoint_that_still_accepts_the_retired_secret_fails_critically():
    old, new = secrets.token_urlsafe(36), secrets.token_urlsafe(36)
    with endpoint(_signed_with_any([old, new])) as server:
        report = run_webhook_checks(server.url, new, "t", retired_signing_secrets=[old], **FAST)
    assert _failed(report) == {RETIRED_SECRET_REFUSED}
    assert "CRITICAL" in report.render()


def test_reference_receiver_passes_a_suspension(app_db, receiver):
    tenant = app_db.add_tenant()
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (tenant.tenant_id,))

    report = run_webhook_checks(receiver.webhook_url(tenant.tenant_id), tenant.signing_secret, tenant.tenant_id,
                                suspended=True, **FAST)

    assert report.ok, report.render()
    assert _names(report) == [SUSPENDED_REFUSED, UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED]


def test_an_endpoint_that_ignores_the_suspension_fails_critically():
    secret = secrets.token_urlsafe(36)
    with endpoint(_signed_with_any([secret])) as server:
        report = run_webhook_checks(server.url, secret, "t", suspended=True, **FAST)
    assert _failed(report) == {SUSPENDED_REFUSED}
    assert "CRITICAL" in report.render()


def test_an_endpoint_that_refuses_a_suspended_tenant_for_its_signature_fails():
    """401 for a good signature would hide that the row holds the right secret: only 423 proves the suspension."""
    secret = secrets.token_urlsafe(36)
    with endpoint(_signed_with_any([], 202)) as server:
        report = run_webhook_checks(server.url, secret, "t", suspended=True, **FAST)
    assert _failed(report) == {SUSPENDED_REFUSED}


def test_a_suspended_endpoint_that_answers_423_unsigned_fails_the_refusal_probes():
    """A suspension must tell nothing to a caller who cannot sign: 423 for everyone fails the unsigned probes."""
    secret = secrets.token_urlsafe(36)
    with endpoint(lambda _headers, _body: 423) as server:
        report = run_webhook_checks(server.url, secret, "t", suspended=True, **FAST)
    assert _failed(report) == {UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED}
