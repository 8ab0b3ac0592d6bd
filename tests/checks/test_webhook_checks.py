"""run_webhook_checks against the reference receiver on a real database, and against scripted endpoints."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import uuid4

import pytest

from tenantctl.checks.webhook import SIGNATURE_HEADER, SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED, run_webhook_checks
from tenantctl.credentials import sign_body

FAST = {"backoff": 0.01}


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: _ScriptedServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.requests.append((self.headers, body))
            status = self.server.statuses.pop(0) if len(self.server.statuses) > 1 else self.server.statuses[0]
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        return None


class _ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.statuses = statuses
        self.requests: list[tuple[Message, bytes]] = []
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/webhook/servicedesk?tenant_id=x"


@contextmanager
def scripted_endpoint(*statuses: int) -> Iterator[_ScriptedServer]:
    """An endpoint answering each POST with the next status; the last one repeats."""
    server = _ScriptedServer(list(statuses))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _failed(report) -> set[str]:
    return {result.name for result in report.failed}


def _assert_secret_absent(report, *secrets_: str) -> None:
    text = report.render() + json.dumps(report.as_dict())
    for secret in secrets_:
        assert secret not in text


def test_correct_secret_passes_both_checks(app_db, receiver):
    tenant = app_db.add_tenant()

    report = run_webhook_checks(receiver.webhook_url(tenant.tenant_id), tenant.signing_secret, tenant.tenant_id)

    assert report.ok, report.render()
    assert [r.name for r in report.results] == [SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED]
    assert (receiver.accepted, receiver.rejected) == (1, 1)
    _assert_secret_absent(report, tenant.signing_secret)


def test_wrong_signing_secret_in_the_row_fails_the_signed_probe(app_db, receiver):
    deployed = secrets.token_urlsafe(24)
    tenant = app_db.add_tenant(signing_secret=secrets.token_urlsafe(24))

    report = run_webhook_checks(receiver.webhook_url(tenant.tenant_id), deployed, tenant.tenant_id)

    assert _failed(report) == {SIGNED_ACCEPTED}
    assert "HTTP 401" in report.render()
    _assert_secret_absent(report, deployed, tenant.signing_secret)


def test_endpoint_accepting_any_signature_fails_critically():
    signing_secret = secrets.token_urlsafe(24)
    with scripted_endpoint(202) as endpoint:
        report = run_webhook_checks(endpoint.url, signing_secret, uuid4(), **FAST)

    assert _failed(report) == {WRONG_SIGNATURE_REFUSED}
    assert "endpoint accepts unsigned/wrongly signed webhooks" in report.render()
    _assert_secret_absent(report, signing_secret)


def test_probe_is_signed_json_with_event_tenant_nonce_and_timestamp():
    signing_secret, tenant_id = secrets.token_urlsafe(24), uuid4()
    with scripted_endpoint(202, 401) as endpoint:
        assert run_webhook_checks(endpoint.url, signing_secret, tenant_id, **FAST).ok

    (signed_headers, body), (wrong_headers, wrong_body) = endpoint.requests
    probe = json.loads(body)
    assert signed_headers["Content-Type"] == "application/json"
    assert signed_headers[SIGNATURE_HEADER] == sign_body(signing_secret, body)
    assert wrong_body == body and wrong_headers[SIGNATURE_HEADER] != signed_headers[SIGNATURE_HEADER]
    assert probe["event"] == "onboarding_probe" and probe["tenant_id"] == str(tenant_id)
    assert probe["nonce"] and probe["timestamp"]


def test_service_unavailable_twice_then_accepted_passes_thanks_to_retries():
    with scripted_endpoint(503, 503, 202, 401) as endpoint:
        report = run_webhook_checks(endpoint.url, secrets.token_urlsafe(24), uuid4(), **FAST)

    assert report.ok, report.render()
    assert len(endpoint.requests) == 4


def test_persistent_5xx_fails_after_the_allowed_attempts():
    with scripted_endpoint(503) as endpoint:
        report = run_webhook_checks(endpoint.url, secrets.token_urlsafe(24), uuid4(), attempts=3, **FAST)

    assert _failed(report) == {SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED}
    assert "HTTP 503" in report.render() and "3 attempts" in report.render()
    assert len(endpoint.requests) == 6


def test_4xx_is_final_and_not_retried():
    with scripted_endpoint(404) as endpoint:
        report = run_webhook_checks(endpoint.url, secrets.token_urlsafe(24), uuid4(), **FAST)

    assert _failed(report) == {SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED}
    assert len(endpoint.requests) == 2


def test_redirect_is_reported_not_followed():
    with scripted_endpoint(302) as endpoint:
        report = run_webhook_checks(endpoint.url, secrets.token_urlsafe(24), uuid4(), **FAST)

    assert SIGNED_ACCEPTED in _failed(report)
    assert "redirects" in report.render()
    assert len(endpoint.requests) == 2


def test_refused_connection_fails_after_bounded_retries():
    signing_secret = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{_closed_port()}/webhook/servicedesk"

    started = time.monotonic()
    report = run_webhook_checks(url, signing_secret, uuid4(), attempts=3, **FAST)

    assert time.monotonic() - started < 2
    assert _failed(report) == {SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED}
    assert "no answer" in report.render() and "3 attempts" in report.render()
    _assert_secret_absent(report, signing_secret)


def test_unresponsive_endpoint_fails_within_the_timeout():
    timeout = 0.5
    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/webhook/servicedesk"

        started = time.monotonic()
        report = run_webhook_checks(url, secrets.token_urlsafe(24), uuid4(), timeout=timeout)
        elapsed = time.monotonic() - started

    assert elapsed < timeout + 0.5
    assert _failed(report) == {SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED}


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "http:///no-host"])
def test_url_that_is_not_http_fails_both_checks(url):
    report = run_webhook_checks(url, secrets.token_urlsafe(24), uuid4())

    assert _failed(report) == {SIGNED_ACCEPTED, WRONG_SIGNATURE_REFUSED}


def test_credentials_in_the_url_are_not_reported():
    report = run_webhook_checks(f"http://user:hunter2-password@127.0.0.1:{_closed_port()}/hook",
                                secrets.token_urlsafe(24), uuid4(), attempts=1)

    assert not report.ok
    assert "hunter2-password" not in report.render()
