"""Webhook checks: the tenant's endpoint accepts a correctly signed probe and refuses a wrongly signed one.

The probe is what ServiceDesk Plus sends: a JSON body signed with hex HMAC-SHA256 in the
X-ServiceDesk-Signature header. Connection errors and 5xx answers are retried with exponential
backoff; 4xx answers are final. The whole run, retries included, is bounded by `timeout`.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from tenantctl.checks.report import CheckReport, CheckResult
from tenantctl.credentials import sign_body

SIGNED_ACCEPTED = "webhook_signed_probe_accepted"
WRONG_SIGNATURE_REFUSED = "webhook_wrong_signature_refused"
SIGNATURE_HEADER = "X-ServiceDesk-Signature"
PROBE_EVENT = "onboarding_probe"


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer at all
    reason: str
    attempts: int


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST is replayed as a GET without the body: report the 3xx instead of following it.
    def redirect_request(self, *_args, **_kwargs) -> None:
        return None


def run_webhook_checks(webhook_url: str, signing_secret: str, tenant_id: UUID | str, *, timeout: float = 10.0,
                       attempts: int = 4, backoff: float = 0.25) -> CheckReport:
    """POST a signed probe (expect 2xx), then the same body wrongly signed (expect 401 or 403)."""
    parts = urlsplit(webhook_url)
    # Credentials in the URL are never echoed back in a report.
    shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        detail = f"webhook URL {shown!r} is not an http(s) URL with a host"
        return CheckReport([CheckResult(SIGNED_ACCEPTED, False, detail),
                            CheckResult(WRONG_SIGNATURE_REFUSED, False, detail)])
    body = json.dumps(
        {
            "event": PROBE_EVENT,
            "tenant_id": str(tenant_id),
            "nonce": secrets.token_hex(16),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")
    deadline = time.monotonic() + timeout
    signed = _post(webhook_url, body, sign_body(signing_secret, body), deadline, attempts, backoff)
    # Well-formed, but made with a secret the endpoint cannot know.
    wrong = _post(webhook_url, body, sign_body(secrets.token_hex(32), body), deadline, attempts, backoff)
    return CheckReport([_judge_signed(signed, shown, timeout), _judge_wrong(wrong, shown, timeout)])


def _post(url: str, body: bytes, signature: str, deadline: float, attempts: int, backoff: float) -> _Answer:
    opener = urllib.request.build_opener(_NoRedirects)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
    attempts = max(1, attempts)
    answer = _Answer(None, "deadline reached before the first attempt", 0)
    for attempt in range(1, attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked)
        try:
            # The socket timeout bounds each connect and read, so no single attempt outlives the deadline by much.
            with opener.open(request, timeout=remaining) as response:
                return _Answer(response.status, response.reason, attempt)
        except HTTPError as exc:
            exc.close()
            answer = _Answer(exc.code, str(exc.reason), attempt)
            if exc.code < 500:
                return answer
        except (URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = exc.reason if isinstance(exc, URLError) else exc
            answer = _Answer(None, str(reason) or type(reason).__name__, attempt)
        pause = backoff * 2 ** (attempt - 1)
        if attempt == attempts or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    return answer


def _tries(answer: _Answer) -> str:
    return f"{answer.attempts} attempt{'s' if answer.attempts != 1 else ''}"


def _unanswered(answer: _Answer, shown: str, timeout: float) -> str:
    return f"no answer from {shown} within {timeout:g}s ({_tries(answer)}): {answer.reason}"


def _judge_signed(answer: _Answer, shown: str, timeout: float) -> CheckResult:
    status = answer.status
    if status is not None and 200 <= status < 300:
        return CheckResult(SIGNED_ACCEPTED, True, f"signed probe accepted by {shown}: HTTP {status}")
    if status is None:
        detail = _unanswered(answer, shown, timeout)
    elif status in (401, 403):
        detail = (f"signed probe refused by {shown} (HTTP {status}): the endpoint's signing secret for this tenant "
                  "differs from the one deployed")
    elif 300 <= status < 400:
        detail = f"{shown} redirects (HTTP {status}); redirects are not followed: configure the final URL"
    else:
        detail = f"expected 2xx for the signed probe from {shown}, got HTTP {status} {answer.reason} ({_tries(answer)})"
    return CheckResult(SIGNED_ACCEPTED, False, detail)


def _judge_wrong(answer: _Answer, shown: str, timeout: float) -> CheckResult:
    status = answer.status
    if status in (401, 403):
        return CheckResult(WRONG_SIGNATURE_REFUSED, True, f"wrongly signed probe refused by {shown}: HTTP {status}")
    if status is None:
        detail = _unanswered(answer, shown, timeout)
    elif 200 <= status < 300:
        detail = (f"CRITICAL: endpoint accepts unsigned/wrongly signed webhooks: {shown} answered HTTP {status} "
                  "to a probe signed with the wrong secret")
    else:
        detail = (f"expected 401 or 403 for a wrongly signed probe from {shown}, got HTTP {status} {answer.reason} "
                  f"({_tries(answer)})")
    return CheckResult(WRONG_SIGNATURE_REFUSED, False, detail)
