"""TenantConfigRow, serialized by the SDK and run by Pulumi's own provider host against a real PostgreSQL."""

from __future__ import annotations

import secrets
import uuid

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.dynamic.tenant_config_row import TenantConfigRowProvider
from tenancy import credentials
from tests.components.dynamic.provider_host import ProviderHostError

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
    ("llm_api_key", "sk-client-own-key"),
    ("fernet_key", "rotated"),
    ("environment_id", "6f1c0a52-4f0e-4d8e-9a57-0b6f3c1f2d10"),
    ("environment_name", "staging"),
])
def test_each_change_is_seen(host, app_db, field, value):
    from cryptography.fernet import Fernet

    if field == "fernet_key":  # a rotated application key re-encrypts the secrets; it is no new row
        value = Fernet.generate_key().decode()
    news = props(app_db)
    _id, outs = host.create(URN, news)
    diff = host.diff(URN, _id, outs, {**news, field: value})
    assert diff.changes is True and diff.replaces == []


def test_new_tenant_id_replaces(host, app_db):
    news = props(app_db)
    _id, outs = host.create(URN, news)
    assert host.diff(URN, _id, outs, {**news, "tenant_id": str(uuid.uuid4())}).replaces == ["tenant_id"]


@pytest.mark.parametrize("new_url", [
    lambda dsn: dsn + ("&" if "?" in dsn else "?") + "sslmode=disable",
    lambda dsn: dsn.replace("tenant_provisioner@", "tenant_provisioner:rotated-password@"),
])
def test_changed_database_url_updates_state_and_keeps_the_row_and_history(host, app_db, new_url):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (news["tenant_id"],))
    before = row(app_db, news["tenant_id"])
    moved = {**news, "database_url": new_url(app_db.provisioner_dsn)}

    diff = host.diff(URN, row_id, outs, moved)
    new_outs = host.update(URN, row_id, outs, moved)

    assert diff.changes is True and diff.replaces == []
    assert new_outs["database_url"] == moved["database_url"] and new_outs["owner_token"] == outs["owner_token"]
    assert row(app_db, news["tenant_id"]) == before
    assert app_db.history_row_count() == 1


def test_create_records_an_owner_token_in_the_row(host, app_db):
    news = props(app_db)
    _id, outs = host.create(URN, news)
    owner = app_db.execute("SELECT provisioning_owner FROM tenant_configs WHERE tenant_id = %s",
                           (news["tenant_id"],))[0][0]
    assert owner == outs["owner_token"] and len(owner) == 36


def _taken_over(host, app_db):
    """The engine's order for a rename or replacement: the new resource creates (adopts), then the old one deletes."""
    news = props(app_db)
    old_id, old_outs = host.create(URN, news)
    app_db.execute("INSERT INTO enhancement_history (tenant_id) VALUES (%s)", (news["tenant_id"],))
    renamed_urn = URN.replace("::t-row", "::t-row-renamed")
    new_id, new_outs = host.create(renamed_urn, {**news, "name": "Acme Renamed"})
    return news, (old_id, old_outs), (new_id, new_outs)


def test_delete_after_a_takeover_keeps_the_row_and_history(host, app_db):
    news, (old_id, old_outs), (new_id, new_outs) = _taken_over(host, app_db)

    host.delete(URN, old_id, old_outs)

    assert new_outs["adopted"] is True and new_id == old_id
    assert row(app_db, news["tenant_id"])[1] == "Acme Renamed"
    assert app_db.history_row_count() == 1


def test_delete_with_purge_after_a_takeover_purges_nothing(host, app_db):
    news, (old_id, old_outs), _new = _taken_over(host, app_db)

    host.delete(URN, old_id, {**old_outs, "purge_on_delete": True})

    assert row(app_db, news["tenant_id"]) is not None and app_db.history_row_count() == 1


def test_update_and_refresh_after_a_takeover_leave_the_row_to_its_new_owner(host, app_db):
    news, (old_id, old_outs), _new = _taken_over(host, app_db)

    with pytest.raises(ProviderHostError) as info:
        host.update(URN, old_id, old_outs, {**news, "name": "Stale stack"})
    gone_id, _outs = host.read(URN, old_id, old_outs)

    assert "managed by another resource" in info.value.message and "pulumi refresh" in info.value.message
    assert row(app_db, news["tenant_id"])[1] == "Acme Renamed"
    assert gone_id == ""


def test_delete_of_a_row_remade_by_hand_leaves_it(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("UPDATE tenant_configs SET provisioning_owner = NULL WHERE tenant_id = %s", (news["tenant_id"],))

    host.delete(URN, row_id, outs)

    assert row(app_db, news["tenant_id"]) is not None


def test_state_from_before_owner_tokens_still_owns_its_row(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    app_db.execute("UPDATE tenant_configs SET provisioning_owner = NULL WHERE tenant_id = %s", (news["tenant_id"],))
    legacy = {k: v for k, v in outs.items() if k != "owner_token"}

    new_outs = host.update(URN, row_id, legacy, {**news, "name": "Claimed"})
    host.delete(URN, row_id, new_outs)

    assert new_outs["owner_token"] and row(app_db, news["tenant_id"]) is None


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


def test_delete_without_purge_waits_for_an_inflight_history_insert_and_refuses(host, app_db):
    import threading
    import time

    import psycopg

    news = props(app_db)
    row_id, outs = host.create(URN, news)
    outcome: dict = {}

    def delete() -> None:
        try:
            host.delete(URN, row_id, outs)
            outcome["deleted"] = True
        except ProviderHostError as exc:
            outcome["refused"] = exc.message

    with psycopg.connect(app_db.app_dsn) as app:  # the application, mid-request, inserting history
        app.execute("SELECT set_config('app.current_tenant_id', %s, true)", (news["tenant_id"],))
        app.execute("INSERT INTO ticket_history (tenant_id) VALUES (%s)", (news["tenant_id"],))
        worker = threading.Thread(target=delete)
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the delete must wait for the in-flight insert, not count around it"
        app.commit()
    worker.join(timeout=30)

    assert "still has history rows (1 ticket_history)" in outcome.get("refused", "")
    assert row(app_db, news["tenant_id"]) is not None and app_db.history_row_count() == 1


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


def test_diff_with_secrets_the_engine_does_not_know_yet_is_a_change_not_an_error(host, app_db):
    from pulumi.runtime import rpc

    news = props(app_db)
    row_id, outs = host.create(URN, news)
    pending = {**news, "servicedesk_api_key": rpc.UNKNOWN, "webhook_signing_secret": rpc.UNKNOWN}

    diff = host.diff(URN, row_id, outs, pending)

    assert diff.changes is True and diff.replaces == []


def _llm_column(app_db, tenant_id):
    return app_db.execute("SELECT llm_api_key_encrypted FROM tenant_configs WHERE tenant_id = %s", (tenant_id,))[0][0]


def test_a_tenant_without_its_own_llm_key_has_none_stored(host, app_db):
    news = props(app_db)
    _id, outs = host.create(URN, news)
    assert _llm_column(app_db, news["tenant_id"]) is None and outs["llm_api_key_fingerprint"] == "absent"
    assert host.diff(URN, _id, outs, dict(news)).changes is False


def test_an_llm_key_is_stored_encrypted_and_changes_alone(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    before = row(app_db, news["tenant_id"])
    with_key = {**news, "llm_api_key": "sk-client-own-key"}

    assert host.diff(URN, row_id, outs, with_key).changes is True
    new_outs = host.update(URN, row_id, outs, with_key)
    after = row(app_db, news["tenant_id"])
    stored = _llm_column(app_db, news["tenant_id"])

    assert credentials.decrypt(app_db.fernet_key, stored) == "sk-client-own-key"
    assert "sk-client-own-key" not in stored
    assert after[2] == before[2] and after[3] == before[3]  # the other secrets are not re-encrypted
    assert new_outs["revision"] != outs["revision"]
    host.update(URN, row_id, new_outs, news)  # the client goes back to the platform's key
    assert _llm_column(app_db, news["tenant_id"]) is None


# One environment, one owner (fleet rule 1): the first environment that writes a row claims the database.
ENV_A = "11111111-1111-4111-8111-111111111111"
ENV_B = "22222222-2222-4222-8222-222222222222"


def claims(app_db):
    return [(str(i), n) for i, n in app_db.execute("SELECT environment_id, name FROM tenantctl_environments")]


def test_the_first_environment_to_write_claims_the_database(host, app_db):
    host.create(URN, props(app_db, environment_id=ENV_A, environment_name="dev"))
    assert claims(app_db) == [(ENV_A, "dev")]


def test_another_environment_is_refused_with_both_ids_and_changes_nothing(host, app_db):
    news = props(app_db, environment_id=ENV_A, environment_name="dev")
    row_id, outs = host.create(URN, news)
    before = row(app_db, news["tenant_id"])
    owner = app_db.execute("SELECT provisioning_owner FROM tenant_configs")[0][0]
    other_urn = URN.replace("urn:pulumi:dev::", "urn:pulumi:rehearsal::")

    with pytest.raises(ProviderHostError) as adopt:  # the same tenant file in another environment: a takeover
        host.create(other_urn, {**news, "name": "Taken", "environment_id": ENV_B, "environment_name": "rehearsal"})
    with pytest.raises(ProviderHostError) as new_tenant:
        host.create(other_urn, props(app_db, environment_id=ENV_B, environment_name="rehearsal"))

    for refused in (adopt, new_tenant):
        assert ENV_A in refused.value.message and ENV_B in refused.value.message
        assert "dev" in refused.value.message and "rehearsal" in refused.value.message
        assert "Traceback" not in refused.value.message and "\n" not in refused.value.message
    assert row(app_db, news["tenant_id"]) == before
    assert app_db.execute("SELECT count(*), max(provisioning_owner) FROM tenant_configs")[0] == (1, owner)
    assert claims(app_db) == [(ENV_A, "dev")]
    # The owner goes on as before.
    host.update(URN, row_id, outs, {**news, "name": "Still ours"})
    assert row(app_db, news["tenant_id"])[1] == "Still ours"


def test_an_update_from_another_environment_is_refused(host, app_db):
    news = props(app_db, environment_id=ENV_A, environment_name="dev")
    row_id, outs = host.create(URN, news)
    moved = {**news, "environment_id": ENV_B, "environment_name": "rehearsal"}
    for change in ({}, {"name": "Taken"}):  # state only, and a real write
        with pytest.raises(ProviderHostError, match=f"belongs to environment dev \\({ENV_A}\\)"):
            host.update(URN, row_id, outs, {**moved, **change})
    assert row(app_db, news["tenant_id"])[1] == "Acme Corp MSP"


def test_a_row_from_before_environment_ids_is_claimed_by_an_update_without_touching_it(host, app_db):
    news = props(app_db)
    row_id, outs = host.create(URN, news)
    before = row(app_db, news["tenant_id"])
    upgraded = {**news, "environment_id": ENV_A, "environment_name": "dev"}

    diff = host.diff(URN, row_id, outs, upgraded)
    new_outs = host.update(URN, row_id, outs, upgraded)

    assert diff.changes is True and diff.replaces == []
    assert row(app_db, news["tenant_id"]) == before and claims(app_db) == [(ENV_A, "dev")]
    assert new_outs["environment_id"] == ENV_A
    assert host.diff(URN, row_id, new_outs, upgraded).changes is False


def test_without_an_environment_id_nothing_is_claimed_or_checked(host, app_db):
    app_db.execute("INSERT INTO tenantctl_environments (environment_id, name) VALUES (%s, 'dev')", (ENV_A,))
    host.create(URN, props(app_db))
    assert claims(app_db) == [(ENV_A, "dev")]


def test_a_database_without_the_environments_table_is_refused(host, app_db):
    app_db.execute("DROP TABLE tenantctl_environments")
    news = props(app_db, environment_id=ENV_A, environment_name="dev")
    with pytest.raises(ProviderHostError, match="no tenantctl_environments table"):
        host.create(URN, news)
    assert row(app_db, news["tenant_id"]) is None


def test_check_refuses_an_environment_id_that_is_not_a_uuid(host, app_db):
    _inputs, failures = host.check(URN, {}, props(app_db, environment_id="dev"))
    assert [prop for prop, _reason in failures] == ["environment_id"]
