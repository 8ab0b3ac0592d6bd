"""A local reference webhook receiver implementing the application's signature contract.

POST /webhook/servicedesk?tenant_id=<uuid>, body signed with hex HMAC-SHA256 in X-ServiceDesk-Signature:
202 when the signature matches the tenant's signing secret (or, during a rotation, its next one), 401 when
it does not, 423 when it matches but the tenant is suspended (`suspended_at` set), 404 for an unknown
tenant, 400 for a missing or malformed tenant_id. The signature is judged before the suspension, so a caller
who cannot sign for the tenant learns nothing about it (docs/app-contract.md). It reads the secret the way the
application does: as the application's role, inside the tenant's RLS context, decrypting the stored Fernet token.
Rehearsals and tests point the webhook checks at it in place of the real application.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import psycopg

from checks.webhook import SIGNATURE_HEADER
from tenancy import credentials, db

WEBHOOK_PATH = "/webhook/servicedesk"
MAX_BODY_BYTES = 1024 * 1024


class WebhookReceiver:
    """Serves the webhook endpoint from a daemon thread. Use as a context manager, or start() and stop()."""

    def __init__(self, app_dsn: str, fernet_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        credentials.validate_key(fernet_key)
        self.app_dsn = app_dsn
        self.fernet_key = fernet_key
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._accepted = 0
        self._rejected = 0

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> WebhookReceiver:
        if self._server is None:
            self._server = _Server(self._address, _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the webhook receiver is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def webhook_url(self, tenant_id: UUID | str) -> str:
        return f"{self.base_url}{WEBHOOK_PATH}?tenant_id={tenant_id}"

    @property
    def accepted(self) -> int:
        """POSTs to the webhook path answered 202."""
        with self._lock:
            return self._accepted

    @property
    def rejected(self) -> int:
        """POSTs to the webhook path answered anything else (bad tenant, bad signature, errors)."""
        with self._lock:
            return self._rejected

    def answer(self, query: str, signature: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer for one POST to the webhook path."""
        status, payload = self._verify(query, signature, body)
        with self._lock:
            if status == 202:
                self._accepted += 1
            else:
                self._rejected += 1
        return status, payload

    def _verify(self, query: str, signature: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        values = parse_qs(query).get("tenant_id", [])
        if len(values) != 1:
            return 400, {"error": "exactly one tenant_id query parameter is required"}
        try:
            tenant = UUID(values[0])
        except ValueError:
            return 400, {"error": "tenant_id is not a UUID"}
        try:
            # One transaction: set_tenant_context() scopes the transaction, not the connection.
            with db.connect(self.app_dsn) as conn:
                conn.execute("SELECT set_tenant_context(%s)", (tenant,))
                row = conn.execute(
                    "SELECT webhook_signing_secret_encrypted, webhook_next_signing_secret_encrypted, suspended_at"
                    " FROM tenant_configs WHERE tenant_id = %s", (tenant,)
                ).fetchone()
        except psycopg.errors.NoDataFound:
            return 404, {"error": "unknown tenant"}
        except (db.DatabaseError, psycopg.Error):
            return 503, {"error": "tenant configuration unavailable"}
        if row is None:
            return 404, {"error": "unknown tenant"}
        try:
            secrets = [credentials.decrypt(self.fernet_key, token) for token in row[:2] if token is not None]
        except credentials.CredentialError:
            return 500, {"error": "the tenant's signing secret cannot be decrypted"}
        # compare_digest refuses non-ASCII text; such a header cannot be a hex digest anyway.
        signed = bool(signature) and signature.isascii() and any(
            credentials.signature_matches(secret, body, signature) for secret in secrets)
        if not signed:
            return 401, {"error": "invalid signature"}
        if row[2] is not None:
            return 423, {"error": "tenant suspended", "suspended_at": row[2].isoformat()}
        return 202, {"status": "accepted"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != WEBHOOK_PATH:
            self._reply(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._reply(413 if length > MAX_BODY_BYTES else 400, {"error": "bad Content-Length"})
            return
        body = self.rfile.read(length)
        self._reply(*self.server.receiver.answer(url.query, self.headers.get(SIGNATURE_HEADER), body))

    def _refuse_method(self) -> None:
        if urlsplit(self.path).path == WEBHOOK_PATH:
            self._reply(405, {"error": "method not allowed"}, {"Allow": "POST"})
        else:
            self._reply(404, {"error": "not found"})

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _refuse_method

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Tests and rehearsals read the counters and check reports, not an access log on stderr.
        return None
