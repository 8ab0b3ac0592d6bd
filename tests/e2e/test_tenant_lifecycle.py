"""Suspend, resume and a signing-secret rotation on the real engine, in one rehearsal of one premium tenant.

Three `up`s: onboard; suspend and start a rotation (one reviewed change); resume and finish the rotation (another).
Between them the application's reference receiver (services.receiver, reading the row as the application does) is
asked directly, and during the last two a sender signs webhooks with the secret that stays valid throughout, which
may be refused as suspended (423) but never for its signature (401). While suspended, both secrets' signatures are
judged good (423, not 401): the overlap holds both. The post-deploy check proves each phase on its own (the up
fails if not). That a webhook signed with either secret is accepted (202) during an active overlap is proved by
tests/services/test_receiver.py and the webhook check's tests, without another engine run.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fleet import rehearsal_cluster
from fleet.rehearsal import STACK
from services.receiver import WebhookReceiver
from tenancy.credentials import sign_body
from tenancy.loader import parse_tenant_file
from tenancy.signing_rotation import finish_rotation, start_rotation
from tenancy.signing_secrets import read_webhook_secrets

pytestmark = pytest.mark.kubernetes_api  # the rehearsal applies to its own API server

BODY = b'{"event":"ticket_created","ticket_id":"42"}'


def _answer(receiver: WebhookReceiver, tenant_id: str, secret: str) -> int:
    return receiver.answer(f"tenant_id={tenant_id}", sign_body(secret, BODY), BODY)[0]


class _Sender:
    """Signs webhooks with `secrets` in a loop while an `up` runs, and keeps every answer."""

    def __init__(self, receiver: WebhookReceiver, tenant_id: str, secrets: list[str]) -> None:
        self.receiver, self.tenant_id, self.secrets = receiver, tenant_id, secrets
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.answers += [_answer(self.receiver, self.tenant_id, secret) for secret in self.secrets]

    def __enter__(self) -> _Sender:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _tenant(path: Path):
    tenant, problems = parse_tenant_file(path)
    assert not problems, problems
    return tenant


def _quota_pods(rehearsal) -> str:
    """The pods acme's quota admits, as the rehearsal's API server holds it (the e2e fixture keeps it running)."""
    kube = rehearsal_cluster.control_plane_for(rehearsal.state_dir)
    assert kube.adopt(), "the rehearsal left no API server running"
    try:
        reply = kube.request("GET", "/api/v1/namespaces/tenant-acme/resourcequotas/tenant-acme-quota")
        assert reply.ok, reply.message
        return str(reply.body["spec"]["hard"]["pods"])
    finally:
        kube.stop()  # lets go of the adopted server: the fixture's teardown stops it


def _as_the_release_before_left_it(rehearsal) -> None:
    """The signing secret under its unversioned name, as every stack applied before versioned secrets holds it:
    the next `up` must move it (the alias), not replace it (which would drop every webhook)."""
    [path] = rehearsal.state_dir.glob("backend/.pulumi/stacks/*/rehearsal.acme.json")
    text = path.read_text()
    versioned = 'RandomPassword::acme-webhook-signing-secret-v1"'
    assert versioned in text
    path.write_text(text.replace(versioned, 'RandomPassword::acme-webhook-signing-secret"'))


def test_suspend_resume_and_rotation_keep_the_row_and_drop_no_webhook(rehearsal, tenants_dir, app_db):
    (tenants_dir / "globex.yaml").unlink()  # one tenant: the fewest engine runs
    path = tenants_dir / "acme.yaml"
    tenant_id = str(_tenant(path).tenant_id)

    def row() -> tuple:
        return app_db.execute("SELECT id, created_at FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))[0]

    def secrets():
        return read_webhook_secrets(app_db.provisioner_dsn, tenant_id, app_db.fernet_key)

    def checks() -> dict:
        return rehearsal.stack(f"{STACK}.acme").outputs()["tenant"].value["checks"]

    assert rehearsal.up().ok
    _as_the_release_before_left_it(rehearsal)
    onboarded = row()
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (tenant_id,))
    old = secrets().current

    with WebhookReceiver(app_db.app_dsn, app_db.fernet_key) as receiver:
        assert _answer(receiver, tenant_id, old) == 202

        # Suspend, and start a rotation in the same reviewed change.
        _edit(path, "tier: premium\n", "tier: premium\nstate: suspended\n")
        start_rotation(path, _tenant(path))
        with _Sender(receiver, tenant_id, [old]) as during_suspend:
            assert rehearsal.up(force=False).ok
        suspended = secrets()
        new = suspended.next
        # The secret moved to its versioned name and kept its value (no replacement).
        assert suspended.suspended and suspended.current == old and new not in (None, old)
        assert _answer(receiver, tenant_id, old) == 423 and _answer(receiver, tenant_id, new) == 423
        assert _answer(receiver, tenant_id, "not-the-secret") == 401
        assert _quota_pods(rehearsal) == "0"
        assert checks()["webhook_suspended_refused"] and checks()["kubernetes_suspended_no_pod"]

        # Resume and finish the rotation: the new secret is never refused for its signature on the way, and
        # accepted afterwards; the old one is refused.
        _edit(path, "state: suspended\n", "")
        finish_rotation(path, _tenant(path))
        with _Sender(receiver, tenant_id, [new]) as during_finish:
            assert rehearsal.up(force=False).ok
        finished = secrets()
        assert not finished.suspended and finished.current == new and finished.next is None
        assert _answer(receiver, tenant_id, new) == 202 and _answer(receiver, tenant_id, old) == 401
        assert _quota_pods(rehearsal) == "20"
        assert checks()["webhook_signed_probe_accepted"] and checks()["webhook_retired_secret_refused"]

    assert row() == onboarded, "the row keeps its id and created_at"
    assert app_db.execute("SELECT count(*) FROM enhancement_history WHERE tenant_id = %s", (tenant_id,)) == [(1,)]
    assert during_suspend.answers and set(during_suspend.answers) <= {202, 423}, during_suspend.answers
    assert during_finish.answers and set(during_finish.answers) <= {202, 423}, during_finish.answers
