"""An environment's id (fleet rule 1): made once beside the state, never regenerated, and the database's claim."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pytest

from fleet import environment_id as ids
from fleet.environment_id import EnvironmentIdError
from tenancy import environment_claim


def test_the_id_is_made_once_and_then_read_back(tmp_path):
    assert ids.recorded_id(tmp_path, "dev") is None  # reading makes nothing (a preview)
    assert not ids.id_path(tmp_path, "dev").exists()
    made = ids.recorded_id(tmp_path, "dev", create=True)
    assert uuid.UUID(made) and ids.recorded_id(tmp_path, "dev", create=True) == made
    assert ids.recorded_id(tmp_path, "prod", create=True) != made


def test_runs_making_the_id_at_once_agree_on_one(tmp_path):
    found, start = [], threading.Barrier(8)

    def make():
        start.wait()
        found.append(ids.recorded_id(tmp_path, "dev", create=True))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and found[0] == json.loads(ids.id_path(tmp_path, "dev").read_text())["environment_id"]


def test_an_unreadable_id_is_never_replaced(tmp_path):
    path = ids.id_path(tmp_path, "dev")
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    with pytest.raises(EnvironmentIdError, match="does not hold an environment id"):
        ids.recorded_id(tmp_path, "dev", create=True)
    assert path.read_text() == "{}"


A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"


def claim(dsn: str, environment: str, name: str) -> None:
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        environment_claim.claim_database(cursor, environment, name)


def test_the_database_holds_one_environment_and_names_it_to_another(app_db):
    claim(app_db.provisioner_dsn, A, "dev")
    claim(app_db.provisioner_dsn, A, "dev")  # the owner again: fine
    with pytest.raises(EnvironmentIdError) as info:
        claim(app_db.provisioner_dsn, B, "rehearsal")
    assert str(info.value) == (f"this database belongs to environment dev ({A}), not to rehearsal ({B}): two "
                               "environments must not share a database; nothing was written")
    with pytest.raises(psycopg.errors.UniqueViolation):  # the table itself allows one row
        app_db.execute("INSERT INTO tenantctl_environments (environment_id, name) VALUES (%s, 'x')", (B,))


def test_two_first_claims_at_once_leave_one_owner(app_db):
    with psycopg.connect(app_db.provisioner_dsn) as first, first.cursor() as cursor:
        # not committed yet: the other claim waits on the unique index
        environment_claim.claim_database(cursor, A, "dev")
        outcome = {}

        def second():
            try:
                claim(app_db.provisioner_dsn, B, "rehearsal")
                outcome["claimed"] = True
            except EnvironmentIdError as exc:
                outcome["refused"] = str(exc)

        worker = threading.Thread(target=second)
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive()
    worker.join(timeout=30)
    assert A in outcome.get("refused", "")
    assert app_db.execute("SELECT environment_id::text FROM tenantctl_environments") == [(A,)]


def test_release_gives_up_only_its_own_claim(app_db):
    claim(app_db.provisioner_dsn, A, "dev")
    environment_claim.release_database(app_db.provisioner_dsn, B)
    assert app_db.execute("SELECT count(*) FROM tenantctl_environments")[0][0] == 1
    environment_claim.release_database(app_db.provisioner_dsn, A)
    assert app_db.execute("SELECT count(*) FROM tenantctl_environments")[0][0] == 0


def test_the_table_belongs_to_app_owner_and_the_application_only_reads_it(app_db):
    owner = app_db.execute("SELECT pg_get_userbyid(relowner) FROM pg_class"
                           " WHERE oid = 'tenantctl_environments'::regclass")
    rights = app_db.execute(
        "SELECT r, p, has_table_privilege(r, 'tenantctl_environments', p) FROM unnest(ARRAY['app_user', "
        "'tenant_provisioner']) r, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p")
    granted = {(role, privilege) for role, privilege, has in rights if has}
    assert owner == [("app_owner",)]
    assert granted == {("app_user", "SELECT"), ("tenant_provisioner", "SELECT"), ("tenant_provisioner", "INSERT"),
                       ("tenant_provisioner", "DELETE")}
