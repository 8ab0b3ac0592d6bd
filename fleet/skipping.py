"""Which tenant stacks a run may skip: those proven unchanged since a clean run (fleet rule 7).

A tenant stack is skipped by `up`, `preview` and `rehearse` only when both hold:

- its desired-state digest, computed offline now (fleet.desired_state), equals the digest its last successful
  `up` recorded (`tenant:applied-digest`; an up, refresh, import or offboarding removes it before it starts, so
  a recorded one describes the state);
- its last run was clean: no `tenant:last-error` tag, the newest entry of its history is an update that
  succeeded, its checkpoint holds no pending operation, no engine lock or tenantctl record sits beside it, and
  its last OnboardingCheck passed every check.

Anything else runs it, and says why: `--force` and `--refresh` (every selected stack), a new stack, a digest that
cannot be computed (a program that fails offline, no key, no platform outputs), no recorded digest, a changed
one, a last run that was not clean, a checkpoint that cannot be read. What a run may skip is decided after
everything that guards it (the upgrade guard, the identity checks, the removal bound) and after the platform
stack ran (its outputs are part of every digest); removals and orphans are never skipped, and skipping never
changes which wave a stack is in.

What a stack says about its last run is read from the backend's folder on a file backend (the checkpoint and
the newest history entry: no engine process), and with two CLI calls elsewhere; its tags were read once already,
for the identity checks (fleet.stack_identity).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from components.naming import tenant_stack_name
from fleet import engine
from fleet.desired_state import COMMIT_TAG, DIGEST_TAG, Desired
from fleet.stack_identity import StackIdentity
from tenancy.model import Tenant

READ_CONCURRENCY = 8
FORCED = "--force: every selected stack runs"
REFRESHED = "--refresh: every selected stack is refreshed (its drift checked) and runs"


@dataclass(frozen=True)
class LastRun:
    """What a tenant stack says about its last run: all a skip needs besides the digests."""

    applied_digest: str | None = None
    deployed_commit: str | None = None
    last_error: str | None = None
    history: tuple[str, str] | None = None  # (kind, result) of the newest history entry
    pending: tuple[str, ...] = ()
    locked: str | None = None
    checks: dict | None = None  # the last OnboardingCheck's verdicts, as the stack exports them
    unreadable: str | None = None
    offboarded: bool = False


@dataclass(frozen=True)
class Decision:
    skip: bool
    reason: str


def skip_reason(commit: str | None) -> str:
    since = commit[:12] + ("+dirty" if commit.endswith("+dirty") else "") if commit else "its last up"
    return f"desired state unchanged since {since}"


def decide(desired: Desired, last: LastRun | None) -> Decision:
    """Skip a stack only when its digest is unchanged and its last run was clean; otherwise run it, saying why."""
    if last is None:
        return Decision(False, "no stack yet")
    if desired.digest is None:
        return Decision(False, f"no desired-state digest: {desired.problem or 'it cannot be computed'}")
    if last.unreadable:
        return Decision(False, f"its last run cannot be read: {last.unreadable}")
    if last.offboarded:
        return Decision(False, "its stack was offboarded: the tenant file is back")
    if last.applied_digest is None:
        return Decision(False, "no applied digest recorded (an interrupted or failed up, a refresh or import "
                               "since, or an up before digests)")
    if last.applied_digest != desired.digest:
        return Decision(False, "desired state changed" + (f" since {last.deployed_commit[:12]}"
                                                          if last.deployed_commit else ""))
    if last.last_error:
        return Decision(False, f"its last up failed: {last.last_error}")
    if last.history is None:
        return Decision(False, "no update in its history")
    if last.history != ("update", "succeeded"):
        kind, result = last.history
        return Decision(False, f"its last operation was a {kind} that {result}")
    if last.pending:
        return Decision(False, f"pending operations: {', '.join(last.pending)}")
    if last.locked:
        return Decision(False, f"locked: {last.locked}")
    if not isinstance(last.checks, dict) or not last.checks:
        return Decision(False, "no check verdict exported")
    if not all(last.checks.values()):
        failed = sorted(name for name, ok in last.checks.items() if not ok)
        return Decision(False, f"its last check failed: {', '.join(failed)}")
    return Decision(True, skip_reason(last.deployed_commit))


def last_run(spec: engine.StackSpec, identity: StackIdentity | None) -> LastRun:
    """What the stack's tags (read with its identity), checkpoint, history and locks say. Never raises: a stack
    that cannot be read is `unreadable`, and runs."""
    from fleet import pending_operations, stack_locks
    from fleet.stack_run import LAST_ERROR_TAG

    if identity is not None and identity.unreadable:
        return LastRun(unreadable=identity.unreadable)
    tags = dict(identity.tags) if identity is not None else {}
    try:
        deployment = engine.read_checkpoint(spec.backend, spec.name)
        history = engine.last_history(spec.backend, spec.name)
        if deployment is None and engine.file_backend_dir(spec.backend) is None:
            deployment, history = _read_with_cli(spec)
        if identity is None:
            tags = _tags_with_cli(spec)
    except (OSError, ValueError, engine.EngineError) as exc:
        return LastRun(unreadable=f"{type(exc).__name__}: {exc}"[:300])
    deployment = deployment or {}
    pending = tuple(pending_operations.describe(op) for op in pending_operations.pending(deployment))
    locks = stack_locks.stack_locks(spec.backend, spec.name)
    record = stack_locks.record_path(spec.backend, spec.name)
    locked = (locks[0].describe() if locks else
              f"tenantctl's record {record} of a run" if record is not None and record.exists() else None)
    return LastRun(applied_digest=tags.get(DIGEST_TAG), deployed_commit=tags.get(COMMIT_TAG),
                   last_error=tags.get(LAST_ERROR_TAG),
                   history=(str(history.get("kind")), str(history.get("result"))) if history else None,
                   pending=pending, locked=locked, checks=_exported_checks(deployment),
                   offboarded=identity is not None and identity.tombstone)


def _exported_checks(deployment: dict) -> dict | None:
    """The checks' verdicts from the root stack's `tenant` output, where it is in the clear."""
    root = next((r for r in deployment.get("resources") or [] if r.get("type") == "pulumi:pulumi:Stack"), None)
    exported = ((root or {}).get("outputs") or {}).get("tenant")
    checks = exported.get("checks") if isinstance(exported, dict) else None
    return checks if isinstance(checks, dict) else None


def _read_with_cli(spec: engine.StackSpec) -> tuple[dict | None, dict | None]:
    """Off a file backend: `pulumi stack export` (secrets stay ciphertext) and the newest history entry."""
    from pulumi.automation import errors as auto_errors

    try:
        stack = engine.open_stack(spec, create=False)
        deployment = engine.export_state(stack).get("deployment") or {}
        newest = stack.history(page_size=1)
    except auto_errors.CommandError as exc:
        raise engine.EngineError(str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable") from None
    history = {"kind": newest[0].kind, "result": newest[0].result} if newest else None
    return deployment, history


def _tags_with_cli(spec: engine.StackSpec) -> dict[str, str]:
    from fleet.stack_identity import read_identities

    identity = read_identities(spec.backend, [spec.name]).get(spec.name)
    if identity is None or identity.unreadable:
        raise engine.EngineError(identity.unreadable if identity else "its tags cannot be read")
    return dict(identity.tags)


@dataclass
class SkipPlan:
    """Each selected tenant's decision, by slug."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    # Each judged stack's desired-state digest (computed for the skip, or for an `up` to record: `plan(digests=...)`).
    desired: dict[str, Desired] = field(default_factory=dict)

    def skipped(self, slug: str) -> bool:
        found = self.decisions.get(slug)
        return found is not None and found.skip

    def reason(self, slug: str) -> str | None:
        found = self.decisions.get(slug)
        return found.reason if found else None


def plan(env: str, tenants: list[Tenant], spec_for: Callable[[str, Tenant | None], engine.StackSpec],
         shared: Any, no_shared: str | None, identities: dict[str, StackIdentity], existing: set[str],
         concurrency: int, force: bool = False, refresh: bool = False,
         desired: dict[str, Desired] | None = None, digests: bool = False) -> SkipPlan:
    """Every tenant's decision. `shared` is what every digest shares (None: no digest, and `no_shared` says why);
    `existing` the tenant stacks that exist (by slug); `desired` the digests, when the caller has them already.
    With `digests` (an `up`), the digests are computed even when `force` or `refresh` runs every stack: each
    stack's `up` records its own as applied (instead of computing it again after the `up`: the same mock run, done
    once per stack either way)."""
    from fleet import desired_state

    # A new stack runs whatever its digest: none is computed for it.
    known = [t for t in tenants if t.slug in existing]
    root = spec_for(env, None).backend.project_root
    if force or refresh:
        if digests and known and shared is not None and desired is None:
            desired = desired_state.desired_digests(root, env, known, spec_for, shared, concurrency)
        return SkipPlan({t.slug: Decision(False, FORCED if force else REFRESHED) for t in tenants}, desired or {})
    decisions = {t.slug: Decision(False, "no stack yet") for t in tenants if t.slug not in existing}
    if not known:
        return SkipPlan(decisions)
    specs = {t.slug: spec_for(tenant_stack_name(env, t.slug), t) for t in known}
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        # The last runs are read while the digest workers compute (reading is this process's work, the digests
        # theirs). Without shared inputs there is no digest, and every stack runs: nothing to read.
        reads = {} if shared is None else {
            t.slug: pool.submit(last_run, specs[t.slug], identities.get(tenant_stack_name(env, t.slug)))
            for t in known}
        if desired is None:
            desired = desired_state.desired_digests(root, env, known, spec_for, shared, concurrency,
                                                    no_shared=no_shared or "no digest inputs")
        lasts = {slug: future.result() for slug, future in reads.items()}
    for tenant in known:
        decisions[tenant.slug] = decide(desired[tenant.slug], lasts.get(tenant.slug, LastRun()))
    return SkipPlan(decisions, desired)
