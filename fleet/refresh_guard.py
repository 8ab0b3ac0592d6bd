"""`status --refresh` never runs beside a run that changes the environment.

A refresh preview of a stack that an `up` is changing reads a state the `up` is about to replace: its drift
is noise, and on a self-managed backend it races the `up`'s checkpoint writes. So before it refreshes
anything, `status --refresh` looks at both locks of fleet rule 5: tenantctl's environment lock (held by
`up`, `destroy`, `migrate-stacks`) and the engine's lock of each stack. A holder that is provably gone is
no obstacle (the next `up` clears it; status, being read-only, clears nothing). A live or undecidable one
refuses the status in one line naming it, or, with `--wait`, is waited for up to a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fleet import engine, environment_lock, stack_locks
from fleet.record_store import RecordStore, as_store

POLL_S = 2.0


class RefreshBlocked(engine.EngineError):
    """Another run holds the environment or one of its stacks; the message is one line naming it."""


def holder_in_the_way(records: Path | RecordStore | None, env: str, specs: Iterable[engine.StackSpec],
                      run_completed: environment_lock.RunCompleted | None = None) -> str | None:
    """What holds the environment or one of these stacks and may still be running, as one line; else None."""
    if records is not None:
        try:
            held = environment_lock.found_lock(as_store(records), env)
        except environment_lock.LockError as exc:
            return str(exc)
        if held is not None:
            holder, found = held
            if holder is None and found.age < environment_lock.UNREADABLE_AFTER_S:
                return f"the environment lock of {env} is being written"
            if holder is not None and environment_lock.stale_reason(
                    holder, environment_lock.this_process("status"),
                    run_completed or environment_lock.github_checker()) is None:
                return f"environment {env} is locked by {holder.describe()}"
    for spec in specs:
        for lock in stack_locks.stack_locks(spec.backend, spec.name):
            if stack_locks.why_gone(lock) is None:
                return f"stack {spec.name} is locked by {lock.describe()}"
    return None


def wait_until_unlocked(in_the_way: Callable[[], str | None], *, wait: bool, wait_timeout: float,
                        say: Callable[[str], None] = lambda _line: None, poll: float = POLL_S) -> None:
    """Return once nothing is in the way; RefreshBlocked at once without `wait`, or after `wait_timeout`."""
    deadline = time.monotonic() + wait_timeout
    announced = False
    while True:
        holder = in_the_way()
        if holder is None:
            return
        left = deadline - time.monotonic()
        if not wait:
            raise RefreshBlocked(f"status --refresh refused: {holder}; run it again with --wait, or once that run "
                                 "has ended")
        if left <= 0:
            raise RefreshBlocked(f"status --refresh gave up after {wait_timeout:.0f}s: {holder}")
        if not announced:
            say(f"waiting up to {wait_timeout:.0f}s: {holder}")
            announced = True
        time.sleep(min(poll, left))
