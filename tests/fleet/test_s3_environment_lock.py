"""The environment lock and id on an S3 backend (fleet rules 1 and 5), against moto's S3 server: the same lock
and id as on a folder, kept in the bucket beside Pulumi's state with S3's conditional writes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from fleet import environment_id as ids
from fleet import environment_lock as lock
from fleet.environment_id import EnvironmentIdError
from fleet.environment_lock import Holder, LockError, LockHeld
from fleet.s3_backend_url import parse_s3_url
from fleet.s3_records import S3Records
from tenancy import environment_claim

ENV = "prod"
KEY = "fleet/prod/.tenantctl/locks/prod.json"
RACERS = 8


def never_asked(_repository, _run_id):
    raise AssertionError("the CI API must not be asked about a holder on this host")


@pytest.fixture
def sleeper():
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()


def store(bucket, prefix: str = "fleet/prod") -> S3Records:
    """A run's store; the client is shared (S3Records makes its own from the URL in a real run)."""
    return S3Records(parse_s3_url(bucket.url(prefix)), client=bucket.client())


def holder_for(pid: int, **changes) -> Holder:
    fields = {"pid": pid, "start_ticks": lock.process_start_ticks(pid), "session": None, "token": "someone-else"}
    return dataclasses.replace(lock.this_process("up"), **{**fields, **changes})


def plant(bucket, holder: Holder) -> None:
    bucket.client().put_object(Bucket=bucket.name, Key=KEY, Body=json.dumps(dataclasses.asdict(holder)).encode())


def recorded(bucket) -> dict:
    return json.loads(bucket.client().get_object(Bucket=bucket.name, Key=KEY)["Body"].read())


def dead_holder(sleeper) -> Holder:
    holder = holder_for(sleeper.pid)
    sleeper.kill()
    sleeper.wait()
    return holder


class Lockstep(S3Records):
    """A run that, once it has read a record, waits until every racer has: the order in which all of them see
    the same record (a stale lock, or no id yet) before any of them writes, the worst case. It notes what each
    of its creates and replaces answered."""

    def __init__(self, location, barrier: threading.Barrier, client) -> None:
        super().__init__(location, client)
        self.barrier, self.waited, self.writes = barrier, False, []

    def read(self, name):
        found = super().read(name)
        if not self.waited:
            self.waited = True
            self.barrier.wait(timeout=30)
        return found

    def create(self, name, text):
        self.writes.append(super().create(name, text))
        return self.writes[-1]

    def replace(self, name, text, version):
        self.writes.append(super().replace(name, text, version))
        return self.writes[-1]


def lockstep(bucket) -> list[Lockstep]:
    barrier = threading.Barrier(RACERS)
    return [Lockstep(parse_s3_url(bucket.url()), barrier, bucket.client()) for _ in range(RACERS)]


def unconditional_put(self, name, text, version=None):
    return self._call("write", name, "put_object", **self._put_arguments(text))[0] == 200


def race(stores: list[S3Records]) -> tuple[list[str], list[str]]:
    """Every store's run takes the lock at once: what each got, and what was said."""
    start, outcomes, said = threading.Barrier(len(stores)), [], []

    def run(records):
        start.wait(timeout=30)
        try:
            lock.acquire(records, ENV, "up", run_completed=never_asked, say=said.append)
            outcomes.append("took")
        except LockHeld:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(records,)) for records in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes), said


def test_the_lock_is_an_object_beside_the_state_and_release_removes_it(s3_bucket):
    records = store(s3_bucket)
    with lock.environment_lock(records, ENV, "up", run_completed=never_asked) as me:
        assert s3_bucket.keys() == [KEY]
        record = recorded(s3_bucket)
        assert record["token"] == me.token and record["pid"] == me.pid and record["boot_id"] == lock.boot_id()
        assert record["host"] and record["user"] and record["start_ticks"]
        # 0 is a real session id: a run whose session leader is outside its pid namespace (CI's runner)
        assert record["session"] == os.getsid(0)
    assert s3_bucket.keys() == []


def test_runs_racing_for_a_free_lock_end_with_one_holder(s3_bucket):
    outcomes, _said = race([store(s3_bucket) for _ in range(RACERS)])
    assert outcomes == ["refused"] * (RACERS - 1) + ["took"]


def test_runs_racing_for_a_stale_lock_end_with_one_holder(s3_bucket, sleeper):
    plant(s3_bucket, dead_holder(sleeper))
    outcomes, said = race(lockstep(s3_bucket))
    assert outcomes == ["refused"] * (RACERS - 1) + ["took"]
    assert len(said) == 1 and f"pid {sleeper.pid} is no longer running" in said[0]


def test_the_race_tests_catch_a_create_without_its_condition(s3_bucket, monkeypatch):
    # A store that writes the lock with a plain PutObject: every racer "takes" it.
    monkeypatch.setattr(S3Records, "create", unconditional_put)
    outcomes, _said = race([store(s3_bucket) for _ in range(RACERS)])
    assert outcomes.count("took") > 1


def test_the_race_tests_catch_a_clearing_without_its_condition(s3_bucket, sleeper, monkeypatch):
    # A store that replaces a stale lock with a plain PutObject: every racer that judged it stale goes on.
    monkeypatch.setattr(S3Records, "replace", unconditional_put)
    plant(s3_bucket, dead_holder(sleeper))
    outcomes, _said = race(lockstep(s3_bucket))
    assert outcomes.count("took") > 1


def test_a_live_holder_is_refused_in_one_line_naming_it(s3_bucket, sleeper):
    plant(s3_bucket, holder_for(sleeper.pid))
    with pytest.raises(LockHeld) as info:
        lock.acquire(store(s3_bucket), ENV, "up", run_completed=never_asked)
    message = str(info.value)
    assert f"pid {sleeper.pid}" in message and "\n" not in message
    assert "tenantctl unlock --env prod --force" in message
    assert recorded(s3_bucket)["pid"] == sleeper.pid


def test_a_dead_pids_lock_is_cleared_with_a_message_and_the_run_goes_on(s3_bucket, sleeper):
    plant(s3_bucket, dead_holder(sleeper))
    said = []
    with lock.environment_lock(store(s3_bucket), ENV, "up", run_completed=never_asked, say=said.append) as me:
        assert recorded(s3_bucket)["token"] == me.token
    assert len(said) == 1 and f"pid {sleeper.pid} is no longer running" in said[0]
    assert s3_bucket.keys() == []


def test_a_ci_holder_is_judged_by_the_ci_api(s3_bucket):
    ci = dataclasses.replace(lock.this_process("up"), host="runner-7", boot_id="other", pid=4242, start_ticks=1,
                             token="ci-holder", ci_run_id="987", ci_repository="acme/fleet")  # noqa: S106
    plant(s3_bucket, ci)
    with pytest.raises(LockHeld, match="GitHub run acme/fleet#987"):
        lock.acquire(store(s3_bucket), ENV, "up", run_completed=lambda _r, _i: False)
    said = []
    lock.release(store(s3_bucket), ENV, lock.acquire(store(s3_bucket), ENV, "up", say=said.append,
                                                     run_completed=lambda r, i: (r, i) == ("acme/fleet", "987")))
    assert "acme/fleet#987 has completed" in said[0]


def test_wait_takes_the_lock_once_its_holder_releases_it(s3_bucket):
    first = lock.acquire(store(s3_bucket), ENV, "up", run_completed=never_asked)
    threading.Timer(0.5, lock.release, (store(s3_bucket), ENV, first)).start()
    second = lock.acquire(store(s3_bucket), ENV, "destroy", wait=True, wait_timeout=10, poll=0.1,
                          run_completed=never_asked)
    assert recorded(s3_bucket)["token"] == second.token


def test_release_leaves_a_lock_that_is_no_longer_its_own(s3_bucket, sleeper):
    mine = lock.acquire(store(s3_bucket), ENV, "up", run_completed=never_asked)
    plant(s3_bucket, holder_for(sleeper.pid))  # forced away by an operator and taken by another run meanwhile
    lock.release(store(s3_bucket), ENV, mine)
    assert recorded(s3_bucket)["pid"] == sleeper.pid


def test_unlock_needs_force_for_a_live_holder_and_clears_a_stale_one_alone(s3_bucket, sleeper):
    plant(s3_bucket, holder_for(sleeper.pid))
    with pytest.raises(LockError, match="not provably stale"):
        lock.unlock(store(s3_bucket), ENV, force=False, run_completed=never_asked)
    assert "forced" in lock.unlock(store(s3_bucket), ENV, force=True, run_completed=never_asked)
    assert s3_bucket.keys() == []
    assert "not locked" in lock.unlock(store(s3_bucket), ENV, force=False)
    plant(s3_bucket, dead_holder(sleeper))
    assert "no longer running" in lock.unlock(store(s3_bucket), ENV, force=False, run_completed=never_asked)


def test_unlock_removes_only_the_lock_it_judged(s3_bucket, sleeper, monkeypatch):
    plant(s3_bucket, holder_for(sleeper.pid))
    records = store(s3_bucket)
    judged = records.read(lock.lock_name(ENV))
    plant(s3_bucket, holder_for(sleeper.pid, token="a-later-run"))  # noqa: S106 (changed between the look and the removal
    monkeypatch.setattr(records, "read", lambda _name: judged)
    with pytest.raises(LockError, match="changed while it was being removed"):
        lock.unlock(records, ENV, force=True, run_completed=never_asked)
    assert recorded(s3_bucket)["token"] == "a-later-run"  # noqa: S105


def test_a_bucket_that_cannot_be_used_is_one_line_not_a_traceback(s3_bucket):
    # Its own client, made from the URL as in a run.
    missing = S3Records(dataclasses.replace(parse_s3_url(s3_bucket.url()), bucket="no-such-bucket"))
    with pytest.raises(LockError) as info:
        lock.acquire(missing, ENV, "up", run_completed=never_asked)
    assert "s3://no-such-bucket/fleet/prod/.tenantctl/locks/prod.json" in str(info.value)
    assert "NoSuchBucket" in str(info.value) and "\n" not in str(info.value) and "testing" not in str(info.value)


# The environment id ----------------------------------------------------------------------------------------

def test_the_id_is_made_once_beside_the_state_and_then_read_back(s3_bucket):
    records = store(s3_bucket)
    assert ids.recorded_id(records, ENV) is None and s3_bucket.keys() == []  # reading makes nothing
    made = ids.recorded_id(records, ENV, create=True)
    assert uuid.UUID(made) and s3_bucket.keys() == ["fleet/prod/.tenantctl/environments/prod.json"]
    assert ids.recorded_id(store(s3_bucket), ENV, create=True) == made
    assert ids.recorded_id(store(s3_bucket, "fleet/staging"), ENV, create=True) != made


def make_ids(stores: list[Lockstep]) -> list[str]:
    found = []
    threads = [threading.Thread(target=lambda records: found.append(ids.recorded_id(records, ENV, create=True)),
                                args=(records,)) for records in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return found


def test_runs_making_the_id_at_once_agree_on_one(s3_bucket):
    stores = lockstep(s3_bucket)  # every run finds no id before any of them makes one
    found = make_ids(stores)
    assert len(found) == RACERS and len(set(found)) == 1
    assert sum(write for records in stores for write in records.writes) == 1


def test_the_id_race_test_catches_a_create_without_its_condition(s3_bucket, monkeypatch):
    monkeypatch.setattr(S3Records, "create", unconditional_put)
    stores = lockstep(s3_bucket)
    make_ids(stores)
    assert sum(write for records in stores for write in records.writes) > 1  # each run wrote an id of its own


def test_an_unreadable_id_is_never_replaced(s3_bucket):
    key = "fleet/prod/.tenantctl/environments/prod.json"
    s3_bucket.client().put_object(Bucket=s3_bucket.name, Key=key, Body=b"{}")
    with pytest.raises(EnvironmentIdError, match=f"s3://{s3_bucket.name}/{key} does not hold an environment id"):
        ids.recorded_id(store(s3_bucket), ENV, create=True)
    assert s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=key)["Body"].read() == b"{}"


def test_a_database_claimed_by_another_environments_id_is_refused(s3_bucket, app_db):
    prod = ids.recorded_id(store(s3_bucket, "fleet/prod"), "prod", create=True)
    other = ids.recorded_id(store(s3_bucket, "fleet/other"), "prod", create=True)
    with psycopg.connect(app_db.provisioner_dsn) as connection, connection.cursor() as cursor:
        environment_claim.claim_database(cursor, prod, "prod")
    with psycopg.connect(app_db.provisioner_dsn) as connection, connection.cursor() as cursor, \
            pytest.raises(EnvironmentIdError) as info:
        environment_claim.claim_database(cursor, other, "prod")
    assert prod in str(info.value) and other in str(info.value)
    assert app_db.execute("SELECT environment_id::text FROM tenantctl_environments") == [(prod,)]


# Beside the engine's own state -----------------------------------------------------------------------------

def test_the_records_sit_beside_the_engines_state_under_the_same_url(s3_bucket, tmp_path):
    """The real Pulumi CLI on the same backend URL: its `.pulumi/` and tenantctl's `.tenantctl/` share a prefix."""
    from fleet.state_folder import records_store

    engine = Path(sys.executable).parent / "pulumi"
    (tmp_path / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    records = records_store(s3_bucket.url(), tmp_path)
    with lock.environment_lock(records, ENV, "up", run_completed=never_asked):
        run = subprocess.run([str(engine), "stack", "init", "prod", "--non-interactive"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PULUMI_BACKEND_URL": s3_bucket.url(), "PULUMI_CONFIG_PASSPHRASE": "x",
                                  "PULUMI_HOME": str(tmp_path / "home"), "PULUMI_SKIP_UPDATE_CHECK": "true"})
        assert run.returncode == 0, run.stderr
        keys = s3_bucket.keys()
    assert KEY in keys and "fleet/prod/.pulumi/stacks/probe/prod.json" in keys
