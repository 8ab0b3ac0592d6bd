"""`tenantctl status`: every tenant of an environment as desired, applied, ready, verified and drifted.

It joins, per tenant: what is desired (the desired-state digest of its stack, computed offline:
fleet.desired_state; and the git commit that last changed its file), its stack (the digest its last
successful `up` applied and the commit it deployed, the result and time of its last update, the error
`tenantctl up` recorded), its `tenant_configs` row (updated_at), the verdict and time of its last
OnboardingCheck, and with `refresh` a preview-only refresh (drift in the cloud or the database). Stacks
without a file and files without a stack are listed as orphans. Stacks are read in parallel, a bounded
number at a time, each in its own process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from components.naming import environment_option, split_stack_name, tenant_stack_name
from fleet import desired_state, engine
from fleet.desired_state import COMMIT_TAG, DIGEST_TAG
from fleet.stack_identity import TAG_OFFBOARDED_AT
from fleet.stack_run import LAST_ERROR_TAG, NO_CHANGE_OPS, drift_targets, process_pool
from tenancy.model import Tenant
from tenancy.redaction import redact

IN_SYNC, DRIFTED, NOT_CHECKED, UNKNOWN = "IN_SYNC", "DRIFTED", "NOT_CHECKED", "UNKNOWN"
CHECK_FAILURE = "onboarding checks failed"


@dataclass
class StackFacts:
    """What one tenant stack says about itself, read in a worker process."""

    stack: str
    exists: bool = True
    applied_digest: str | None = None  # fleet.desired_state's tag, recorded by the last successful `up`
    deployed_commit: str | None = None
    file_digest: str | None = None  # what an older `up` exported instead: the tenant file's digest
    checks: dict | None = None
    checked_at: str | None = None
    last_result: str | None = None  # succeeded | failed | in-progress
    last_update: str | None = None  # ISO time its last update ended
    last_error: str | None = None
    drift: str = NOT_CHECKED
    drift_detail: str | None = None
    read_error: str | None = None
    offboarded_at: str | None = None  # a tombstone: offboarding left the stack with its history
    broken: str | None = None  # its checkpoint cannot be read: why, the backup, and how to restore it


def read_stack(spec: engine.StackSpec, refresh: bool) -> StackFacts:
    """Outputs, last update, recorded error, and with `refresh` what a refresh would change. Never raises."""
    from pulumi.automation import errors as auto_errors

    facts = StackFacts(spec.name)
    facts.broken = engine.checkpoint_problem(spec.backend, spec.name)
    if facts.broken:  # the engine would only fail on it, naming no backup
        facts.drift = UNKNOWN if refresh else NOT_CHECKED
        return facts
    try:
        stack = engine.open_stack(spec, create=False)
    except auto_errors.StackNotFoundError:
        facts.exists = False
        return facts
    except (auto_errors.CommandError, engine.EngineError) as exc:
        facts.read_error, facts.drift = _first_line(str(exc)), UNKNOWN if refresh else NOT_CHECKED
        return facts
    try:
        outputs = {k: v.value for k, v in stack.outputs().items() if not v.secret}
        tenant = outputs.get("tenant") or {}
        facts.file_digest = tenant.get("file_digest")
        facts.checks, facts.checked_at = tenant.get("checks"), tenant.get("checked_at")
        history = stack.history(page_size=1)
        if history:
            facts.last_result = history[0].result
            ended = history[0].end_time or history[0].start_time
            facts.last_update = ended.astimezone(UTC).isoformat(timespec="seconds") if ended else None
        tags = stack.list_tags()
        facts.applied_digest, facts.deployed_commit = tags.get(DIGEST_TAG), tags.get(COMMIT_TAG)
        last_error = tags.get(LAST_ERROR_TAG)  # redacted again: a tag written by hand or by an older tenantctl
        facts.last_error = redact(last_error, spec.secrets.values()) if last_error else None
        facts.offboarded_at = tags.get(TAG_OFFBOARDED_AT)
    except auto_errors.CommandError as exc:
        facts.read_error = _first_line(str(exc))
    if refresh:
        try:
            _preview_refresh(stack, facts)
        except auto_errors.CommandError as exc:
            facts.drift, facts.drift_detail = UNKNOWN, _first_line(str(exc))
    return facts


def _preview_refresh(stack, facts: StackFacts) -> None:
    """What a refresh would change. Kubernetes objects a stack renders to files (`kubernetesRenderDir`) have no
    cluster to be read back from: they are left out, and the detail says so."""
    target, note = drift_targets(stack)
    summary = stack.preview_refresh(color="never", on_output=lambda _line: None, target=target).change_summary \
        if target != [] else {}
    changed = {getattr(op, "value", str(op)): n for op, n in summary.items()
               if getattr(op, "value", str(op)) not in NO_CHANGE_OPS and n}
    facts.drift = DRIFTED if changed else IN_SYNC
    facts.drift_detail = "; ".join(filter(None, [", ".join(f"{n} {op}" for op, n in sorted(changed.items())),
                                                 note])) or None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return redact((errors or lines or ["(no detail)"])[-1])[:300]


@dataclass
class TenantStatus:
    tenant: str
    tier: str
    stack: str
    desired: str  # the stack's desired-state digest, short (and the commit that last changed the tenant file)
    applied: str | None  # the digest the last successful `up` applied, short
    ready: str  # ready | pending | failed | never applied | unreadable | broken
    verified: str  # ok | failed | unverified
    verified_at: str | None
    drift: str
    last_error: str | None
    age: str | None  # of the last update
    row_updated_at: str | None = None
    problems: list[str] = field(default_factory=list)  # why this tenant fails the gate
    deployed_commit: str | None = None  # what the last successful `up` deployed
    state: str = "active"  # the tenant file's: active | suspended, and a signing-secret rotation under way

    def as_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class StatusReport:
    env: str
    tenants: list[TenantStatus]
    stacks_without_file: list[str]
    files_without_stack: list[str]
    refreshed: bool
    max_unverified: timedelta
    offboarded: dict[str, str] = field(default_factory=dict)  # tombstoned slug -> when (listed apart, rule 3)

    @property
    def failing(self) -> list[TenantStatus]:
        return [t for t in self.tenants if t.problems]

    @property
    def ok(self) -> bool:
        return not self.failing and not self.stacks_without_file

    def as_dict(self) -> dict:
        return {"env": self.env, "ok": self.ok, "refreshed": self.refreshed,
                "max_unverified_hours": self.max_unverified.total_seconds() / 3600,
                "tenants": [t.as_dict() for t in self.tenants],
                "orphans": {"stacks_without_file": self.stacks_without_file,
                            "files_without_stack": self.files_without_stack},
                "offboarded": self.offboarded}


def collect(env: str, tenants: list[Tenant], tenants_dir: Path, stacks: list[str],
            spec_for: Callable[[str, Tenant | None], engine.StackSpec], *, refresh: bool = False,
            concurrency: int = 4, max_unverified: timedelta = timedelta(days=7),
            rows: Callable[[list[str]], dict[str, str | None]] | None = None,
            now: datetime | None = None, desired: dict[str, str | None] | None = None) -> StatusReport:
    """`desired`: each tenant stack's desired-state digest (default: computed here, offline)."""
    now = now or datetime.now(UTC)
    existing = {slug for e, slug in map(split_stack_name, stacks) if e == env and slug}
    declared = {t.slug: t for t in tenants}
    read = sorted(existing)
    with process_pool(concurrency) as pool:
        futures = {slug: pool.submit(read_stack, spec_for(tenant_stack_name(env, slug), declared.get(slug)), refresh)
                   for slug in read}
        wait(futures.values())
    facts = {slug: future.result() for slug, future in futures.items()}
    if desired is None:
        root = spec_for(env, None).backend.project_root
        shared = desired_state.environment_shared(root, env, spec_for,
                                                  desired_state.environment_key(spec_for(env, None).backend, env))
        declared_with_stack = [t for t in tenants if t.slug in existing]
        desired = desired_state.run_digests(root, env, declared_with_stack, spec_for, shared, concurrency)
    commits = _file_commits(tenants_dir)
    updated = rows([str(t.tenant_id) for t in tenants]) if rows else {}
    statuses = [_status(t, facts.get(t.slug), commits.get(t.slug), updated.get(str(t.tenant_id)), env, now,
                        max_unverified, rows is not None, desired.get(t.slug))
                for t in sorted(tenants, key=lambda t: t.slug)]
    tombstones = {slug: f.offboarded_at for slug, f in facts.items() if f.offboarded_at and slug not in declared}
    return StatusReport(env, statuses, sorted(existing - set(declared) - set(tombstones)),
                        sorted(set(declared) - existing), refresh, max_unverified, tombstones)


def short_digest(digest: str | None) -> str | None:
    return digest.removeprefix(desired_state.DIGEST_PREFIX)[:12] if digest else None


def _status(tenant: Tenant, facts: StackFacts | None, commit: str | None, row_updated_at: str | None, env: str,
            now: datetime, max_unverified: timedelta, rows_read: bool = False,
            desired_digest: str | None = None) -> TenantStatus:
    # Without a desired-state digest (no key beside the state, no platform outputs, a program that fails offline),
    # what is compared is the tenant file's digest with the one an `up` exported, as before the digests.
    wanted = short_digest(desired_digest) if desired_digest else tenant.digest
    desired = wanted + (f" ({commit})" if commit else "")
    status = TenantStatus(tenant.slug, tenant.tier.value, tenant_stack_name(env, tenant.slug), desired, None,
                          "pending", "unverified", None, NOT_CHECKED, None, None, row_updated_at,
                          state=lifecycle_state(tenant, now))
    if facts is None or not facts.exists:
        status.problems.append(f"no stack yet: `tenantctl up {environment_option(env)}` creates it")
        return status
    applied = short_digest(facts.applied_digest) if desired_digest else facts.file_digest
    status.applied, status.drift, status.last_error = applied, facts.drift, facts.last_error
    status.deployed_commit = facts.deployed_commit
    status.age = _age(facts.last_update, now)
    if facts.broken:
        status.ready, status.last_error = "broken", "checkpoint unreadable"
        status.problems.append(f"stack broken: {facts.broken}")
        return status
    if facts.read_error:
        status.ready, status.last_error = "unreadable", facts.read_error
    elif facts.last_result == "failed":
        status.ready = "failed"
    elif applied != wanted:
        status.ready = "pending" if applied or facts.last_result else "never applied"
    else:
        status.ready = "ready"
    checks_ok = isinstance(facts.checks, dict) and bool(facts.checks) and all(facts.checks.values())
    failed_check = status.ready == "failed" and CHECK_FAILURE in (facts.last_error or "")
    if failed_check or (isinstance(facts.checks, dict) and facts.checks and not checks_ok):
        status.verified = "failed"
    elif checks_ok:
        status.verified, status.verified_at = "ok", facts.checked_at
    if status.ready in ("failed", "unreadable", "pending", "never applied"):
        status.problems.append(f"stack {status.ready}")
    if status.verified == "failed":
        status.problems.append("its last check failed")
    elif status.verified != "ok":
        status.problems.append("never verified")
    elif _older_than(facts.checked_at, now, max_unverified):
        status.problems.append(f"last verified more than {max_unverified} ago")
    if rows_read and status.ready == "ready" and row_updated_at is None:
        status.problems.append("its tenant_configs row is missing (deleted outside Pulumi?)")
    if status.drift in (DRIFTED, UNKNOWN):
        status.problems.append(f"drift {status.drift}" + (f": {facts.drift_detail}" if facts.drift_detail else ""))
    return status


def lifecycle_state(tenant: Tenant, now: datetime) -> str:
    """`active` or `suspended`, and `rotating to vN` while a signing-secret rotation overlaps (`rotation overdue`
    once its deadline passed: the next `up` retires the old secret). What is applied is READY's business."""
    from tenancy.signing_rotation import signing_phase

    phase = signing_phase(tenant, now)
    rotation = tenant.webhook.rotation
    shown = tenant.state.value
    if phase.overlapping:
        shown += f", rotating to v{phase.next_version}"
    elif rotation is not None:
        shown += f", rotation to v{rotation.next_version} overdue"
    return shown


def _age(iso: str | None, now: datetime) -> str | None:
    if not iso:
        return None
    seconds = max(0, int((now - datetime.fromisoformat(iso)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _older_than(iso: str | None, now: datetime, limit: timedelta) -> bool:
    return iso is None or now - datetime.fromisoformat(iso) > limit


def _file_commits(tenants_dir: Path) -> dict[str, str]:
    """The commit that last changed each tenant file, from one `git log`; `+` when the working tree differs."""
    try:
        log = subprocess.run(["git", "log", "--format=%x00%h", "--name-only", "--", "."], cwd=tenants_dir,
                             capture_output=True, text=True, timeout=60)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=tenants_dir, capture_output=True,
                               text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if log.returncode != 0:
        return {}
    commits: dict[str, str] = {}
    for entry in log.stdout.split("\0")[1:]:
        commit, *paths = entry.strip().splitlines()
        for path in paths:
            commits.setdefault(Path(path).stem, commit)
    for line in dirty.stdout.splitlines():
        slug = Path(line[3:].strip()).stem
        commits[slug] = commits.get(slug, "") + "+"
    return commits


def status_table(report: StatusReport):
    from rich.table import Table

    title = f"Environment {report.env}: " + ("ok" if report.ok else f"{len(report.failing)} tenant(s) need attention")
    table = Table(title=title)
    columns = ("TENANT", "TIER", "STATE", "STACK", "DESIRED", "APPLIED", "READY", "VERIFIED", "DRIFT", "ROW",
               "LAST ERROR", "AGE")
    for column in columns:
        table.add_column(column)
    now = datetime.now(UTC)
    for t in report.tenants:
        verified = t.verified + (f" ({_age(t.verified_at, now)} ago)" if t.verified_at else "")
        row = f"updated {_age(t.row_updated_at, now)} ago" if t.row_updated_at else "-"
        applied = (t.applied or "-") + (f" @ {t.deployed_commit[:12]}" if t.deployed_commit else "")
        table.add_row(t.tenant, t.tier, t.state, t.stack, t.desired, applied, t.ready, verified, t.drift, row,
                      (t.last_error or "-")[:80], t.age or "-")
    return table


def orphan_lines(report: StatusReport) -> list[str]:
    option = environment_option(report.env)
    lines = [f"stack without a tenant file: {tenant_stack_name(report.env, s)} (an orphan: left alone; restore its "
             f"file, or offboard it with `tenantctl destroy {s} {option}`)" for s in report.stacks_without_file]
    lines += [f"offboarded: {tenant_stack_name(report.env, s)} at {when} (its stack kept with its history)"
              for s, when in sorted(report.offboarded.items())]
    lines += [f"tenant file without a stack: {s} (`tenantctl up {option}` creates it)"
              for s in report.files_without_stack]
    return lines
