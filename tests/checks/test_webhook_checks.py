"""run_webhook_checks against the reference receiver on a real database, and against scripted and flawed endpoints."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import uuid4

import pytest

from checks.webhook import (
    PEER_SECRET_REFUSED,
    SIGNATURE_HEADER,
    SIGNED_ACCEPTED,
    UNSIGNED_REFUSED,
    WRONG_SIGNATURE_REFUSED,
    run_webhook_checks,
)
from tenancy.credentials import sign_body, signature_matches

FAST = {"backoff": 0.01}
WITHOUT_PEER = [SIGNED_ACCEPTED, UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED]
WITH_PEER = [*WITHOUT_PEER, PEER_SECRET_REFUSED]

Respond = Callable[[Message, bytes], int]


class _EndpointHandler(BaseHTTPRequestHandler):
    server: _Endpoint

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.requests.append((self.headers, body))
            status = self.server.respond(self.headers, body)
            self.server.statuses.append(status)
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        return None


class _Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), _EndpointHandler)
        self.respond = respond
        self.requests: list[tuple[Message, bytes]] = []
        self.statuses: list[int] = []  # what it answered, in order
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/webhook/servicedesk?tenant_id=x"


@contextmanager
def endpoint(respond: Respond) -> Iterator[_Endpoint]:
    """An endpoint on 127.0.0.1 answering each POST with respond(headers, body), called one request at a time."""
    server = _Endpoint(respond)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def scripted_endpoint(*statuses: int):
    """An endpoint answering each POST with the next status; the last one repeats."""
    script = list(statuses)

    def respond(_headers: Message, _body: bytes) -> int:
        return script.pop(0) if len(script) > 1 else script[0]

    return endpoint(respond)


# Flawed receivers: each gets the signed probe right and has one real-world signature-checking bug.

def verifies_only_when_signed(signing_secret: str) -> Respond:
    """Checks the signature when the header is there, and lets requests without one through."""
    def respond(headers: Message, body: bytes) -> int:
        signature = headers.get(SIGNATURE_HEADER)
        if signature is None:
            return 202
        return 202 if signature_matches(signing_secret, body, signature) else 401
    return respond


def replay_guard_only(refusal: int) -> Respond:
    """Never checks signatures; refuses any body it has already seen."""
    seen: set[bytes] = set()

    def respond(_headers: Message, body: bytes) -> int:
        if body in seen:
            return refusal
        seen.add(body)
        return 202
    return respond


def accepts_any_tenant(signing_secrets: dict[str, str]) -> Respond:
    """Accepts a signature made with any known tenant's secret, whichever tenant the webhook is for."""
    def respond(headers: Message, body: bytes) -> int:
        signature = headers.get(SIGNATURE_HEADER)
        if signature and any(signature_matches(secret, body, signature) for secret in signing_secrets.values()):
            return 202
        return 401
    return respond


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _names(report) -> list[str]:
    return [result.name for result in report.results]


def _failed(report) -> set[str]:
    return {result.name for result in report.failed}


def _detail(report, name: str) -> str:
    return next(result.detail for result in report.results if result.name == name)


def _assert_secret_absent(report, *secrets_: str) -> None:
    text = report.render() + json.dumps(report.as_dict())
    for secret in secrets_:
        assert secret not in text


def _signatures(server: _Endpoint) -> list[str]:
    return [headers[SIGNATURE_HEADER] for headers, _ in server.requests if SIGNATURE_HEADER in headers]


# The reference receiver, real database.

def test_reference_receiver_passes_every_check_with_a_peer_secret(app_db, receiver):
    tenant, other = app_db.add_tenant(), app_db.add_tenant()

    report = run_webhook_checks(receiver.webhook_url(tenant.tenant_id), tenant.signing_secret, tenant.tenant_id,
                                peer_signing_secret=other.signing_secret)

    assert report.ok, report.render()
    assert _names(report) == WITH_PEER
    assert (receiver.accepted, receiver.rejected) == (1, 3)
    _assert_secret_absent(report, tenant.signing_secret, other.signing_secret)


def test_without_a_peer_secret_the_peer_probe_is_not_sent_nor_reported(app_db, receiver):
    tenant = app_db.add_tenant()

    report = run_webhook_checks(receiver.webhook_url(tenant.tenant_id), tenant.signing_secret, tenant.tenant_id)

    assert report.ok, report.render()
    assert _names(report) == WITHOUT_PEER
    assert PEER_SECRET_REFUSED not in report.as_dict()["checks"] and PEER_SECRET_REFUSED not in report.render()
    assert (receiver.accepted, receiver.rejected) == (1, 2)
    _assert_secret_absent(report, tenant.signing_secret)


def test_wrong_signing_secret_in_the_row_fails_the_signed_probe(app_db, receiver):
    deployed = secrets.token_urlsafe(24)
    tenant = app_db.add_tenant(signing_secret=secrets.token_urlsafe(24))

    report = run_webhook_checks(receiver.webhook_url(tenant.tenant_id), deployed, tenant.tenant_id)

    assert _failed(report) == {SIGNED_ACCEPTED}
    assert "HTTP 401" in _detail(report, SIGNED_ACCEPTED)
    _assert_secret_absent(report, deployed, tenant.signing_secret)


# Receivers that accept what they must refuse.

def test_endpoint_accepting_everything_fails_every_refusal_critically():
    signing_secret, peer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with scripted_endpoint(202) as server:
        report = run_webhook_checks(server.url, signing_secret, uuid4(), peer_signing_secret=peer, **FAST)

    assert _failed(report) == {UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED, PEER_SECRET_REFUSED}
    assert server.statuses == [202] * 4
    assert _detail(report, UNSIGNED_REFUSED).startswith("CRITICAL: endpoint accepts unsigned webhooks")
    assert _detail(report, WRONG_SIGNATURE_REFUSED).startswith("CRITICAL: endpoint accepts wrongly signed webhooks")
    assert _detail(report, PEER_SECRET_REFUSED).startswith("CRITICAL: endpoint accepts webhooks signed with another")
    _assert_secret_absent(report, signing_secret, peer, *_signatures(server))


def test_receiver_that_verifies_only_present_signatures_fails_the_unsigned_probe():
    signing_secret, peer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with endpoint(verifies_only_when_signed(signing_secret)) as server:
        report = run_webhook_checks(server.url, signing_secret, uuid4(), peer_signing_secret=peer, **FAST)

    assert not report.ok
    assert _failed(report) == {UNSIGNED_REFUSED}
    assert server.statuses == [202, 202, 401, 401]
    assert _detail(report, UNSIGNED_REFUSED).startswith("CRITICAL")
    _assert_secret_absent(report, signing_secret, peer, *_signatures(server))


@pytest.mark.parametrize("refusal", [409, 401])
def test_receiver_with_replay_protection_but_no_signature_check_fails(refusal):
    signing_secret, peer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with endpoint(replay_guard_only(refusal)) as server:
        report = run_webhook_checks(server.url, signing_secret, uuid4(), peer_signing_secret=peer, **FAST)

    assert not report.ok
    assert _failed(report) == {UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED, PEER_SECRET_REFUSED}
    # No probe repeated a body, so the replay guard never fired and every probe was accepted.
    assert server.statuses == [202] * 4


def test_receiver_accepting_any_tenants_secret_fails_only_the_peer_probe():
    signing_secret, peer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    flawed = accepts_any_tenant({"tenant": signing_secret, "peer": peer})
    with endpoint(flawed) as server:
        report = run_webhook_checks(server.url, signing_secret, uuid4(), peer_signing_secret=peer, **FAST)

    assert _names(report) == WITH_PEER
    assert _failed(report) == {PEER_SECRET_REFUSED}
    assert server.statuses == [202, 401, 401, 202]
    assert _detail(report, PEER_SECRET_REFUSED).startswith("CRITICAL")
    _assert_secret_absent(report, signing_secret, peer, *_signatures(server))


def test_receiver_accepting_any_tenants_secret_passes_when_no_peer_secret_is_given():
    signing_secret, peer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    with endpoint(accepts_any_tenant({"tenant": signing_secret, "peer": peer})) as server:
        report = run_webhook_checks(server.url, signing_secret, uuid4(), **FAST)

    assert report.ok, report.render()
    assert _names(report) == WITHOUT_PEER
    assert len(server.requests) == 3


def test_peer_secret_equal_to_the_tenants_own_fails_without_a_probe():
    signing_secret = secrets.token_urlsafe(24)
    with scripted_endpoint(202, 401) as server:
        report = run_webhook_checks(server.url, signing_secret, uuid4(), peer_signing_secret=signing_secret, **FAST)

    assert _failed(report) == {PEER_SECRET_REFUSED}
    assert len(server.requests) == 3
    _assert_secret_absent(report, signing_secret)


# What goes on the wire.

def test_each_probe_has_its_own_body_and_the_unsigned_one_has_no_signature_header():
    signing_secret, peer, tenant_id = secrets.token_urlsafe(24), secrets.token_urlsafe(24), uuid4()
    with scripted_endpoint(202, 401) as server:
        assert run_webhook_checks(server.url, signing_secret, tenant_id, peer_signing_secret=peer, **FAST).ok

    (signed_h, signed_b), (unsigned_h, unsigned_b), (wrong_h, wrong_b), (peer_h, peer_b) = server.requests
    bodies = [signed_b, unsigned_b, wrong_b, peer_b]
    probes = [json.loads(body) for body in bodies]
    assert len(set(bodies)) == 4 and len({probe["nonce"] for probe in probes}) == 4
    for headers, probe in zip([signed_h, unsigned_h, wrong_h, peer_h], probes, strict=True):
        assert headers["Content-Type"] == "application/json"
        assert probe["event"] == "onboarding_probe" and probe["tenant_id"] == str(tenant_id) and probe["timestamp"]
    assert signed_h[SIGNATURE_HEADER] == sign_body(signing_secret, signed_b)
    assert SIGNATURE_HEADER not in unsigned_h
    wrong_signature = wrong_h[SIGNATURE_HEADER]
    assert len(wrong_signature) == 64 and int(wrong_signature, 16) >= 0
    assert wrong_signature not in (sign_body(signing_secret, wrong_b), sign_body(peer, wrong_b))
    assert peer_h[SIGNATURE_HEADER] == sign_body(peer, peer_b)


def test_refusal_probes_are_sent_even_when_the_signed_probe_fails():
    with scripted_endpoint(401) as server:
        report = run_webhook_checks(server.url, secrets.token_urlsafe(24), uuid4(),
                                    peer_signing_secret=secrets.token_urlsafe(24), **FAST)

    assert _failed(report) == {SIGNED_ACCEPTED}
    assert len(server.requests) == 4


# Retries, deadlines and bad URLs.

def test_service_unavailable_twice_then_accepted_passes_thanks_to_retries():
    with scripted_endpoint(503, 503, 202, 401) as server:
        report = run_webhook_checks(server.url, secrets.token_urlsafe(24), uuid4(), **FAST)

    assert report.ok, report.render()
    assert server.statuses == [503, 503, 202, 401, 401]


def test_persistent_5xx_fails_after_the_allowed_attempts():
    with scripted_endpoint(503) as server:
        report = run_webhook_checks(server.url, secrets.token_urlsafe(24), uuid4(), attempts=3, **FAST)

    assert _failed(report) == set(WITHOUT_PEER)
    assert "HTTP 503" in report.render() and "3 attempts" in report.render()
    assert len(server.requests) == 9


def test_4xx_is_final_and_not_retried():
    with scripted_endpoint(404) as server:
        report = run_webhook_checks(server.url, secrets.token_urlsafe(24), uuid4(),
                                    peer_signing_secret=secrets.token_urlsafe(24), **FAST)

    assert _failed(report) == set(WITH_PEER)
    assert len(server.requests) == 4


def test_redirect_is_reported_not_followed():
    with scripted_endpoint(302) as server:
        report = run_webhook_checks(server.url, secrets.token_urlsafe(24), uuid4(), **FAST)

    assert SIGNED_ACCEPTED in _failed(report)
    assert "redirects" in _detail(report, SIGNED_ACCEPTED)
    assert len(server.requests) == 3


def test_refused_connection_fails_after_bounded_retries():
    signing_secret = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{_closed_port()}/webhook/servicedesk"

    started = time.monotonic()
    report = run_webhook_checks(url, signing_secret, uuid4(), attempts=3, **FAST)

    assert time.monotonic() - started < 2
    assert _failed(report) == set(WITHOUT_PEER)
    assert "no answer" in report.render() and "3 attempts" in report.render()
    _assert_secret_absent(report, signing_secret)


def test_unresponsive_endpoint_fails_within_the_timeout():
    timeout = 0.5
    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/webhook/servicedesk"

        started = time.monotonic()
        report = run_webhook_checks(url, secrets.token_urlsafe(24), uuid4(),
                                    peer_signing_secret=secrets.token_urlsafe(24), timeout=timeout)
        elapsed = time.monotonic() - started

    assert elapsed < timeout + 0.5
    assert _failed(report) == set(WITH_PEER)


def test_the_timeout_bounds_all_probes_together():
    timeout, delay = 0.6, 0.4

    def slow(_headers: Message, _body: bytes) -> int:
        time.sleep(delay)
        return 401

    with endpoint(slow) as server:
        started = time.monotonic()
        report = run_webhook_checks(server.url, secrets.token_urlsafe(24), uuid4(),
                                    peer_signing_secret=secrets.token_urlsafe(24), timeout=timeout, **FAST)
        elapsed = time.monotonic() - started

    # Each probe alone would fit in the timeout; four in a row cannot.
    assert elapsed < timeout + 0.5
    assert {WRONG_SIGNATURE_REFUSED, PEER_SECRET_REFUSED} <= _failed(report)
    assert "no answer" in _detail(report, PEER_SECRET_REFUSED)


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "http:///no-host"])
def test_url_that_is_not_http_fails_every_check(url):
    assert _failed(run_webhook_checks(url, secrets.token_urlsafe(24), uuid4())) == set(WITHOUT_PEER)
    report = run_webhook_checks(url, secrets.token_urlsafe(24), uuid4(), peer_signing_secret=secrets.token_urlsafe(24))
    assert _names(report) == WITH_PEER and _failed(report) == set(WITH_PEER)


def test_credentials_in_the_url_are_not_reported():
    report = run_webhook_checks(f"http://user:hunter2-password@127.0.0.1:{_closed_port()}/hook",
                                secrets.token_urlsafe(24), uuid4(), attempts=1)

    assert not report.ok
    assert "hunter2-password" not in report.render()
