"""TenantConfigRow, serialized by the SDK and run by Pulumi's own provider host against a real PostgreSQL."""

from __future__ import annotations

import secrets
import uuid

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.dynamic.tenant_config_row import TenantConfigRowProvider
from tenantctl import credentials
from tenantctl.provider_host import ProviderHostError

URN = "urn:pulumi:dev::tenant-onboarding::tenant-onboarding:index:TenantStack$pulumi-python:dynamic:Resource::t-row"
PROVIDER = serialize_provider(TenantConfigRowProvider())


def props(app_db, tenant_id=None, **overrides):
    values = {
        "__provider": PROVIDER,
        "tenant_id": str(tenant_id or uuid.uuid4()),
        "name": "Acme Corp MSP",
        "servicedesk_url": "https://acme.sdpondemand.com",
        "enhancement_preferences": {"max_tokens": 500, "output_format": "markdown"},
        "servicedesk_api_key": "sdp-" + secrets.token_hex(8),
        "webhook_signing_secret": secrets.token_urlsafe(36),
        "fernet_key": app_db.fernet_key,
        "database_url": app_db.provisioner_dsn,
        "purge_on_delete": False,
    }
    values.update(overrides)
    return values


def row(app_db, tenant_id):
    rows = app_db.execute(
        "SELECT id, name, servicedesk_api_key_encrypted, webhook_signing_secret_encrypted, enhancement_preferences,"
        " updated_at FROM tenant_configs WHERE tenant_id = %s", (tenant_id,),
    )
    return rows[0] if rows else None


def test_provider_is_serialized_by_reference_not_by_value():
    # dill pickles an importable class by reference: the host imports it from the project, so no
    # client, connection or closure travels inside the serialized string.
    import base64

    assert b"components.dynamic.tenant_config_row" in base64.b64decode(PROVIDER)
    assert len(PROVIDER) < 400


def test_host_process_runs_in_project_root(host):
    import os

    from tests.conftest import ROOT

    assert os.readlink(f"/proc/{host.process.pid}/cwd") == str(ROOT)


def test_create_inserts_encrypted_row(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    stored = row(app_db, news["tenant_id"])
    assert str(stored[0]) == row_id and stored[1] == "Acme Corp MSP"
    assert credentials.decrypt(app_db.fernet_key, stored[2]) == news["servicedesk_api_key"]
    assert credentials.decrypt(app_db.fernet_key, stored[3]) == news["webhook_signing_secret"]
    assert news["servicedesk_api_key"] not in stored[2]
    assert stored[4] == news["enhancement_preferences"]
    assert outs["adopted"] is False and len(outs["revision"]) == 16
    assert "servicedesk_api_key" not in outs and "webhook_signing_secret" not in outs


def test_sql_is_parameterized(host, app_db):
    hostile = "O'Brien'); DROP TABLE tenant_configs; --"
    news = props(app_db, name=hostile)
    host.create(URN, news)
    assert row(app_db, news["tenant_id"])[1] == hostile


def test_hand_onboarded_row_is_adopted_not_duplicated(host, app_db):
    existing = app_db.add_tenant(name="Hand made")
    old_id = row(app_db, existing.tenant_id)[0]
    row_id, outs = host.create(URN, props(app_db, tenant_id=existing.tenant_id))
    assert outs["adopted"] is True and row_id == str(old_id)
    assert app_db.execute("SELECT count(*) FROM tenant_configs")[0][0] == 1
    assert row(app_db, existing.tenant_id)[1] == "Acme Corp MSP"


def test_unchanged_tenant_diffs_to_no_change(host, app_db):
    news = props(app_db)
    _id, outs = host.create(URN, news)
    assert host.diff(URN, _id, outs, dict(news)).changes is False


@pytest.mark.parametrize("field,value", [
    ("name", "Renamed"),
    ("servicedesk_url", "https://new.example.com"),
    ("enhancement_preferences", {"max_tokens": 900}),
    ("servicedesk_api_key", "rotated-key"),
    ("webhook_signing_secret", "rotated-secret"),
    ("purge_on_delete", True),
])
def test_each_change_is_seen(host, app_db, field, value):
    news = props(app_db)
    _id, outs = host.create(URN, news)
    diff = host.diff(URN, _id, outs, {**news, field: value})
    assert diff.changes is True and diff.replaces == []


def test_new_tenant_id_replaces(host, app_db):
    news = props(app_db)
    _id, outs = host.create(URN, news)
    assert host.diff(URN, _id, outs, {**news, "tenant_id": str(uuid.uuid4())}).replaces == ["tenant_id"]


def test_update_of_plain_field_does_not_reencrypt(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    before = row(app_db, news["tenant_id"])
    host.update(URN, row_id, outs, {**news, "name": "Acme Renamed"})
    after = row(app_db, news["tenant_id"])
    assert after[1] == "Acme Renamed"
    assert after[2] == before[2] and after[3] == before[3]
    assert after[5] > before[5]


def test_update_of_api_key_reencrypts_only_that_secret(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    before = row(app_db, news["tenant_id"])
    new_outs = host.update(URN, row_id, outs, {**news, "servicedesk_api_key": "rotated"})
    after = row(app_db, news["tenant_id"])
    assert credentials.decrypt(app_db.fernet_key, after[2]) == "rotated"
    assert after[3] == before[3]
    assert new_outs["revision"] != outs["revision"]


def test_purge_flag_alone_does_not_touch_the_row(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    before = row(app_db, news["tenant_id"])
    outs2 = host.update(URN, row_id, outs, {**news, "purge_on_delete": True})
    assert row(app_db, news["tenant_id"]) == before and outs2["purge_on_delete"] is True


def test_read_shows_drift_and_disappearance(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("UPDATE tenant_configs SET name = 'Edited by hand' WHERE tenant_id = %s", (news["tenant_id"],))
    read_id, read_outs = host.read(URN, row_id, outs)
    assert read_id == row_id and read_outs["name"] == "Edited by hand"
    assert host.diff(URN, row_id, read_outs, news).changes is True
    app_db.execute("DELETE FROM tenant_configs WHERE tenant_id = %s", (news["tenant_id"],))
    gone_id, _ = host.read(URN, row_id, outs)
    assert gone_id == ""


def test_delete_refuses_while_history_exists(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (news["tenant_id"],))
    with pytest.raises(ProviderHostError) as info:
        host.delete(URN, row_id, outs)
    assert "still has history rows (1 ticket_history)" in info.value.message
    assert "purge_data: true" in info.value.message
    assert row(app_db, news["tenant_id"]) is not None


def test_delete_with_purge_marker_removes_history_and_row(host, app_db):
    news = props(app_db, purge_on_delete=True)
    row_id, outs = host.create(URN, news)
    other = app_db.add_tenant()
    for tenant in (news["tenant_id"], str(other.tenant_id)):
        app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (tenant,))
    host.delete(URN, row_id, outs)
    assert row(app_db, news["tenant_id"]) is None
    assert app_db.execute("SELECT tenant_id FROM enhancement_history") == [(other.tenant_id,)]
    assert row(app_db, other.tenant_id) is not None


def test_delete_without_history_removes_only_this_row(host, app_db):
    other = app_db.add_tenant()
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    host.delete(URN, row_id, outs)
    assert row(app_db, news["tenant_id"]) is None and row(app_db, other.tenant_id) is not None


def test_check_reports_bad_inputs(host, app_db):
    _inputs, failures = host.check(URN, {}, props(app_db, tenant_id="not-a-uuid", fernet_key="short"))
    assert {prop for prop, _reason in failures} == {"tenant_id", "fernet_key"}


def test_unreachable_database_is_a_readable_error_without_password(host, app_db):
    news = props(app_db, database_url="postgresql://tenant_provisioner:hunter2@127.0.0.1:1/app")
    with pytest.raises(ProviderHostError) as info:
        host.create(URN, news)
    assert "cannot connect to tenant_provisioner@127.0.0.1:1/app" in info.value.message
    assert "hunter2" not in info.value.message and "Traceback" not in info.value.message
