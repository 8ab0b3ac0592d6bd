"""The environment lock (fleet rule 5): one run per environment, the holder named, stale locks proven stale."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from fleet import environment_lock as lock
from fleet.environment_lock import Holder, LockError, LockHeld

ENV = "dev"


def never_asked(_repository, _run_id):
    raise AssertionError("the CI API must not be asked about a holder on this host")


@pytest.fixture
def sleeper():
    """Another live process on this host: the holder of a lock that is not ours."""
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()


def holder_for(pid: int, **changes) -> Holder:
    me = lock.this_process("up")
    fields = {"pid": pid, "start_ticks": lock.process_start_ticks(pid), "session": None, "token": "someone-else"}
    return dataclasses.replace(me, **{**fields, **changes})


def plant(records, holder: Holder) -> None:
    path = lock.lock_path(records, ENV)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(holder)))


def recorded(records) -> dict:
    return json.loads(lock.lock_path(records, ENV).read_text())


def test_acquire_records_the_holder_and_release_removes_it(tmp_path):
    with lock.environment_lock(tmp_path, ENV, "up", run_completed=never_asked) as me:
        record = recorded(tmp_path)
        assert record["pid"] == os.getpid() and record["operation"] == "up"
        assert record["boot_id"] == lock.boot_id() and record["host"] == me.host and record["user"]
        assert record["start_ticks"] == lock.process_start_ticks(os.getpid()) and record["started_at"]
    assert not lock.lock_path(tmp_path, ENV).exists()
    assert not list(lock.lock_path(tmp_path, ENV).parent.glob(".*.tmp"))


def test_a_second_run_is_refused_naming_the_live_holder(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid))
    with pytest.raises(LockHeld) as info:
        lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)
    message = str(info.value)
    assert f"pid {sleeper.pid}" in message and "since" in message and "\n" not in message
    assert "tenantctl unlock --env dev --force" in message
    assert recorded(tmp_path)["pid"] == sleeper.pid


def test_a_lock_of_a_dead_pid_is_cleared_with_a_message(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    said = []
    with lock.environment_lock(tmp_path, ENV, "up", run_completed=never_asked, say=said.append):
        assert recorded(tmp_path)["pid"] == os.getpid()
    assert said and f"pid {sleeper.pid} is no longer running" in said[0]


def test_a_pid_reused_by_a_later_process_is_stale(tmp_path, sleeper):
    # The recorded holder started one tick before the process that has its pid now.
    plant(tmp_path, holder_for(sleeper.pid, start_ticks=lock.process_start_ticks(sleeper.pid) - 1))
    said = []
    lock.release(tmp_path, ENV, lock.acquire(tmp_path, ENV, "up", run_completed=never_asked, say=said.append))
    assert "started after the lock" in said[0]


def test_another_boot_id_on_this_host_means_the_holder_is_gone(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid, boot_id="00000000-0000-0000-0000-000000000000"))
    said = []
    lock.release(tmp_path, ENV, lock.acquire(tmp_path, ENV, "up", run_completed=never_asked, say=said.append))
    assert "rebooted" in said[0]


def test_the_same_host_name_on_another_machine_is_no_reboot(tmp_path, sleeper):
    # Two containers or runners can share a host name; a lock in a bucket meets both.
    plant(tmp_path, holder_for(sleeper.pid, boot_id="00000000-0000-0000-0000-000000000000",
                               machine_id="another-machine"))
    with pytest.raises(LockHeld, match=f"pid {sleeper.pid}"):
        lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)


def test_a_pid_of_another_pid_namespace_is_not_judged_here(tmp_path, sleeper):
    # Its pid names a process in another namespace (another container on this host): dead here proves nothing.
    plant(tmp_path, holder_for(sleeper.pid, pid_namespace="pid:[1]"))
    sleeper.kill()
    sleeper.wait()
    with pytest.raises(LockHeld, match=f"pid {sleeper.pid}"):
        lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)


def test_the_record_names_the_machine_and_the_pid_namespace(tmp_path):
    with lock.environment_lock(tmp_path, ENV, "up", run_completed=never_asked):
        record = recorded(tmp_path)
    assert record["pid_namespace"].startswith("pid:[") and "machine_id" in record


def test_a_dead_session_leader_with_a_live_child_is_not_stale(tmp_path):
    # The run's leader is gone but its engine still runs (rule 6): the lock stays until that is gone too.
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; exit 0"], stdout=subprocess.PIPE,
                              start_new_session=True, text=True)
    child = int(leader.stdout.readline())
    ticks = lock.process_start_ticks(leader.pid)
    leader.wait()
    try:
        plant(tmp_path, holder_for(leader.pid, start_ticks=ticks, session=leader.pid))
        with pytest.raises(LockHeld):
            lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)
    finally:
        os.kill(child, 9)
    deadline = time.monotonic() + 10
    while lock.process_start_ticks(child) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    lock.release(tmp_path, ENV, lock.acquire(tmp_path, ENV, "up", run_completed=never_asked))


def test_an_unreadable_lock_is_left_while_recent_and_cleared_once_old(tmp_path):
    path = lock.lock_path(tmp_path, ENV)
    path.parent.mkdir(parents=True)
    path.write_text('{"user": "ci", "pid": 12')  # what a writer without the link step could leave
    with pytest.raises(LockHeld, match="unreadable and was written"):
        lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)
    old = time.time() - lock.UNREADABLE_AFTER_S - 5
    os.utime(path, (old, old))
    said = []
    lock.release(tmp_path, ENV, lock.acquire(tmp_path, ENV, "up", run_completed=never_asked, say=said.append))
    assert "unreadable" in said[0]


def test_a_temporary_file_left_by_a_kill_before_the_link_is_no_lock(tmp_path):
    folder = lock.lock_path(tmp_path, ENV).parent
    folder.mkdir(parents=True)
    (folder / f".{ENV}.json.dead-token.tmp").write_text('{"partial')
    lock.release(tmp_path, ENV, lock.acquire(tmp_path, ENV, "up", run_completed=never_asked))


def ci_holder(**changes) -> Holder:
    return dataclasses.replace(lock.this_process("up"), host="runner-7", boot_id="other", pid=4242,
                               start_ticks=1, token="ci-holder",  # noqa: S106 (a lock token, no secret)
                               ci_run_id="987", ci_repository="acme/fleet", **changes)


def test_a_ci_holder_whose_run_completed_is_stale_by_the_api(tmp_path):
    asked = []

    def get(url, headers):
        asked.append((url, headers))
        return 200, {"status": "completed", "conclusion": "cancelled"}

    plant(tmp_path, ci_holder())
    said = []
    checker = lambda repository, run_id: lock.github_run_completed(repository, run_id, "tok", get)  # noqa: E731
    lock.release(tmp_path, ENV, lock.acquire(tmp_path, ENV, "up", say=said.append, run_completed=checker))
    assert asked[0][0] == "https://api.github.com/repos/acme/fleet/actions/runs/987"
    assert asked[0][1]["Authorization"] == "Bearer tok"
    assert "acme/fleet#987 has completed" in said[0] and "tok" not in said[0]


@pytest.mark.parametrize("answer", [(200, {"status": "in_progress"}), (404, {}), (0, {})])
def test_a_ci_holder_whose_run_is_not_known_to_be_over_is_refused(tmp_path, answer):
    plant(tmp_path, ci_holder())
    with pytest.raises(LockHeld, match="GitHub run acme/fleet#987"):
        lock.acquire(tmp_path, ENV, "up", run_completed=lambda r, i: lock.github_run_completed(
            r, i, "tok", lambda _url, _headers: answer))


def test_the_ci_check_asks_nothing_without_a_token_or_with_an_odd_record():
    def get(_url, _headers):
        raise AssertionError("no request expected")

    assert lock.github_run_completed("acme/fleet", "987", None, get) is None
    assert lock.github_run_completed("acme/fleet/../x", "987", "tok", get) is None
    assert lock.github_run_completed("acme/fleet", "9?x=1", "tok", get) is None


def test_the_ci_checker_uses_the_environments_token(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "from-env")
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example/api/v3")
    seen = []
    checker = lock.github_checker(lambda url, headers: seen.append((url, headers)) or (200, {"status": "queued"}))
    assert checker("acme/fleet", "1") is False
    assert seen[0][0].startswith("https://ghe.example/api/v3/") and seen[0][1]["Authorization"] == "Bearer from-env"


def test_in_ci_the_record_names_the_run(monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_RUN_ID", "555")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/fleet")
    me = lock.this_process("up")
    assert (me.ci_run_id, me.ci_repository) == ("555", "acme/fleet")
    assert "GitHub run acme/fleet#555" in me.describe()


def test_wait_gives_up_after_its_timeout(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid))
    said = []
    started = time.monotonic()
    with pytest.raises(LockHeld, match=r"waited 1s"):
        lock.acquire(tmp_path, ENV, "up", wait=True, wait_timeout=1, poll=0.1, run_completed=never_asked,
                     say=said.append)
    assert 1 <= time.monotonic() - started < 5
    assert len(said) == 1 and f"pid {sleeper.pid}" in said[0]


def test_wait_takes_the_lock_once_its_holder_releases_it(tmp_path):
    first = lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)
    threading.Timer(0.5, lock.release, (tmp_path, ENV, first)).start()
    second = lock.acquire(tmp_path, ENV, "destroy", wait=True, wait_timeout=10, poll=0.1, run_completed=never_asked)
    assert recorded(tmp_path)["token"] == second.token and recorded(tmp_path)["operation"] == "destroy"
    lock.release(tmp_path, ENV, second)


def test_release_leaves_a_lock_that_is_no_longer_its_own(tmp_path, sleeper):
    mine = lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)
    plant(tmp_path, holder_for(sleeper.pid))  # forced away by an operator and taken by another run meanwhile
    lock.release(tmp_path, ENV, mine)
    assert recorded(tmp_path)["pid"] == sleeper.pid


def test_unlock_refuses_a_live_lock_without_force_and_removes_it_with_force(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid))
    with pytest.raises(LockError, match="not provably stale"):
        lock.unlock(tmp_path, ENV, force=False, run_completed=never_asked)
    assert "forced" in lock.unlock(tmp_path, ENV, force=True, run_completed=never_asked)
    assert not lock.lock_path(tmp_path, ENV).exists()
    assert "not locked" in lock.unlock(tmp_path, ENV, force=False)


def test_unlock_removes_a_stale_lock_without_force(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    assert "no longer running" in lock.unlock(tmp_path, ENV, force=False, run_completed=never_asked)


def test_lock_status_reports_without_touching_the_lock(tmp_path, sleeper):
    assert lock.lock_status(tmp_path, ENV) is None
    plant(tmp_path, holder_for(sleeper.pid))
    before = lock.lock_path(tmp_path, ENV).read_bytes()
    status = lock.lock_status(tmp_path, ENV, run_completed=never_asked)
    assert f"pid {sleeper.pid}" in status and "`up` would refuse" in status
    assert lock.lock_path(tmp_path, ENV).read_bytes() == before


def test_two_processes_racing_for_a_stale_lock_end_with_one_holder(tmp_path, sleeper):
    plant(tmp_path, holder_for(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    script = ("import sys, time; from pathlib import Path; from fleet import environment_lock as l\n"
              "try:\n h = l.acquire(Path(sys.argv[1]), 'dev', 'up', run_completed=lambda r, i: None)\n"
              " print('took', flush=True); time.sleep(5)\n"
              "except l.LockHeld:\n print('refused', flush=True)\n")
    from tests.conftest import ROOT

    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True) for _ in range(4)]
    outcomes = sorted(run.communicate(timeout=60)[0].strip() for run in runs)
    assert outcomes == ["refused", "refused", "refused", "took"]


def test_a_lock_folder_that_cannot_be_used_is_one_line_not_a_traceback(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(LockError, match="cannot create"):
        lock.acquire(tmp_path / "file", ENV, "up", run_completed=never_asked)
    lock.lock_path(tmp_path, ENV).with_suffix(".guard").mkdir(parents=True)  # what open() cannot append to
    with pytest.raises(LockError, match="cannot take the environment lock"):
        lock.acquire(tmp_path, ENV, "up", run_completed=never_asked)
