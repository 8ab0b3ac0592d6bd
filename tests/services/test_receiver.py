"""WebhookReceiver: the application's signature contract, served locally against a real database."""

from __future__ import annotations

import json
import secrets
import socket
import urllib.request
import uuid
from urllib.error import HTTPError

import pytest
from cryptography.fernet import Fernet

from services.receiver import WebhookReceiver
from tenancy.credentials import sign_body

BODY = b'{"event":"ticket_created","ticket_id":"42"}'


def _send(url: str, body: bytes = BODY, signature: str | None = None, method: str = "POST") -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-ServiceDesk-Signature"] = signature
    data = body if method == "POST" else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (local test server)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")


def test_correctly_signed_webhook_is_accepted(app_db, receiver):
    tenant = app_db.add_tenant()

    answer = _send(receiver.webhook_url(tenant.tenant_id), signature=sign_body(tenant.signing_secret, BODY))

    assert answer == (202, {"status": "accepted"})
    assert (receiver.accepted, receiver.rejected) == (1, 0)


def test_signature_is_compared_case_insensitively(app_db, receiver):
    tenant = app_db.add_tenant()

    status, _ = _send(receiver.webhook_url(tenant.tenant_id), signature=sign_body(tenant.signing_secret, BODY).upper())

    assert status == 202


@pytest.mark.parametrize("signature", [None, "", "00" * 32, "not hex at all", "é" * 64])
def test_missing_or_wrong_signature_is_refused(app_db, receiver, signature):
    tenant = app_db.add_tenant()

    status, _ = _send(receiver.webhook_url(tenant.tenant_id), signature=signature)

    assert status == 401
    assert (receiver.accepted, receiver.rejected) == (0, 1)


def test_signature_of_another_tenant_is_refused(app_db, receiver):
    tenant, other = app_db.add_tenant(), app_db.add_tenant()

    status, _ = _send(receiver.webhook_url(tenant.tenant_id), signature=sign_body(other.signing_secret, BODY))

    assert status == 401


@pytest.mark.parametrize("query", ["", "?tenant=abc", "?tenant_id=acme", "?tenant_id=1&tenant_id=2"])
def test_missing_or_invalid_tenant_id_is_a_bad_request(receiver, query):
    status, _ = _send(f"{receiver.base_url}/webhook/servicedesk{query}", signature="00")

    assert status == 400


def test_unknown_tenant_is_not_found(receiver):
    status, answer = _send(receiver.webhook_url(uuid.uuid4()), signature="00")

    assert (status, answer) == (404, {"error": "unknown tenant"})


def test_other_paths_are_not_found_and_other_methods_not_allowed(receiver):
    assert _send(f"{receiver.base_url}/elsewhere")[0] == 404
    assert _send(receiver.webhook_url(uuid.uuid4()), method="GET")[0] == 405
    assert _send(receiver.webhook_url(uuid.uuid4()), method="PUT")[0] == 405


def test_undecryptable_secret_is_a_server_error(app_db):
    tenant = app_db.add_tenant()

    with WebhookReceiver(app_db.app_dsn, Fernet.generate_key().decode()) as wrong_key:
        status, _ = _send(wrong_key.webhook_url(tenant.tenant_id), signature=sign_body(tenant.signing_secret, BODY))

    assert status == 500


def test_unreachable_database_is_service_unavailable(app_db):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with WebhookReceiver(f"postgresql://app_user@127.0.0.1:{closed_port}/app", app_db.fernet_key) as receiver:
        status, _ = _send(receiver.webhook_url(uuid.uuid4()), signature=secrets.token_hex(32))

    assert status == 503


def test_base_url_needs_a_running_receiver(app_db):
    with pytest.raises(RuntimeError, match="not running"):
        _ = WebhookReceiver(app_db.app_dsn, app_db.fernet_key).base_url
