"""TenantConfigRow and a tenant's lifecycle, through Pulumi's own provider host against a real PostgreSQL:
suspension (`suspended_at`) and the next signing secret of a rotation, each an update of the same row."""

from __future__ import annotations

import secrets

from tenancy import credentials
from tests.components.dynamic.test_tenant_config_row import URN, props


def _lifecycle(app_db, tenant_id):
    return app_db.execute(
        "SELECT id, created_at, suspended_at, webhook_next_signing_secret_encrypted FROM tenant_configs"
        " WHERE tenant_id = %s", (tenant_id,))[0]


def test_suspend_and_resume_update_the_same_row_and_keep_its_history(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (news["tenant_id"],))
    before = _lifecycle(app_db, news["tenant_id"])
    assert before[2] is None and outs["suspended"] is False

    suspended = {**news, "suspended": True}
    diff = host.diff(URN, row_id, outs, suspended)
    assert diff.changes is True and diff.replaces == []
    outs = host.update(URN, row_id, outs, suspended)
    during = _lifecycle(app_db, news["tenant_id"])
    assert during[:2] == before[:2] and during[2] is not None and outs["suspended"] is True

    outs = host.update(URN, row_id, outs, {**suspended, "name": "Renamed while suspended"})
    assert _lifecycle(app_db, news["tenant_id"])[2] == during[2], "a later update keeps when it was suspended"

    outs = host.update(URN, row_id, outs, {**news, "name": "Renamed while suspended"})
    after = _lifecycle(app_db, news["tenant_id"])
    assert after[:2] == before[:2] and after[2] is None and outs["suspended"] is False
    assert app_db.execute("SELECT count(*) FROM enhancement_history WHERE tenant_id = %s",
                          (news["tenant_id"],)) == [(1,)]


def test_a_suspension_is_seen_on_refresh(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("UPDATE tenant_configs SET suspended_at = now() WHERE tenant_id = %s", (news["tenant_id"],))

    _id, read = host.read(URN, row_id, outs)

    assert read["suspended"] is True and read["revision"] != outs["revision"]


def test_the_next_secret_is_stored_encrypted_beside_the_current_one_and_cleared_after(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    next_secret = secrets.token_urlsafe(36)

    rotating = {**news, "webhook_next_signing_secret": next_secret}
    assert host.diff(URN, row_id, outs, rotating).changes is True
    outs = host.update(URN, row_id, outs, rotating)
    stored = _lifecycle(app_db, news["tenant_id"])[3]
    assert credentials.decrypt(app_db.fernet_key, stored) == next_secret and next_secret not in stored
    assert host.diff(URN, row_id, outs, dict(rotating)).changes is False

    finished = {**news, "webhook_signing_secret": next_secret}
    outs = host.update(URN, row_id, outs, finished)
    current = app_db.execute("SELECT webhook_signing_secret_encrypted FROM tenant_configs WHERE tenant_id = %s",
                             (news["tenant_id"],))[0][0]
    assert _lifecycle(app_db, news["tenant_id"])[3] is None
    assert credentials.decrypt(app_db.fernet_key, current) == next_secret
    assert str(_lifecycle(app_db, news["tenant_id"])[0]) == row_id


def test_state_from_before_suspension_and_rotation_diffs_to_no_change(host, app_db):
    """A stack applied by the release before: no `suspended`, no next-secret fingerprint in its state. An active
    tenant without a rotation is no change (no fleet-wide row update on the first `up` of this release)."""
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    legacy = {k: v for k, v in outs.items() if k not in ("suspended", "webhook_next_signing_secret_fingerprint")}

    assert host.diff(URN, row_id, legacy, dict(news)).changes is False
