"""One engine operation on one stack, in a process of its own, reported as a `StackOutcome`.

The program runs as the Automation API's inline program, inside the process that asked for the
operation, and the Pulumi SDK keeps its settings per process: stacks that run at the same time each
get their own process (`run_in_process`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import threading
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from components.naming import TENANT_STACK_TYPE, split_stack_name
from fleet import engine, pending_operations, stack_locks, tier_change
from fleet.stack_identity import TAG_OFFBOARDED_AT
from services import run_sessions
from tenancy.redaction import redact

NO_CHANGE_OPS = {"same", "read", "refresh", "discard", "read-discard"}
REPLACE_OPS = ("replace", "create-replacement", "delete-replaced")
OPERATIONS = ("preview", "up", "destroy", "destroy-preview", "refresh", "offboard")
READ_ONLY = ("preview", "destroy-preview")


@dataclass
class StackJob:
    spec: engine.StackSpec
    operation: str
    # destroy: also remove the stack once it is empty (a tenant whose file was removed).
    remove_stack: bool = False
    # refresh: only the resources whose type starts with this (a restarted AWS emulator's: "aws:").
    refresh_types: str | None = None
    create: bool = True
    # Policy packs (folders) every preview and up runs with.
    policy_packs: list[str] = field(default_factory=list)
    # offboard (fleet.offboard_stack): also purge the tenant's history; also erase the stack's history;
    # whether the tenant's file is there for the program (None: look in the stack's tenantsDir).
    purge: bool = False
    erase_history: bool = False
    tenant_file: bool | None = None
    # up of a tenant stack: what every stack of the run shares in its desired-state digest (fleet.desired_state;
    # None: no digest), and the commit it deploys; a successful `up` records its digest and commit as tags.
    shared: Any = None
    commit: str | None = None
    # up of a tenant stack: its desired-state digest as the run's skip plan computed it (fleet.desired_state.Desired;
    # None: not computed), which the `up` records as applied when its config is the one it was computed with.
    desired: Any = None
    # up and preview with --refresh: a refresh first (an up's is saved; a preview's is a preview), its changes
    # reported as drift. Rendered Kubernetes objects have no cluster to be read back from: they are left out.
    refresh_first: bool = False
    # Why this stack runs (fleet.skipping): said in the summary.
    reason: str | None = None


@dataclass
class StackOutcome:
    stack: str
    operation: str
    status: str = "ok"  # ok | failed | skipped
    summary: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)  # plain outputs only; secret ones are left out
    errors: list[str] = field(default_factory=list)
    ops: dict[str, str] = field(default_factory=dict)  # urn -> op of its final step
    seconds: float = 0.0
    removed: bool = False
    # What this run found left by an interrupted one and recovered (or, in a preview, would recover).
    recovered: list[str] = field(default_factory=list)
    # Why it ran, or why it was skipped (fleet.skipping; a stack a failure kept from running: why).
    reason: str | None = None
    # With --refresh: what the refresh found changed outside the engine (op -> count); None: no refresh.
    drift: dict[str, int] | None = None
    # A tier change (fleet.tier_change): what it did, or in a preview will do, in one sentence.
    tier_change: str | None = None

    @property
    def slug(self) -> str | None:
        return split_stack_name(self.stack)[1]

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def changes(self) -> int:
        return sum(count for op, count in self.summary.items() if op not in NO_CHANGE_OPS)

    @property
    def checked_now(self) -> bool:
        return any(engine.resource_type(urn).endswith(":OnboardingCheck") and op in ("create", "update", "replace")
                   for urn, op in self.ops.items())

    @property
    def tenant_deleted(self) -> bool:
        return any(op == "delete" and engine.resource_type(urn) == TENANT_STACK_TYPE for urn, op in self.ops.items())

    def counts(self) -> dict[str, int]:
        """created / updated / replaced / deleted / unchanged, from the engine's summary. A replacement counts
        once: the engine's summary holds its logical step (replace), an event count its physical ones too."""
        created = self.summary.get("create", 0)
        deleted = self.summary.get("delete", 0)
        replaced = max(self.summary.get(op, 0) for op in REPLACE_OPS)
        unchanged = sum(self.summary.get(op, 0) for op in NO_CHANGE_OPS)
        updated = self.changes - created - deleted - sum(self.summary.get(op, 0) for op in REPLACE_OPS)
        return {"created": created, "updated": updated, "replaced": replaced, "deleted": deleted,
                "unchanged": unchanged}

    def as_dict(self) -> dict:
        return {"stack": self.stack, "operation": self.operation, "status": self.status, **self.counts(),
                "summary": self.summary, "outputs": self.outputs, "errors": self.errors,
                "recovered": self.recovered, "seconds": round(self.seconds, 1), "reason": self.reason,
                **({"drift": self.drift} if self.drift is not None else {}),
                **({"tier_change": self.tier_change} if self.tier_change else {})}


def run(job: StackJob) -> StackOutcome:
    """The operation, in this process. Every failure is an outcome, never an exception."""

    _OPERATING.set()
    session = _own_session(job.spec.backend)
    try:
        return _run(job)
    finally:
        if session is not None:
            run_sessions.end_session(session)
        _OPERATING.clear()


def _own_session(backend: engine.Backend):
    """In a pool worker: a session of its own, so the engine's processes can be found and ended with it;
    a Ctrl-C forwarded by the parent reaches the CLI, which cancels cleanly. It reaches the CLI only: the CLI
    stops its plugins once their operations are recorded (services.run_sessions says why)."""
    if multiprocessing.parent_process() is None:
        return None
    runs = engine.runs_dir(backend)
    run_sessions.reap_dead_runs(runs)
    record = run_sessions.become_session(runs)

    def forward(_signum, _frame):
        for member in run_sessions.engine_processes(os.getsid(0), None, spare=os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    return record


def _run(job: StackJob) -> StackOutcome:
    """One operation on one stack; every error text of its outcome redacted (tenancy.redaction)."""
    outcome = _run_unredacted(job)
    outcome.errors = [redact(error, job.spec.secrets.values()) for error in outcome.errors]
    return outcome


def _run_unredacted(job: StackJob) -> StackOutcome:
    from pulumi.automation import errors as auto_errors

    _quiet_engine_teardown()
    if job.operation == "offboard":
        from fleet.offboard_stack import offboard_stack

        try:
            recovered = stack_locks.recover(job.spec.backend, job.spec.name)
            with stack_locks.holding(job.spec.backend, job.spec.name, job.operation):
                outcome = offboard_stack(job.spec, purge=job.purge, erase_history=job.erase_history,
                                         tenant_file=job.tenant_file)
        except engine.EngineError as exc:
            return StackOutcome(job.spec.name, job.operation, status="failed", errors=[str(exc)])
        outcome.recovered = recovered + outcome.recovered
        return outcome
    started = time.monotonic()
    outcome = StackOutcome(job.spec.name, job.operation, reason=job.reason)
    events = engine.EngineEvents(fault=fault_injection(job.spec.name))
    quiet = {"color": "never", "on_output": lambda _line: None}
    packs = {"policy_packs": job.policy_packs} if job.policy_packs else {}
    stack = None
    holding = contextlib.ExitStack()
    try:
        # Read-only operations take no lock, and clear none: they report what `up` would clear.
        outcome.recovered += stack_locks.recover(job.spec.backend, job.spec.name, clear=job.operation not in READ_ONLY)
        if job.operation not in READ_ONLY:
            holding.enter_context(stack_locks.holding(job.spec.backend, job.spec.name, job.operation))
        stack = engine.open_stack(job.spec, create=job.create)
        outcome.recovered += pending_operations.recover(stack, job.spec, apply=job.operation not in READ_ONLY)
        tags, applying = None, None
        if job.operation == "up":
            # After the recovery, whose import forgets the applied digest.
            tags, applying = _current_tags(stack, job), _known_digest(job, outcome)
            _forget_unless_reapplied(stack, tags, applying, job.refresh_first)
        elif job.operation == "refresh":
            engine.forget_applied_digest(stack)
        if job.refresh_first and job.operation in ("up", "preview"):
            outcome.drift = _refresh_for_drift(stack, preview_only=job.operation == "preview", quiet=quiet)
        change = tier_change.find(stack, job.spec) if job.operation in ("up", "preview") else None
        volumes = tier_change.check_volumes(stack, change, job.spec) if change and change.downgrade else None
        if change is not None and job.operation == "preview" and (refused := tier_change.refusal(change, volumes)):
            raise tier_change.TierChangeRefused(refused)  # what `up` would say, before the engine runs
        if job.operation == "up":
            if change is not None:
                tier_change.lift_guard(stack, change, volumes)
            try:
                outcome.summary, outcome.outputs = engine.up(stack, job.spec.backend, events, **packs, **quiet)
            except auto_errors.CommandError:
                if change is not None:
                    tier_change.restore_guard(stack, change)
                raise
        elif job.operation == "preview":
            excluded = tier_change.preview_exclude(change)
            preview = stack.preview(on_event=events, exclude=excluded, **packs, **quiet)
            outcome.summary = {getattr(k, "value", str(k)): v for k, v in preview.change_summary.items()}
            if excluded:  # the namespace `up` deletes once its guard is lifted
                events.ops.update(dict.fromkeys(excluded, "delete"))
                outcome.summary["delete"] = outcome.summary.get("delete", 0) + len(excluded)
        elif job.operation == "refresh":
            targets = None
            if job.refresh_types:
                resources = engine.export_state(stack).get("deployment", {}).get("resources") or []
                targets = [r["urn"] for r in resources if engine.resource_type(r["urn"]).startswith(job.refresh_types)]
            if targets != []:
                result = stack.refresh(on_event=events, target=targets, **quiet)
                outcome.summary = dict(result.summary.resource_changes or {})
        elif job.operation == "destroy":
            result = stack.destroy(on_event=events, remove=job.remove_stack or None, **quiet)
            outcome.summary = dict(result.summary.resource_changes or {})
            outcome.removed = job.remove_stack
        elif job.operation == "destroy-preview":
            stack.destroy(on_event=events, preview_only=True, **quiet)
            outcome.summary = _counted(events)
        else:
            raise ValueError(f"unknown operation {job.operation!r}")
        if job.operation == "refresh":
            # An `up` returned its outputs (engine.up); a refresh does not: two CLI calls.
            outcome.outputs = {k: v.value for k, v in stack.outputs().items() if not v.secret}
        if job.operation == "up":
            _record_error(stack, None, job.spec.tags, _applied(job, outcome, applying), current=tags)
        if change is not None:
            outcome.tier_change = tier_change.describe(change, events.ops, volumes)
    except tier_change.TierChangeRefused as exc:
        outcome.status = "failed"
        outcome.errors = [str(exc)]
        if job.operation == "up" and stack is not None:
            _record_error(stack, str(exc))
    except auto_errors.StackNotFoundError:
        outcome.status = "failed"
        outcome.errors = [f"stack {job.spec.name} does not exist on this backend: create it with `pulumi stack init "
                          f"{job.spec.name}` and set its secrets (docs/onboarding-runbook.md, step 2)"]
    except auto_errors.CommandError as exc:
        outcome.status = "failed"
        outcome.summary = outcome.summary or _counted(events)
        outcome.errors = [m for messages in events.errors.values() for m in messages] + events.general_errors
        broken = engine.checkpoint_problem(job.spec.backend, job.spec.name)
        outcome.errors = [broken] if broken else outcome.errors or [_last_lines(str(exc))]
        if job.operation == "up" and stack is not None:
            _record_error(stack, redact(outcome.errors[0], job.spec.secrets.values()))
    except engine.EngineError as exc:
        outcome.status = "failed"
        outcome.errors = [str(exc)]
    finally:
        holding.close()
    outcome.ops = events.ops
    outcome.seconds = time.monotonic() - started
    return outcome


# Fault injection, for the crash tests only (tests/e2e/test_fault_injection.py): "<stack>:<n>:<SIGNAL>" sends
# SIGNAL to this run's tenantctl process at the n-th engine event of that stack, as a lost runner would.
# The events of every engine operation on that stack in this process count (an offboarding's up and destroy).
FAULT_ENV = "TENANTCTL_FAULT_AT_EVENT"


def fault_injection(stack: str):
    spec = os.environ.get(FAULT_ENV, "")
    target, _, rest = spec.partition(":")
    number, _, name = rest.partition(":")
    if target != stack or not number.isdigit() or not hasattr(signal, name):
        return None
    seen = 0

    def hit(_event) -> None:
        nonlocal seen
        seen += 1
        if seen == int(number):
            os.kill(tenantctl_pid(), getattr(signal, name))

    return hit


def tenantctl_pid() -> int:
    """The tenantctl process: a pool worker's parent, else this process (a job run in-process)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else os.getpid()


RENDER_DIR_KEY = "kubernetesRenderDir"


def drift_targets(stack) -> tuple[list[str] | None, str]:
    """What a refresh can compare: every resource (None), or, where Kubernetes objects are rendered to files
    (`kubernetesRenderDir`: no cluster to read them back from), the others; and a note saying what was left out."""
    from pulumi.automation import errors as auto_errors

    from components.naming import PROJECT

    try:
        rendered = stack.get_config(f"{PROJECT}:{RENDER_DIR_KEY}").value
    except auto_errors.CommandError:
        rendered = None
    if not rendered:
        return None, ""
    resources = engine.export_state(stack).get("deployment", {}).get("resources") or []
    return ([r["urn"] for r in resources if r.get("custom") and not r["type"].startswith("pulumi:")
             and not r["type"].startswith("kubernetes:")], "rendered Kubernetes objects not compared")


def _refresh_for_drift(stack, preview_only: bool, quiet: dict) -> dict[str, int]:
    """A refresh (saved, before an up) or a refresh preview (before a preview): what it found changed."""
    target, _note = drift_targets(stack)
    if target == []:
        return {}
    if preview_only:
        summary = stack.preview_refresh(target=target, **quiet).change_summary
        found = {getattr(op, "value", str(op)): n for op, n in summary.items()}
    else:
        found = dict(stack.refresh(target=target, **quiet).summary.resource_changes or {})
    return {op: n for op, n in found.items() if op not in NO_CHANGE_OPS and n}


LAST_ERROR_TAG = "tenant:last-error"
TAG_LIMIT = 256


def _current_tags(stack, job: StackJob) -> dict[str, str] | None:
    """The stack's tags before its `up` (engine.read_tags: no CLI process on a file backend); None when they cannot
    be read (a backend without tags: the `up` then forgets and records as if the stack had every tag)."""
    from pulumi.automation import errors as auto_errors

    try:
        return engine.read_tags(stack, job.spec.backend)
    except auto_errors.CommandError:
        return None


def _known_digest(job: StackJob, outcome: StackOutcome) -> str | None:
    from fleet.desired_state import known_digest

    return known_digest(job.spec, job.shared, job.desired) if outcome.slug else None


def _forget_unless_reapplied(stack, tags: dict[str, str] | None, applying: str | None, refresh_first: bool) -> None:
    """Before an `up`, the applied digest is removed (engine.APPLIED_DIGEST_TAG: whatever changes a stack's state
    removes it first, so that a recorded digest describes the state), except where removing it changes nothing a
    later run decides on:

    - the stack records none (`tags` read just now, after the recovery, whose import removes it);
    - it records the very digest this `up` applies (`applying`: the run's desired digest, the stack's config being
      the one it was computed from), and no refresh comes first. Then the recorded digest names the desired state
      this `up` moves the stack to, from a state a successful `up` of that same desired state left (the tag says
      so: everything else that changes a state removes it first). Whatever this `up` does, finished or not, it does
      toward that same desired state: it can only redo what that desired state does again on every `up` (a
      provider that always reports a change) or repair drift, which a skip leaves in place as well (drift is for
      `--refresh`). So the state it leaves, even interrupted, is one that skipping this stack would have left too,
      and the tag still describes it as a skip means it. What else an interruption leaves is still seen by the
      next run's skip decision (fleet.skipping): the engine's lock and tenantctl's record beside it, pending
      operations, a history whose newest entry is not a succeeded update, the last-error tag.
    - A refresh first (`--refresh`) changes the state to what the cloud holds: the tag is removed, as a refresh's.

    The digest is recorded again only when this `up` succeeds (`_record_error`)."""
    from fleet.desired_state import DIGEST_TAG

    if tags is not None and DIGEST_TAG not in tags:
        return
    if tags is not None and applying is not None and tags[DIGEST_TAG] == applying and not refresh_first:
        return
    engine.forget_applied_digest(stack)
    if tags is not None:
        tags.pop(DIGEST_TAG, None)


def _applied(job: StackJob, outcome: StackOutcome, known: str | None = None) -> dict[str, str]:
    """What a successful `up` records about itself: the digest of what it applied (a tenant stack: `known`, the
    run's desired digest for it when its config is the one that was computed from, else computed from its stack file
    as the run left it) and the commit it deployed."""
    from fleet.desired_state import COMMIT_TAG, DIGEST_TAG, applied_digest

    digest = known or (applied_digest(job.spec, job.shared) if job.shared is not None and outcome.slug else None)
    return {**({DIGEST_TAG: digest} if digest else {}), **({COMMIT_TAG: job.commit} if job.commit else {})}


def _record_error(stack, error: str | None, tags: dict[str, str] | None = None,
                  applied: dict[str, str] | None = None, current: dict[str, str] | None = None) -> None:
    """The first line of the last `up`'s error as a stack tag (removed on success): `tenantctl status` shows it.
    A successful `up` also writes the tenant's tags the stack lacks (an older stack, a renamed one), and what it
    applied (`applied`: its digest and commit): only `up` writes tags, never a preview. `current`: the stack's tags
    as this run read them before its `up` and changed them since (an `up` changes no tag of ours), else they are
    read now. Only the tags that differ are written. Best effort: a backend without tags still gets its stacks run."""
    from pulumi.automation import errors as auto_errors

    try:
        if error is None:
            current = stack.list_tags() if current is None else current
            for key, value in {**(tags or {}), **(applied or {})}.items():
                if current.get(key) != value:
                    stack.set_tag(key, value)
            # A tenant file re-added after offboarding makes its stack live again.
            stale = [LAST_ERROR_TAG, *([TAG_OFFBOARDED_AT] if tags else [])]
            for key in stale:
                if key in current:
                    stack.remove_tag(key)
        else:
            # Redacted before the cut (a cut password would escape the pattern), and before it is an argv.
            stack.set_tag(LAST_ERROR_TAG, redact(headline(error))[:TAG_LIMIT])
    except auto_errors.CommandError:
        pass


EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Failed|Failure): (?P<message>.+)$")


def headline(error: str) -> str:
    """One line that says what went wrong: a provider's traceback is reduced to its exception's message."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if "Traceback (most recent call last)" in error:
        messages = [m["message"] for m in map(EXCEPTION_LINE.match, lines) if m]
        if messages:
            return messages[-1]
    return " ".join(lines[:2]) if lines else error


def _quiet_engine_teardown() -> None:
    """When Ctrl-C stops the engine, the Automation API's output readers in this (worker) process find their
    pipes closed and say so with a traceback: that is the interruption, reported once by the caller, not a
    second error. A terminal's Ctrl-C reaches every process of its group, so the workers too."""

    previous = threading.excepthook
    if getattr(previous, "quiet_engine_teardown", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.exc_value, ValueError | OSError) and "consumer" in (args.thread.name or "")):
            previous(args)

    hook.quiet_engine_teardown = True
    threading.excepthook = hook
    warnings.filterwarnings("ignore", message="Error in event stream")


def run_in_process(pool: ProcessPoolExecutor, job: StackJob) -> Future:
    return pool.submit(run, job)


class _SessionPool(ProcessPoolExecutor):
    """Workers live in sessions of their own (services.run_sessions), out of the terminal's reach: a Ctrl-C
    of the run is forwarded to them, and each passes it on to its engine."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            for pid in list(self._processes or {}):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
        return super().__exit__(exc_type, exc, tb)


def process_pool(concurrency: int) -> ProcessPoolExecutor:
    """Fresh processes (spawned, one job each): nothing of one stack's program leaks into the next. Each watches
    the run that started it (`_die_with_run`)."""
    return _SessionPool(max_workers=max(1, concurrency), mp_context=multiprocessing.get_context("spawn"),
                        max_tasks_per_child=1, initializer=_die_with_run, initargs=(os.getpid(),))


# Set while this worker runs a stack's operation. Its session's own watch (services.run_sessions, started with the
# operation) then handles a killed run: it stops the engine cleanly, then the worker. Until then, or after, no one
# watches the run but `_die_with_run`.
_OPERATING = threading.Event()
PARENT_WATCH_S = 0.5


def _die_with_run(run_pid: int) -> None:
    """A pool worker waits for its next job on a pipe it holds both ends of, so a run killed by SIGKILL would
    leave it waiting forever, holding whatever output pipes the run was given (fleet rule 6). A thread of the
    worker sees the run gone (the worker is re-parented) and ends the worker, unless it is operating a stack:
    that is the session watch's to end, after the engine."""

    def watch() -> None:
        while True:
            if os.getppid() != run_pid and not _OPERATING.is_set():
                os._exit(1)
            time.sleep(PARENT_WATCH_S)

    threading.Thread(target=watch, name="tenantctl-run-watch", daemon=True).start()


def _counted(events: engine.EngineEvents) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in events.ops.values():
        counts[op] = counts.get(op, 0) + 1
    return counts


def _last_lines(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
