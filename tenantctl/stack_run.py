"""One engine operation on one stack, in a process of its own, reported as a `StackOutcome`.

The program runs as the Automation API's inline program, inside the process that asked for the
operation, and the Pulumi SDK keeps its settings per process: stacks that run at the same time each
get their own process (`run_in_process`).
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from components.naming import TENANT_STACK_TYPE, split_stack_name
from tenantctl import engine

NO_CHANGE_OPS = {"same", "read", "refresh", "discard", "read-discard"}
OPERATIONS = ("preview", "up", "destroy", "destroy-preview", "refresh", "offboard")


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
    # offboard (tenantctl.offboard_stack): also purge the tenant's history; also erase the stack's history;
    # whether the tenant's file is there for the program (None: look in the stack's tenantsDir).
    purge: bool = False
    erase_history: bool = False
    tenant_file: bool | None = None


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
        """created / updated / deleted / unchanged, from the engine's summary."""
        created = self.summary.get("create", 0)
        deleted = self.summary.get("delete", 0)
        replaced = self.summary.get("replace", 0)
        unchanged = sum(self.summary.get(op, 0) for op in NO_CHANGE_OPS)
        updated = self.changes - created - deleted
        return {"created": created, "updated": updated, "deleted": deleted, "replaced": replaced,
                "unchanged": unchanged}

    def as_dict(self) -> dict:
        return {"stack": self.stack, "operation": self.operation, "status": self.status, **self.counts(),
                "summary": self.summary, "outputs": self.outputs, "errors": self.errors,
                "seconds": round(self.seconds, 1)}


def run(job: StackJob) -> StackOutcome:
    """The operation, in this process. Every failure is an outcome, never an exception."""
    from pulumi.automation import errors as auto_errors

    _quiet_engine_teardown()
    if job.operation == "offboard":
        from tenantctl.offboard_stack import offboard_stack

        return offboard_stack(job.spec, purge=job.purge, erase_history=job.erase_history,
                              tenant_file=job.tenant_file)
    started = time.monotonic()
    outcome = StackOutcome(job.spec.name, job.operation)
    events = engine.EngineEvents()
    quiet = {"color": "never", "on_output": lambda _line: None}
    packs = {"policy_packs": job.policy_packs} if job.policy_packs else {}
    stack = None
    try:
        stack = engine.open_stack(job.spec, create=job.create)
        if job.operation == "up":
            result = stack.up(on_event=events, **packs, **quiet)
            outcome.summary = dict(result.summary.resource_changes or {})
        elif job.operation == "preview":
            preview = stack.preview(on_event=events, **packs, **quiet)
            outcome.summary = {getattr(k, "value", str(k)): v for k, v in preview.change_summary.items()}
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
        if job.operation in ("up", "refresh"):
            outcome.outputs = {k: v.value for k, v in stack.outputs().items() if not v.secret}
        if job.operation == "up":
            _record_error(stack, None)
    except auto_errors.StackNotFoundError:
        outcome.status = "failed"
        outcome.errors = [f"stack {job.spec.name} does not exist on this backend: create it with `pulumi stack init "
                          f"{job.spec.name}` and set its secrets (docs/onboarding-runbook.md, step 2)"]
    except auto_errors.CommandError as exc:
        outcome.status = "failed"
        outcome.summary = outcome.summary or _counted(events)
        outcome.errors = [m for messages in events.errors.values() for m in messages] + events.general_errors
        outcome.errors = outcome.errors or [_last_lines(str(exc))]
        if job.operation == "up" and stack is not None:
            _record_error(stack, outcome.errors[0])
    except engine.EngineError as exc:
        outcome.status = "failed"
        outcome.errors = [str(exc)]
    outcome.ops = events.ops
    outcome.seconds = time.monotonic() - started
    return outcome


LAST_ERROR_TAG = "tenant:last-error"
TAG_LIMIT = 256


def _record_error(stack, error: str | None) -> None:
    """The first line of the last `up`'s error as a stack tag (removed on success): `tenantctl status` shows it.
    Best effort: a backend without tags still gets its stacks run."""
    from pulumi.automation import errors as auto_errors

    try:
        if error is None:
            if LAST_ERROR_TAG in stack.list_tags():
                stack.remove_tag(LAST_ERROR_TAG)
        else:
            stack.set_tag(LAST_ERROR_TAG, headline(error)[:TAG_LIMIT])
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


def process_pool(concurrency: int) -> ProcessPoolExecutor:
    """Fresh processes (spawned, one job each): nothing of one stack's program leaks into the next."""
    return ProcessPoolExecutor(max_workers=max(1, concurrency), mp_context=multiprocessing.get_context("spawn"),
                               max_tasks_per_child=1)


def _counted(events: engine.EngineEvents) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in events.ops.values():
        counts[op] = counts.get(op, 0) + 1
    return counts


def _last_lines(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
