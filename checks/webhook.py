"""Webhook checks: prove by behaviour that the tenant's endpoint accepts only webhooks signed with its own secret.

ServiceDesk Plus sends a JSON body signed with hex HMAC-SHA256 in the X-ServiceDesk-Signature header.
Accepting a good signature proves nothing on its own: an endpoint that accepts everything does too. So
the check sends up to four probes and judges each by its HTTP status:

- signed with the tenant's secret: must be accepted (2xx), or real webhooks would be lost;
- unsigned, no signature header at all: must be refused (401 or 403); catches an endpoint that
  verifies a signature only when one is present;
- signed with a random secret: must be refused; catches an endpoint that checks only that a
  signature is there, or checks none;
- signed with another tenant's real secret, when the caller gives one: must be refused; catches an
  endpoint that accepts a signature made with any tenant's secret, which lets one tenant forge
  another's webhooks. Without a peer secret this probe is not sent and has no result.

Two phases of a tenant's life change what is expected (docs/app-contract.md):

- during a signing-secret rotation, a probe signed with the next secret must be accepted as well
  (`webhook_next_secret_accepted`); after it, a probe signed with a retired secret must be refused
  (`webhook_retired_secret_refused`), like a wrong one;
- while the tenant is suspended, a probe signed with its secret (current or next) must be refused with
  HTTP 423 (`webhook_suspended_refused`), which says "suspended" rather than "bad signature"; the unsigned
  and wrongly signed probes must still get 401 or 403, so a suspension tells nothing to a caller who
  cannot sign.

Every probe has a body of its own (fresh nonce and timestamp), so an endpoint that refuses replayed
bodies but never checks signatures cannot pass a refusal probe by recognising a body it has seen.
All probes are sent whatever the earlier ones got. Connection errors and 5xx answers are retried with
exponential backoff; 4xx answers are final. The whole run, every probe and retry, is bounded by
`timeout`. No secret or signature ever appears in a result.
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

from checks.report import CheckReport, CheckResult
from tenancy.credentials import sign_body

SIGNED_ACCEPTED = "webhook_signed_probe_accepted"
UNSIGNED_REFUSED = "webhook_unsigned_refused"
WRONG_SIGNATURE_REFUSED = "webhook_wrong_signature_refused"
PEER_SECRET_REFUSED = "webhook_peer_secret_refused"  # noqa: S105 (a check name, not a secret)
NEXT_SECRET_ACCEPTED = "webhook_next_secret_accepted"  # noqa: S105 (a check name, not a secret)
RETIRED_SECRET_REFUSED = "webhook_retired_secret_refused"  # noqa: S105 (a check name, not a secret)
SUSPENDED_REFUSED = "webhook_suspended_refused"
SUSPENDED_STATUS = 423  # Locked: the tenant exists and the signature is good, but it is suspended
SIGNATURE_HEADER = "X-ServiceDesk-Signature"
PROBE_EVENT = "onboarding_probe"

# What each refusal probe is, and what accepting it means; used in details.
_REFUSALS = {
    UNSIGNED_REFUSED: ("unsigned probe", "unsigned webhooks",
                       f"a probe without the {SIGNATURE_HEADER} header"),
    WRONG_SIGNATURE_REFUSED: ("wrongly signed probe", "wrongly signed webhooks",
                              "a probe signed with a random secret"),
    PEER_SECRET_REFUSED: ("probe signed with another tenant's secret", "webhooks signed with another tenant's secret",
                          "a probe signed with another tenant's signing secret"),
    RETIRED_SECRET_REFUSED: ("probe signed with a retired secret", "webhooks signed with a retired secret",
                             "a probe signed with the tenant's retired signing secret"),
}


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer at all
    reason: str
    attempts: int


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST is replayed as a GET without the body: report the 3xx instead of following it.
    def redirect_request(self, *_args, **_kwargs) -> None:
        return None


def run_webhook_checks(webhook_url: str, signing_secret: str, tenant_id: UUID | str, *,
                       peer_signing_secret: str | None = None, next_signing_secret: str | None = None,
                       retired_signing_secrets: list[str] | tuple[str, ...] = (), suspended: bool = False,
                       timeout: float = 10.0, attempts: int = 4, backoff: float = 0.25) -> CheckReport:
    """POST a signed probe (expect 2xx; 423 when `suspended`), given `next_signing_secret` one signed with it
    (the same), then unsigned, randomly signed, peer-signed (given `peer_signing_secret`) and retired-signed
    (one per `retired_signing_secrets`) probes (expect 401 or 403 each). Results come in that order."""
    parts = urlsplit(webhook_url)
    # Credentials in the URL are never echoed back in a report.
    shown = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    live = [secret for secret in (signing_secret, next_signing_secret) if secret is not None]
    retired = [secret for secret in dict.fromkeys(retired_signing_secrets) if secret not in live]
    names = [SUSPENDED_REFUSED if suspended else SIGNED_ACCEPTED]
    if next_signing_secret is not None and not suspended:
        names.append(NEXT_SECRET_ACCEPTED)
    names += [UNSIGNED_REFUSED, WRONG_SIGNATURE_REFUSED]
    if peer_signing_secret is not None:
        names.append(PEER_SECRET_REFUSED)
    if retired:
        names.append(RETIRED_SECRET_REFUSED)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        detail = f"webhook URL {shown!r} is not an http(s) URL with a host"
        return CheckReport([CheckResult(name, False, detail) for name in names])

    deadline = time.monotonic() + timeout

    def send(secret: str | None) -> _Answer:
        body = _probe_body(tenant_id)
        signature = None if secret is None else sign_body(secret, body)
        return _post(webhook_url, body, signature, deadline, attempts, backoff)

    if suspended:
        results = [_judge_suspended([send(secret) for secret in live], shown, timeout)]
    else:
        results = [_judge_signed(send(signing_secret), shown, timeout)]
        if next_signing_secret is not None:
            results.append(_judge_signed(send(next_signing_secret), shown, timeout, NEXT_SECRET_ACCEPTED,
                                         "probe signed with the next secret"))
    results += [
        _judge_refusal(UNSIGNED_REFUSED, send(None), shown, timeout),
        _judge_refusal(WRONG_SIGNATURE_REFUSED, send(secrets.token_hex(32)), shown, timeout),
    ]
    if peer_signing_secret is not None:
        if peer_signing_secret == signing_secret:
            # The probe would be correctly signed, so its answer could not show anything about isolation.
            results.append(CheckResult(PEER_SECRET_REFUSED, False,
                                       "the peer tenant's signing secret is the same as this tenant's: "
                                       "every tenant needs a signing secret of its own"))
        else:
            results.append(_judge_refusal(PEER_SECRET_REFUSED, send(peer_signing_secret), shown, timeout))
    if retired:
        results.append(_judge_all_refused(RETIRED_SECRET_REFUSED, [send(secret) for secret in retired], shown,
                                          timeout))
    return CheckReport(results)


def _probe_body(tenant_id: UUID | str) -> bytes:
    return json.dumps(
        {
            "event": PROBE_EVENT,
            "tenant_id": str(tenant_id),
            "nonce": secrets.token_hex(16),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")


def _post(url: str, body: bytes, signature: str | None, deadline: float, attempts: int, backoff: float) -> _Answer:
    opener = urllib.request.build_opener(_NoRedirects)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
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


def _judge_signed(answer: _Answer, shown: str, timeout: float, name: str = SIGNED_ACCEPTED,
                  probe: str = "signed probe") -> CheckResult:
    status = answer.status
    if status is not None and 200 <= status < 300:
        return CheckResult(name, True, f"{probe} accepted by {shown}: HTTP {status}")
    if status is None:
        detail = _unanswered(answer, shown, timeout)
    elif status in (401, 403):
        detail = (f"{probe} refused by {shown} (HTTP {status}): the endpoint's signing secret for this tenant "
                  "differs from the one deployed")
    elif status == SUSPENDED_STATUS:
        detail = (f"{probe} refused by {shown} with HTTP {status}: the endpoint holds the tenant as suspended, "
                  "but its tenant file says active; run `tenantctl up` for it")
    elif 300 <= status < 400:
        detail = f"{shown} redirects (HTTP {status}); redirects are not followed: configure the final URL"
    else:
        detail = f"expected 2xx for the {probe} from {shown}, got HTTP {status} {answer.reason} ({_tries(answer)})"
    return CheckResult(name, False, detail)


def _judge_suspended(answers: list[_Answer], shown: str, timeout: float) -> CheckResult:
    """A suspended tenant: every correctly signed probe must get 423."""
    for answer in answers:
        status = answer.status
        if status == SUSPENDED_STATUS:
            continue
        if status is None:
            detail = _unanswered(answer, shown, timeout)
        elif 200 <= status < 300:
            detail = (f"CRITICAL: the tenant is suspended, but {shown} accepted a correctly signed probe (HTTP "
                      f"{status}): its tenant_configs row is not marked suspended, or the endpoint ignores it")
        else:
            detail = (f"expected HTTP {SUSPENDED_STATUS} (suspended) for a correctly signed probe from {shown}, got "
                      f"HTTP {status} {answer.reason} ({_tries(answer)})")
        return CheckResult(SUSPENDED_REFUSED, False, detail)
    return CheckResult(SUSPENDED_REFUSED, True, (
        f"the tenant is suspended: {len(answers)} correctly signed probe(s) refused by {shown} with HTTP "
        f"{SUSPENDED_STATUS}"))


def _judge_all_refused(name: str, answers: list[_Answer], shown: str, timeout: float) -> CheckResult:
    results = [_judge_refusal(name, answer, shown, timeout) for answer in answers]
    failed = [result for result in results if not result.ok]
    return failed[0] if failed else results[0]


def _judge_refusal(name: str, answer: _Answer, shown: str, timeout: float) -> CheckResult:
    probe, accepted_kind, sent = _REFUSALS[name]
    status = answer.status
    if status in (401, 403):
        return CheckResult(name, True, f"{probe} refused by {shown}: HTTP {status}")
    if status is None:
        detail = _unanswered(answer, shown, timeout)
    elif 200 <= status < 300:
        detail = f"CRITICAL: endpoint accepts {accepted_kind}: {shown} answered HTTP {status} to {sent}"
    else:
        detail = (f"expected 401 or 403 for the {probe} from {shown}, got HTTP {status} {answer.reason} "
                  f"({_tries(answer)})")
    return CheckResult(name, False, detail)
