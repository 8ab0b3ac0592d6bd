"""The environment lock: one fleet run per environment at a time (fleet rule 5, first kind).

The lock is the record `locks/<env>.json` beside the environment's state, in its record store
(fleet.record_store): `DIR/.tenantctl/` of a `file://` backend or of the rehearsal, or
`<prefix>.tenantctl/` in an S3 backend's bucket (fleet.s3_records). It names its holder: user, host, boot
id, pid, the process's start time, its session, and in GitHub Actions the run. The holder record, the
judgement of staleness and every message are this module's, whichever store keeps the lock.

Taking it is the store's atomic create (a link(2) of a complete, fsynced file; an S3 PutObject with
`If-None-Match: *`): the name either does not exist or holds a whole record, and of two runs one creates it.
Clearing a stale lock is the store's replace-if-unchanged (under a short flock; `If-Match: <ETag>`), so two
runs that both find the same stale lock cannot both clear it and both go on: one replaces it, the other then
finds the winner's lock.

A lock is cleared only when it is provably stale (rule 5):
- same host, other boot id: the machine rebooted, the holder is gone;
- same host and boot: its pid is dead (and, for a session leader, no process of its session started after
  it is still running), or its pid now belongs to a process started after the lock's;
- a GitHub Actions holder whose run the API says has completed (needs GITHUB_TOKEN with `actions: read`).
Anything else is reported, with how to clear it by hand (`tenantctl unlock --env E --force`).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleet.record_store import Found, RecordStore, RecordStoreError, as_store
from services import process_records, run_sessions
from services.process_records import boot_id
from services.process_records import start_ticks as process_start_ticks

LOCKS = "locks"
# A lock file that does not parse was not written by this module's link (that leaves a whole record): a hand
# edit, another tool, or a disk that lost data. A writer of any kind is done with a small file within seconds,
# so one older than this is nobody's write in progress; a younger one may be, and is left alone.
UNREADABLE_AFTER_S = 60
POLL_S = 2.0
# Looks at the lock within one attempt to take it: each ends taken, refused, or changed by another run meanwhile.
ATTEMPTS = 5

HttpGet = Callable[[str, dict[str, str]], tuple[int, dict]]
RunCompleted = Callable[[str, str], bool | None]


class LockError(Exception):
    """The lock could not be taken or removed; the message is one line an operator can act on."""


class LockHeld(LockError):
    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    user: str
    host: str
    boot_id: str
    pid: int
    start_ticks: int | None  # /proc/<pid>/stat field 22: clock ticks after boot, exact within one boot
    started_at: str | None  # the same instant for people (boot time + ticks)
    since: str  # when the lock was taken
    operation: str
    token: str  # this acquisition's own id: a release removes only its own lock
    session: int | None = None
    ci_run_id: str | None = None
    ci_repository: str | None = None
    # A lock in a bucket meets holders of many machines: a host name can repeat (containers, self-hosted
    # runners), and pids mean something only in their own pid namespace.
    machine_id: str | None = None  # /etc/machine-id
    pid_namespace: str | None = None  # /proc/self/ns/pid, e.g. "pid:[4026531836]"

    def describe(self) -> str:
        run = f" (GitHub run {self.ci_repository}#{self.ci_run_id})" if self.ci_run_id else ""
        return f"{self.operation} by {self.user} on {self.host} pid {self.pid}{run} since {self.since}"

    @classmethod
    def from_text(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(**{name: data.get(name) for name in cls.__dataclass_fields__}) if _complete(data) else None
        except (ValueError, TypeError):
            return None


def _machine_id() -> str | None:
    try:
        return Path("/etc/machine-id").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _same(recorded: str | None, here: str | None) -> bool:
    """Equal, or not recorded on one side (a record from before the field, a system without it)."""
    return recorded is None or here is None or recorded == here


def _complete(data: object) -> bool:
    return (isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("user", "host", "boot_id",
                                                                                   "since", "operation", "token"))
            and isinstance(data.get("pid"), int)
            and all(data.get(k) is None or isinstance(data.get(k), int) for k in ("start_ticks", "session")))


# The process table: services.process_records and services.run_sessions read it --------------------------

def _boot_time() -> float | None:
    try:
        return process_records.boot_time()
    except OSError:
        return None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _started_at(ticks: int | None) -> str | None:
    boot = _boot_time()
    return None if ticks is None or boot is None else _iso(boot + ticks / os.sysconf("SC_CLK_TCK"))


def _session_survivors(session: int, after_ticks: int) -> list[int]:
    """Live processes of a session that started no earlier than its leader: what a dead run may have left."""
    since = process_records.ProcessRecord(0, after_ticks, boot_id())
    return sorted(r.pid for r in run_sessions.session_members(session, since) if r.pid != os.getpid())


def this_process(operation: str) -> Holder:
    pid = os.getpid()
    ticks = process_start_ticks(pid)
    in_ci = os.environ.get("GITHUB_ACTIONS") == "true"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Holder(user=user, host=socket.gethostname(), boot_id=boot_id(), pid=pid, start_ticks=ticks,
                  started_at=_started_at(ticks), since=_iso(time.time()), operation=operation,
                  token=str(uuid.uuid4()), session=os.getsid(0),
                  ci_run_id=os.environ.get("GITHUB_RUN_ID") if in_ci else None,
                  ci_repository=os.environ.get("GITHUB_REPOSITORY") if in_ci else None,
                  machine_id=_machine_id(), pid_namespace=_pid_namespace())


# GitHub Actions ---------------------------------------------------------------------------------------------

def _urllib_get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (an https URL built below)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def github_run_completed(repository: str, run_id: str, token: str | None, get: HttpGet = _urllib_get,
                         api: str = "https://api.github.com") -> bool | None:
    """Whether GitHub says the run has completed; None when it cannot tell (no token, no answer, odd record)."""
    # The record comes from a file anyone with access to the state could edit: only a plain repo and run id
    # go into the URL, and the token goes only to the API.
    if not token or not re.fullmatch(r"[\w.-]+/[\w.-]+", repository or "") or not re.fullmatch(r"\d+", run_id or ""):
        return None
    status, body = get(f"{api}/repos/{repository}/actions/runs/{run_id}",
                       {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                        "X-GitHub-Api-Version": "2022-11-28"})
    if status != 200 or not isinstance(body, dict) or "status" not in body:
        return None
    return body["status"] == "completed"


def github_checker(get: HttpGet = _urllib_get) -> RunCompleted:
    """The CI check with this process's GITHUB_TOKEN (and GITHUB_API_URL on GitHub Enterprise)."""
    token = os.environ.get("GITHUB_TOKEN")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    return lambda repository, run_id: github_run_completed(repository, run_id, token, get, api)


# Judging a lock ---------------------------------------------------------------------------------------------

def stale_reason(holder: Holder, here: Holder, run_completed: RunCompleted) -> str | None:
    """Why the lock is provably stale, or None when it is not (or cannot be told)."""
    same_machine = holder.host == here.host and _same(holder.machine_id, here.machine_id)
    if same_machine and holder.boot_id != here.boot_id:
        return f"{holder.host} has rebooted since (its boot id changed)"
    if same_machine and _same(holder.pid_namespace, here.pid_namespace):
        ticks = process_start_ticks(holder.pid)
        if ticks is None:
            survivors = (_session_survivors(holder.session, holder.start_ticks or 0)
                         if holder.session == holder.pid else [])
            if survivors:
                return None  # its engine or plugins still run: the run is not over (rule 5 and 6)
            return f"pid {holder.pid} is no longer running"
        if holder.start_ticks is not None and ticks != holder.start_ticks:
            # One pid names one process at a time: another start time is a process started after the holder.
            return f"pid {holder.pid} now belongs to a process started after the lock"
        return None
    if holder.ci_run_id and holder.ci_repository and run_completed(holder.ci_repository, holder.ci_run_id):
        return f"GitHub run {holder.ci_repository}#{holder.ci_run_id} has completed"
    return None


def lock_name(env: str) -> str:
    return f"{LOCKS}/{env}.json"


def lock_path(records: Path, env: str) -> Path:
    """Where a folder store keeps the lock."""
    return records / lock_name(env)


def found_lock(store: RecordStore, env: str) -> tuple[Holder | None, Found] | None:
    """The lock's holder (None: unreadable) and what the store found; None when there is no lock."""
    try:
        found = store.read(lock_name(env))
    except RecordStoreError as exc:
        raise LockError(f"cannot read the environment lock: {exc}") from None
    return None if found is None else (Holder.from_text(found.text), found)


def lock_status(records: Path | RecordStore | None, env: str, run_completed: RunCompleted | None = None) -> str | None:
    """What `up` would find, for a read-only command to report: None when the environment is not locked."""
    if records is None:
        return None
    store = as_store(records)
    held = found_lock(store, env)
    if held is None:
        return None
    holder, found = held
    if holder is None:
        verdict = "unreadable; `up` would clear it" if found.age >= UNREADABLE_AFTER_S else "unreadable and recent"
        return f"environment {env}: the lock {store.where(lock_name(env))} is {verdict}"
    reason = stale_reason(holder, this_process("preview"), run_completed or github_checker())
    verdict = f"stale ({reason}): `up` would clear it" if reason else "`up` would refuse or, with --wait, wait"
    return f"environment {env} is locked: {holder.describe()}; {verdict}"


# Taking and releasing it ------------------------------------------------------------------------------------

def _record(holder: Holder) -> str:
    return json.dumps(asdict(holder), indent=1, sort_keys=True)


def _held_message(env: str, holder: Holder | None, detail: str, unlock_hint: str) -> str:
    who = holder.describe() if holder else detail
    return (f"environment {env} is locked: {who}; run again with --wait, or if that run is gone clear it by "
            f"hand: {unlock_hint}")


def _try_acquire(store: RecordStore, env: str, me: Holder, run_completed: RunCompleted,
                 say: Callable[[str], None], unlock_hint: str) -> None:
    name, where = lock_name(env), store.where(lock_name(env))
    for _attempt in range(ATTEMPTS):
        if store.create(name, _record(me)):
            return
        held = found_lock(store, env)
        if held is None:
            continue  # released since: take it
        holder, found = held
        if holder is not None and holder.token == me.token:
            return  # this run's own write, whose answer was lost (a retried request)
        if holder is None and found.age < UNREADABLE_AFTER_S:
            raise LockHeld(_held_message(env, None, f"{where} is unreadable and was written {found.age:.0f}s ago",
                                         unlock_hint), None)
        if holder is None:
            note = (f"cleared the environment lock {where}: unreadable, and written {found.age:.0f}s ago, longer "
                    f"than any write takes ({UNREADABLE_AFTER_S}s)")
        else:
            reason = stale_reason(holder, me, run_completed)
            if reason is None:
                raise LockHeld(_held_message(env, holder, "", unlock_hint), holder)
            note = f"cleared the stale environment lock of {env} ({holder.describe()}): {reason}"
        # Only while it is still the lock judged stale: of two runs clearing it at once, one replaces it, and
        # the other finds the winner's lock on its next look.
        if store.replace(name, _record(me), found.version):
            say(note)
            return
    raise LockHeld(_held_message(env, None, f"{where} was taken meanwhile", unlock_hint), None)


def acquire(records: Path | RecordStore, env: str, operation: str, *, wait: bool = False, wait_timeout: float = 900,
            say: Callable[[str], None] = lambda _line: None, run_completed: RunCompleted | None = None,
            unlock_hint: str | None = None, poll: float = POLL_S) -> Holder:
    """Take the lock, or raise LockError naming its holder; with `wait`, poll until it is free or timed out."""
    me = this_process(operation)
    store = as_store(records)
    hint = unlock_hint or f"tenantctl unlock --env {env} --force"
    checker = run_completed or github_checker()
    deadline = time.monotonic() + wait_timeout
    announced = False
    while True:
        try:
            _try_acquire(store, env, me, checker, say, hint)
            return me
        except RecordStoreError as exc:
            raise LockError(f"cannot take the environment lock: {exc}") from None
        except OSError as exc:  # a read-only or full state folder: one line, not a traceback
            raise LockError(f"cannot take the environment lock in {records}: {exc.strerror or exc}") from None
        except LockHeld as exc:
            left = deadline - time.monotonic()
            if not wait:
                raise
            if left <= 0:
                raise LockHeld(f"{exc} (waited {wait_timeout:.0f}s)", exc.holder) from None
            if not announced:
                say(f"waiting up to {wait_timeout:.0f}s: {exc.holder.describe() if exc.holder else exc}")
                announced = True
            time.sleep(min(poll, left))


def release(records: Path | RecordStore, env: str, holder: Holder) -> None:
    """Remove the lock if it is still this holder's (an operator may have forced it away meanwhile)."""
    store = as_store(records)
    # A lock that cannot be removed now is left with this process's record: once it has exited, the next run
    # finds its pid dead and clears it.
    with contextlib.suppress(OSError, LockError, RecordStoreError):
        held = found_lock(store, env)
        if held is not None and held[0] is not None and held[0].token == holder.token:
            store.delete(lock_name(env), held[1].version)


@contextlib.contextmanager
def environment_lock(records: Path | RecordStore, env: str, operation: str, **options) -> Iterator[Holder]:
    holder = acquire(records, env, operation, **options)
    try:
        yield holder
    finally:
        release(records, env, holder)


def unlock(records: Path | RecordStore, env: str, force: bool, run_completed: RunCompleted | None = None) -> str:
    """`tenantctl unlock`: remove a stale lock, or any lock with `force`; LockError when it is held."""
    store = as_store(records)
    held = found_lock(store, env)
    if held is None:
        return f"environment {env} is not locked"
    holder, found = held
    if holder is None:
        reason = f"unreadable, written {found.age:.0f}s ago" if found.age >= UNREADABLE_AFTER_S else None
    else:
        reason = stale_reason(holder, this_process("unlock"), run_completed or github_checker())
    who = holder.describe() if holder else store.where(lock_name(env))
    if reason is None and not force:
        raise LockError(f"environment {env} is locked and not provably stale: {who}; if that run is really "
                        f"gone (every process of it), remove it with --force")
    try:
        removed = store.delete(lock_name(env), found.version)
    except RecordStoreError as exc:
        raise LockError(f"cannot remove the environment lock: {exc}") from None
    if not removed:
        raise LockError(f"the environment lock of {env} changed while it was being removed (another run took or "
                        "cleared it); run `tenantctl unlock` again to see who holds it now")
    return f"removed the environment lock of {env} ({who}): {reason or 'forced'}"
