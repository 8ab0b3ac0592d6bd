"""`tenantctl preview|up`: an environment's stacks, selected, run in parallel, and rolled out in waves.

An environment `<env>` is its platform stack and one tenant stack `<env>.<slug>` per tenant file.
A run selects the stacks a change affects (a tenant file: its stack; shared code or the platform's
config: all of them), previews them all at once or, on `up`, applies the platform first and then
the tenants in waves: a canary premium and basic tenant, then waves that double in size. A failing
tenant does not stop the others of its wave; a wave with a failure stops the rollout.

Nothing is destroyed because a file is missing (fleet rule 3). A stack is offboarded only when the git
range of `up --changed-since` removed its tenant_id from every file (a removal); a live stack without a
file is an orphan, reported and left alone. Removals and orphans together above `max_removals` refuse
the run before anything runs: a partial checkout or another tenants folder stops there. Stacks are
matched to files by the tenant_id their tags record: a changed tenant_id, or `previous_slugs` naming
another tenant's stack, refuses the run too.
Stacks run in separate processes, at most `concurrency` at a time: KMS CreateKey allows 5 calls per
second per account and region, and each tenant stack creates one key.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, field, replace
from typing import Any

from components.naming import split_stack_name, tenant_stack_name
from fleet import engine, skipping
from fleet.error_lines import one_line
from fleet.plan import ChangedTenants
from fleet.skipping import Decision, SkipPlan
from fleet.stack_identity import TAG_SLUG, TAG_TENANT_ID, TAG_TIER, StackIdentity
from fleet.stack_run import StackJob, StackOutcome, process_pool, run_in_process
from tenancy.model import Tenant, Tier

DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_REMOVALS = 1
FIRST_WAVE_AFTER_CANARY = 4


class FleetError(Exception):
    pass


class SelectionRefused(FleetError):
    """The run would remove more than it may, or match a stack to the wrong tenant: nothing has run."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Selection:
    env: str
    platform: bool
    tenants: list[Tenant]  # to preview or apply
    removed: list[str] = field(default_factory=list)  # slugs whose tenant the git range removed: offboarded
    renames: list[tuple[str, str]] = field(default_factory=list)  # (old slug, new slug) whose stack moves
    missing: list[str] = field(default_factory=list)  # --only slugs that name nothing
    orphans: list[str] = field(default_factory=list)  # live stacks without a file that no range removed
    tombstoned: list[str] = field(default_factory=list)  # stacks offboarding left with their history
    # What each existing tenant stack's tags said when it was selected (fleet.skipping reads its last run there).
    identities: dict[str, StackIdentity] = field(default_factory=dict)


def select(env: str, tenants: list[Tenant], stacks: list[str], only: set[str] | None = None,
           changes: ChangedTenants | None = None, identities: dict[str, StackIdentity] | None = None,
           removed_ids: dict[str, str] | None = None, max_removals: int = DEFAULT_MAX_REMOVALS) -> Selection:
    """What a run does with each stack and file. `identities` are the stacks' recorded tenant_ids (a stack
    missing from it has none yet); `removed_ids` maps each tenant_id the git range removed to its old slug."""
    identities = identities or {}
    removed_ids = removed_ids or {}

    def identity(slug: str) -> StackIdentity:
        name = tenant_stack_name(env, slug)
        return identities.get(name) or StackIdentity(name, None)

    existing = {slug for env_, slug in map(split_stack_name, stacks) if env_ == env and slug}
    tombstoned = {slug for slug in existing if identity(slug).tombstone}
    declared = {t.slug for t in tenants}
    problems = _identity_problems(env, tenants, existing, identity)
    renames = []
    owners = {identity(slug).tenant_id: slug for slug in existing - tombstoned if identity(slug).tenant_id}
    for tenant in tenants:
        old = next((o for o in tenant.previous_slugs if o in existing - declared), None)
        if tenant.slug in existing:
            continue
        if old is None:
            holder = owners.get(str(tenant.tenant_id))
            if holder is not None and holder not in declared:
                problems.append(f"{tenant.slug}: tenant {tenant.tenant_id} already has stack "
                                f"{tenant_stack_name(env, holder)}: if it was renamed, add "
                                f"`previous_slugs: [{holder}]`")
            continue
        owner = identity(old).tenant_id
        if owner != str(tenant.tenant_id):
            whose = f"belongs to tenant {owner}" if owner else "records no tenant_id"
            problems.append(f"{tenant.slug}: previous_slugs names stack {tenant_stack_name(env, old)}, which {whose}, "
                            f"not {tenant.tenant_id}: a rename keeps its tenant_id (remove {old} from previous_slugs)")
            continue
        renames.append((old, tenant.slug))
        existing = (existing - {old}) | {tenant.slug}
    without_file = sorted(existing - declared - tombstoned)
    removed = [slug for slug in without_file if identity(slug).tenant_id in removed_ids]
    orphans = [slug for slug in without_file if slug not in removed]
    chosen = list(tenants)
    if changes is not None and not changes.program_changed:
        chosen = [t for t in tenants if t.slug in changes.slugs or t.slug not in existing]
    missing: list[str] = []
    if only is not None:
        known = declared | set(removed) | set(orphans)
        missing = sorted(only - known)
        chosen = [t for t in chosen if t.slug in only]
        removed = [slug for slug in removed if slug in only]
        orphans = [slug for slug in orphans if slug in only]
        renames = [pair for pair in renames if pair[1] in only]
    if len(removed) + len(orphans) > max_removals:
        names = ", ".join(tenant_stack_name(env, slug) for slug in [*removed, *orphans])
        problems.append(f"{len(removed)} removal(s) and {len(orphans)} orphan(s) ({names}) exceed --max-removals "
                        f"{max_removals}: is this the right tenants folder and a full checkout? Nothing was run")
    if problems:
        raise SelectionRefused(problems)
    platform = env not in stacks or (only is None and (changes is None or changes.program_changed))
    return Selection(env, platform, chosen, removed, renames, missing, orphans, sorted(tombstoned), identities)


def _identity_problems(env: str, tenants: list[Tenant], existing: set[str],
                       identity: Callable[[str], StackIdentity]) -> list[str]:
    """A file whose stack records another tenant_id: the file's id was edited, or its slug reused."""
    problems = []
    for tenant in tenants:
        recorded = identity(tenant.slug).tenant_id if tenant.slug in existing else None
        if recorded is not None and recorded != str(tenant.tenant_id):
            problems.append(f"{tenant.slug}: the file says tenant_id {tenant.tenant_id}, but stack "
                            f"{tenant_stack_name(env, tenant.slug)} belongs to tenant {recorded}; a tenant_id never "
                            "changes: restore it, or onboard the new client under a new slug")
    return problems


def candidate_stacks(env: str, tenants: list[Tenant], only: set[str] | None,
                     changes: ChangedTenants | None, removed_ids: dict[str, str] | None = None) -> list[str] | None:
    """The only stacks a targeted run can touch (its platform, the named or changed tenants, their previous
    names, and the old slugs of removed tenants), so they can be looked up one by one; None when every stack
    must be listed."""
    if only is not None:
        slugs = set(only)
    elif changes is not None and not changes.program_changed:
        slugs = changes.slugs | changes.removed | set((removed_ids or {}).values())
    else:
        return None
    previous = {old for t in tenants if t.slug in slugs for old in t.previous_slugs}
    return [env, *(tenant_stack_name(env, slug) for slug in sorted(slugs | previous))]


def waves(tenants: list[Tenant]) -> list[list[Tenant]]:
    """A canary premium and basic tenant first, then waves doubling in size."""
    ordered = sorted(tenants, key=lambda t: t.slug)
    canary: list[Tenant] = []
    for tier in (Tier.PREMIUM, Tier.BASIC):
        first = next((t for t in ordered if t.tier is tier), None)
        if first is not None:
            canary.append(first)
    rest = [t for t in ordered if t not in canary]
    result = [canary] if canary else []
    size = FIRST_WAVE_AFTER_CANARY
    while rest:
        result.append(rest[:size])
        rest, size = rest[size:], size * 2
    return result


def tenant_tags(tenant: Tenant) -> dict[str, str]:
    """The tags a tenant stack carries: `tenant:id` is what matches it to its file."""
    return {TAG_SLUG: tenant.slug, TAG_TIER: tenant.tier.value, TAG_TENANT_ID: str(tenant.tenant_id)}


@dataclass
class FleetResult:
    env: str
    operation: str
    platform: StackOutcome | None
    tenants: list[StackOutcome]
    removed: list[StackOutcome]
    waves: list[list[str]] = field(default_factory=list)
    stopped_after_wave: int | None = None
    notes: list[str] = field(default_factory=list)
    # Live stacks without a file that no git range removed: left alone, and the run exits 1 (rule 3).
    orphans: list[str] = field(default_factory=list)
    tombstoned: list[str] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)
    # What the run wants an operator to know that is no failure (a wave whose every stack was skipped).
    remarks: list[str] = field(default_factory=list)
    # A gated release (fleet.release_gate): "until-canary" or "after-canary", and the stacks `--until canary`
    # held back for the approval (the later waves' tenant stacks, then the removals), each listed, none run.
    stage: str | None = None
    held: list[str] = field(default_factory=list)

    @property
    def outcomes(self) -> list[StackOutcome]:
        return [*([self.platform] if self.platform else []), *self.tenants, *self.removed]

    @property
    def skipped(self) -> list[StackOutcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    def tally(self) -> dict[str, int]:
        """Every stack of the run as ok (ran, changed nothing), changed, failed or skipped (not run, with why)."""
        counts = dict.fromkeys(("ok", "changed", "failed", "skipped"), 0)
        for outcome in self.outcomes:
            if outcome.status in ("failed", "skipped"):
                counts[outcome.status] += 1
            else:
                counts["changed" if outcome.changes else "ok"] += 1
        return counts

    @property
    def ok(self) -> bool:
        return (all(o.status != "failed" for o in self.outcomes) and self.stopped_after_wave is None
                and not self.orphans)

    def as_dict(self) -> dict:
        return {"env": self.env, "operation": self.operation, "ok": self.ok,
                "platform": self.platform.as_dict() if self.platform else None,
                "tenants": [o.as_dict() for o in self.tenants], "removed": [o.as_dict() for o in self.removed],
                "orphans": [tenant_stack_name(self.env, slug) for slug in self.orphans],
                "tombstoned": [tenant_stack_name(self.env, slug) for slug in self.tombstoned],
                "renames": [{"from": tenant_stack_name(self.env, old), "to": tenant_stack_name(self.env, new)}
                            for old, new in self.renames],
                "waves": self.waves, "stopped_after_wave": self.stopped_after_wave, "notes": self.notes,
                "counts": self.tally(),
                "skipped": [{"stack": o.stack, "reason": o.reason} for o in self.skipped],
                "remarks": self.remarks, "stage": self.stage, "held": self.held}


SpecFor = Callable[[str, "Tenant | None"], engine.StackSpec]


def run_fleet(selection: Selection, operation: str, spec_for: SpecFor, concurrency: int = DEFAULT_CONCURRENCY,
              say: Callable[[str], None] = lambda _line: None, platform_applied: bool = True,
              policy_packs: list[str] | None = None, create_stacks: bool = True,
              apply_hint: str | None = None, shared: Callable[[], tuple[Any, str | None]] | None = None,
              commit: str | None = None, force: bool = False, refresh: bool = False,
              stage: str | None = None, refused_removals: dict[str, str] | None = None) -> FleetResult:
    """Preview or apply the selection. `spec_for(stack, tenant)` gives each stack's spec (tenant None: platform);
    every preview and up runs with `policy_packs`. Without `create_stacks` a missing stack is a failure that
    says how to create it (a preview with a read-only role must not create stacks). `apply_hint` is the command
    that applies the environment (default `tenantctl up --env <env>`), named when its platform stack is missing.

    `shared()` gives what every tenant stack's desired-state digest shares (fleet.desired_state), or None and why
    there is none, read after the platform stack ran (its outputs are part of it). With it, a tenant stack whose
    digest is unchanged since a clean run is skipped (fleet.skipping), unless `force` (every selected stack runs)
    or `refresh` (every selected stack is refreshed first, then runs); each successful `up` records its stack's
    digest, and `commit`. Skipping changes no wave: a stack is skipped in its wave, removals and orphans are
    never skipped.

    `stage` gates the release after the canary wave (fleet.release_gate; the caller checks the gate): "until-canary"
    runs the platform and the canary wave only, and lists every later stack and removal as held; "after-canary"
    runs the later waves and the removals, neither the platform (the canary run applied it) nor the canary wave.

    `refused_removals` (slug -> why: fleet.export_records, no recorded export covers the tenant) are removals
    that are not offboarded: each is a failed outcome with its reason (the run fails), the rest run as usual."""
    packs = list(policy_packs or [])
    if operation not in ("preview", "up"):
        raise FleetError(f"unknown fleet operation {operation!r}")
    if stage not in (None, "until-canary", "after-canary") or (stage and operation != "up"):
        raise FleetError(f"a gated stage {stage!r} goes with up only")
    env = selection.env
    result = FleetResult(env, operation, None, [], [], orphans=list(selection.orphans),
                         tombstoned=list(selection.tombstoned), renames=list(selection.renames), stage=stage)
    rollout = waves(selection.tenants) if operation == "up" else []
    if stage == "until-canary":  # only the canary wave is judged and run; the rest is listed as held
        result.held = [tenant_stack_name(env, t.slug) for wave in rollout[1:] for t in wave]
        result.held += [tenant_stack_name(env, slug) for slug in selection.removed]
        selection = replace(selection, tenants=rollout[0] if rollout else [])
    elif stage == "after-canary":
        selection = replace(selection, tenants=[t for wave in rollout[1:] for t in wave])
    for slug in selection.orphans:
        say(f"{tenant_stack_name(env, slug)}: orphan (no tenant file, and no git range removed it): left alone")
    renamed = {new for _old, new in selection.renames}
    with process_pool(concurrency) as pool:
        for old, new in selection.renames:
            if operation == "preview":  # a preview writes nothing to the backend (rule 2)
                say(f"{tenant_stack_name(env, old)} -> {tenant_stack_name(env, new)}: `up` renames the stack "
                    "(previous_slugs, same tenant_id)")
                continue
            say(f"{tenant_stack_name(env, old)} -> {tenant_stack_name(env, new)}: renaming the stack (previous_slugs)")
            outcome = pool.submit(rename_stack, spec_for(tenant_stack_name(env, old), None),
                                  tenant_stack_name(env, new)).result()
            if outcome is not None:
                result.notes.append(outcome)
                result.stopped_after_wave = 0
                return result
        if selection.platform and stage == "after-canary":
            result.remarks.append(f"the platform stack {env}: applied by the canary run (`--until canary`), "
                                  "not run again")
        elif selection.platform:
            say(f"pulumi {operation} of the platform stack {env}")
            result.platform = run_in_process(pool, StackJob(spec_for(env, None), operation, policy_packs=packs,
                                                            create=create_stacks, commit=commit,
                                                            refresh_first=refresh)).result()
            _report(result.platform, say)
            if not result.platform.ok and operation == "up":
                result.tenants = [_skipped(tenant_stack_name(env, t.slug), operation, "the platform stack failed")
                                  for t in selection.tenants]
                return result
        platform_ready = platform_applied or (operation == "up" and result.platform is not None)
        if not platform_ready:
            reason = (f"the platform stack {env} has not been applied yet: "
                      f"`{apply_hint or f'tenantctl up --env {env}'}` applies it first")
            result.tenants = [_skipped(tenant_stack_name(env, t.slug), operation, reason) for t in selection.tenants]
            return result
        common, no_shared = shared() if shared is not None else (None, None)
        plan = _skip_plan(selection, operation, spec_for, common, no_shared, concurrency, force, refresh, say) \
            if shared is not None else SkipPlan()
        jobs = lambda group: [StackJob(spec_for(tenant_stack_name(env, t.slug), t), operation,  # noqa: E731
                                       policy_packs=packs, create=create_stacks,
                                       shared=common if operation == "up" else None, commit=commit,
                                       refresh_first=refresh, reason=plan.reason(t.slug),
                                       desired=plan.desired.get(t.slug) if operation == "up" else None)
                              for t in group]
        if operation == "preview":
            previewed = [t for t in selection.tenants if t.slug not in renamed]
            ran = [t for t in previewed if not plan.skipped(t.slug)]
            say(f"pulumi preview of {len(ran)} tenant stack(s), {concurrency} at a time"
                + (f"; {len(previewed) - len(ran)} skipped" if len(ran) < len(previewed) else ""))
            outcomes = {o.slug: o for o in _run_all(pool, jobs(ran), say)}
            result.tenants = [outcomes.get(t.slug) or _unchanged(env, t, operation, plan, say) for t in previewed]
            result.tenants += [_skipped(tenant_stack_name(env, t.slug), operation,
                                        f"its stack is renamed by `up` first (from {old}); preview it after that")
                               for old, new in selection.renames for t in selection.tenants if t.slug == new]
            result.waves = [[t.slug for t in selection.tenants]]
            if result.platform is not None and result.platform.changes and selection.tenants:
                result.remarks.append(f"the platform stack {env} changes: every tenant stack, previewed or skipped, "
                                      "was judged against its current outputs; `up` applies it first, then decides "
                                      "again with its new outputs")
        else:
            result.waves = [[t.slug for t in wave] for wave in rollout]
            for number, wave in enumerate(rollout, start=1):
                if stage == "after-canary" and number == 1:
                    remark = (f"wave 1 (canary): {', '.join(t.slug for t in wave)} applied by the canary run "
                              "(`--until canary`) and approved: not run again")
                    say(remark)
                    result.remarks.append(remark)
                    continue
                if stage == "until-canary" and number > 1:
                    say(f"held for approval: {len(result.held)} stack(s) (waves {number}-{len(rollout)}, "
                        "removals): `up --after canary` runs them")
                    break
                say(f"wave {number}/{len(rollout)}: {', '.join(t.slug for t in wave)}")
                ran = [t for t in wave if not plan.skipped(t.slug)]
                if not ran:
                    remark = (f"wave {number}{' (canary)' if number == 1 and len(rollout) > 1 else ''}: every "
                              f"stack skipped ({', '.join(t.slug for t in wave)}: desired state unchanged): nothing "
                              "of it can change, which is fine; the rollout goes on")
                    say("  " + remark)
                    result.remarks.append(remark)
                done = {o.slug: o for o in _run_all(pool, jobs(ran), say)}
                outcomes = [done.get(t.slug) or _unchanged(env, t, operation, plan, say) for t in wave]
                result.tenants += outcomes
                if any(not o.ok and o.status != "skipped" for o in outcomes):
                    result.stopped_after_wave = number
                    later = [t for w in rollout[number:] for t in w] if stage != "until-canary" else []
                    result.tenants += [_skipped(tenant_stack_name(env, t.slug), operation,
                                                f"wave {number} had a failure") for t in later]
                    break
        # A removal (its tenant_id left every file in the git range) is offboarded like `tenantctl destroy`: the
        # guards lifted for that stack alone, the history kept as a tombstone. A preview of one is a destroy
        # preview (it needs no program: the file is gone).
        removal = "offboard" if operation == "up" else "destroy-preview"
        refused = {slug: why for slug, why in (refused_removals or {}).items() if slug in selection.removed}
        removals = [StackJob(spec_for(tenant_stack_name(env, slug), None), removal, tenant_file=False)
                    for slug in selection.removed if slug not in refused]
        if removals and stage == "until-canary":
            pass  # held (listed above), offboarded by `up --after canary`
        elif removals and result.stopped_after_wave is None:
            say(f"{len(removals)} tenant(s) removed in the git range: offboarding their stacks")
            result.removed = _run_all(pool, removals, say)
        elif removals:
            result.removed = [_skipped(job.spec.name, "destroy", "the rollout stopped") for job in removals]
        if refused and stage != "until-canary":
            for why in refused.values():
                say(f"  {why}")
            result.removed += [StackOutcome(tenant_stack_name(env, slug), removal, status="failed", errors=[why],
                                            reason="not run: no recorded export (see its error)")
                               for slug, why in refused.items()]
    return result


def _skip_plan(selection: Selection, operation: str, spec_for: SpecFor, common: Any, no_shared: str | None,
               concurrency: int, force: bool, refresh: bool, say: Callable[[str], None]) -> SkipPlan:
    """What each selected tenant stack does: runs (and why) or is skipped (and why). A renamed stack runs."""
    env = selection.env
    existing = {split_stack_name(name)[1] for name in selection.identities}
    renamed = {new: old for old, new in selection.renames}
    judged = [t for t in selection.tenants if t.slug not in renamed]
    if judged and not (force or refresh):
        say(f"desired-state digests of {len(judged)} tenant stack(s), offline")
    plan = skipping.plan(env, judged, spec_for, common, no_shared, selection.identities, existing, concurrency,
                         force=force, refresh=refresh, digests=operation == "up")
    for new, old in renamed.items():
        plan.decisions[new] = Decision(False, f"its stack is renamed from {tenant_stack_name(env, old)}")
    skipped = sum(decision.skip for decision in plan.decisions.values())
    if skipped and operation in ("preview", "up"):
        say(f"{skipped} of {len(plan.decisions)} tenant stack(s) skipped: desired state unchanged since a clean run")
    return plan


def _unchanged(env: str, tenant: Tenant, operation: str, plan: SkipPlan, say: Callable[[str], None]) -> StackOutcome:
    """A tenant stack this run skips: nothing of it changed since its last clean run."""
    outcome = StackOutcome(tenant_stack_name(env, tenant.slug), operation, status="skipped",
                           reason=plan.reason(tenant.slug))
    say(f"  {outcome.stack}: skipped ({outcome.reason})")
    return outcome


def _run_all(pool, jobs: list[StackJob], say: Callable[[str], None]) -> list[StackOutcome]:
    futures = [run_in_process(pool, job) for job in jobs]
    wait(futures)
    outcomes = [future.result() for future in futures]
    for outcome in outcomes:
        _report(outcome, say)
    return outcomes


def _report(outcome: StackOutcome, say: Callable[[str], None]) -> None:
    counts = outcome.counts()
    say(f"  {outcome.stack}: {outcome.status} ({counts['created']} created, {counts['updated']} updated, "
        f"{counts['replaced']} replaced, {counts['deleted']} deleted, {counts['unchanged']} unchanged; "
        f"{outcome.seconds:.1f} s)")
    if outcome.reason:
        say(f"    ran: {outcome.reason}")
    for note in outcome.recovered:
        say("    recovered: " + note)
    if outcome.tier_change:
        say("    " + outcome.tier_change)
    for error in outcome.errors:
        say("    " + one_line(error))  # the whole error is in --json; a traceback never reaches the progress


def _skipped(stack: str, operation: str, reason: str) -> StackOutcome:
    """A stack something else kept from running (a failure, a missing platform): its reason is an error too."""
    return StackOutcome(stack, operation, status="skipped", errors=[f"not run: {reason}"], reason=f"not run: {reason}")


def rename_stack(spec: engine.StackSpec, new_name: str) -> str | None:
    """`pulumi stack rename`: the URNs follow, and the TenantStack's alias carries the resources over."""
    from pulumi.automation import errors as auto_errors

    try:
        stack = engine.open_stack(spec, create=False)
        stack.rename(new_name)
    except auto_errors.CommandError as exc:
        return f"could not rename {spec.name} to {new_name}: {str(exc).strip().splitlines()[-1]}"
    return None
