"""The environment lock: one fleet run per environment at a time (fleet rule 5, first kind).

The lock is `<records>/locks/<env>.json` beside the environment's state (`tenantctl.state_folder`). It names
its holder: user, host, boot id, pid, the process's start time, its session, and in GitHub Actions the run.

Taking it is one `link(2)` of a complete, fsynced temporary file onto the lock's name: the name either does
not exist or holds a whole record, so a SIGKILL at any line leaves no lock or a complete one (at worst a
temporary file, which is never read as a lock). A short `flock` on a guard file serializes the read, judge
and clear of a stale lock, so two runs that both find a stale lock cannot both clear it and both go on.

A lock is cleared only when it is provably stale (rule 5):
- same host, other boot id: the machine rebooted, the holder is gone;
- same host and boot: its pid is dead (and, for a session leader, no process of its session started after
  it is still running), or its pid now belongs to a process started after the lock's;
- a GitHub Actions holder whose run the API says has completed (needs GITHUB_TOKEN with `actions: read`).
Anything else is reported, with how to clear it by hand (`tenantctl unlock --env E --force`).
"""

from __future__ import annotations

import contextlib
import fcntl
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

from tenantctl import process_records, run_sessions
from tenantctl.atomic_files import link_new, sweep_temporaries
from tenantctl.process_records import boot_id
from tenantctl.process_records import start_ticks as process_start_ticks

LOCKS = "locks"
# A lock file that does not parse was not written by this module's link (that leaves a whole record): a hand
# edit, another tool, or a disk that lost data. A writer of any kind is done with a small file within seconds,
# so one older than this is nobody's write in progress; a younger one may be, and is left alone.
UNREADABLE_AFTER_S = 60
POLL_S = 2.0

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


def _complete(data: object) -> bool:
    return (isinstance(data, dict) and all(isinstance(data.get(k), str) for k in ("user", "host", "boot_id",
                                                                                   "since", "operation", "token"))
            and isinstance(data.get("pid"), int)
            and all(data.get(k) is None or isinstance(data.get(k), int) for k in ("start_ticks", "session")))


# The process table: tenantctl.process_records and tenantctl.run_sessions read it --------------------------

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
                  ci_repository=os.environ.get("GITHUB_REPOSITORY") if in_ci else None)


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
    if holder.host == here.host and holder.boot_id != here.boot_id:
        return f"{holder.host} has rebooted since (its boot id changed)"
    if holder.host == here.host:
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


def lock_path(records: Path, env: str) -> Path:
    return records / LOCKS / f"{env}.json"


def read_lock(path: Path) -> tuple[Holder | None, float] | None:
    """The lock's holder (None: unreadable) and its age in seconds; None when there is no lock."""
    try:
        text = path.read_text(encoding="utf-8")
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f"cannot read the environment lock {path}: {exc.strerror}") from None
    return Holder.from_text(text), age


def lock_status(records: Path | None, env: str, run_completed: RunCompleted | None = None) -> str | None:
    """What `up` would find, for a read-only command to report: None when the environment is not locked."""
    if records is None:
        return None
    found = read_lock(lock_path(records, env))
    if found is None:
        return None
    holder, age = found
    if holder is None:
        verdict = "unreadable; `up` would clear it" if age >= UNREADABLE_AFTER_S else "unreadable and recent"
        return f"environment {env}: the lock {lock_path(records, env)} is {verdict}"
    reason = stale_reason(holder, this_process("preview"), run_completed or github_checker())
    verdict = f"stale ({reason}): `up` would clear it" if reason else "`up` would refuse or, with --wait, wait"
    return f"environment {env} is locked: {holder.describe()}; {verdict}"


# Taking and releasing it ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Held for milliseconds around read-judge-clear-take; the kernel drops it when its process dies."""
    with open(path.with_suffix(".guard"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _write_new(path: Path, holder: Holder) -> bool:
    return link_new(path, json.dumps(asdict(holder), indent=1, sort_keys=True))


def _held_message(env: str, holder: Holder | None, detail: str, unlock_hint: str) -> str:
    who = holder.describe() if holder else detail
    return (f"environment {env} is locked: {who}; run again with --wait, or if that run is gone clear it by "
            f"hand: {unlock_hint}")


def _try_acquire(records: Path, env: str, me: Holder, run_completed: RunCompleted, say: Callable[[str], None],
                 unlock_hint: str) -> None:
    path = lock_path(records, env)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LockError(f"cannot create {path.parent} for the environment lock: {exc.strerror}") from None
    with _guard(path):
        sweep_temporaries(path.parent, UNREADABLE_AFTER_S)
        if _write_new(path, me):
            return
        found = read_lock(path)
        if found is not None:
            holder, age = found
            if holder is None and age < UNREADABLE_AFTER_S:
                raise LockHeld(_held_message(env, None, f"{path} is unreadable and was written {age:.0f}s ago",
                                             unlock_hint), None)
            if holder is None:
                say(f"cleared the environment lock {path}: unreadable, and written {age:.0f}s ago, longer than any "
                    f"write takes ({UNREADABLE_AFTER_S}s)")
            else:
                reason = stale_reason(holder, me, run_completed)
                if reason is None:
                    raise LockHeld(_held_message(env, holder, "", unlock_hint), holder)
                say(f"cleared the stale environment lock of {env} ({holder.describe()}): {reason}")
            path.unlink(missing_ok=True)
        if not _write_new(path, me):  # a writer that does not take the guard (an older tenantctl) got there first
            raise LockHeld(_held_message(env, None, f"{path} was taken meanwhile", unlock_hint), None)


def acquire(records: Path, env: str, operation: str, *, wait: bool = False, wait_timeout: float = 900,
            say: Callable[[str], None] = lambda _line: None, run_completed: RunCompleted | None = None,
            unlock_hint: str | None = None, poll: float = POLL_S) -> Holder:
    """Take the lock, or raise LockError naming its holder; with `wait`, poll until it is free or timed out."""
    me = this_process(operation)
    hint = unlock_hint or f"tenantctl unlock --env {env} --force"
    checker = run_completed or github_checker()
    deadline = time.monotonic() + wait_timeout
    announced = False
    while True:
        try:
            _try_acquire(records, env, me, checker, say, hint)
            return me
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


def release(records: Path, env: str, holder: Holder) -> None:
    """Remove the lock if it is still this holder's (an operator may have forced it away meanwhile)."""
    path = lock_path(records, env)
    if not path.parent.is_dir():  # `rehearse --destroy` removes the whole state folder, records included
        return
    # A lock that cannot be removed now is left with this process's record: once it has exited, the next run
    # finds its pid dead and clears it.
    with contextlib.suppress(OSError, LockError), _guard(path):
        found = read_lock(path)
        if found is not None and found[0] is not None and found[0].token == holder.token:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def environment_lock(records: Path, env: str, operation: str, **options) -> Iterator[Holder]:
    holder = acquire(records, env, operation, **options)
    try:
        yield holder
    finally:
        release(records, env, holder)


def unlock(records: Path, env: str, force: bool, run_completed: RunCompleted | None = None) -> str:
    """`tenantctl unlock`: remove a stale lock, or any lock with `force`; LockError when it is held."""
    path = lock_path(records, env)
    if not path.parent.is_dir():
        return f"environment {env} is not locked"
    with _guard(path):
        found = read_lock(path)
        if found is None:
            return f"environment {env} is not locked"
        holder, age = found
        if holder is None:
            reason = f"unreadable, written {age:.0f}s ago" if age >= UNREADABLE_AFTER_S else None
        else:
            reason = stale_reason(holder, this_process("unlock"), run_completed or github_checker())
        who = holder.describe() if holder else str(path)
        if reason is None and not force:
            raise LockError(f"environment {env} is locked and not provably stale: {who}; if that run is really "
                            f"gone (every process of it), remove it with --force")
        path.unlink(missing_ok=True)
        return f"removed the environment lock of {env} ({who}): {reason or 'forced'}"
