"""`tenantctl preview|up|migrate-stacks`: the run, wherever the environment is (`FleetEnvironment`).

A project environment (`--env E`) is the project as `pulumi` runs it: stacks are the project's
(`stacks/Pulumi.<stack>.yaml`), on the backend `pulumi login` chose (or PULUMI_BACKEND_URL). A tenant
stack that does not exist yet is created with the secrets provider of its environment's platform
stack file and tagged with the tenant's slug, tier and id; its secrets are set the usual way
(`pulumi config set --secret ... --stack <env>.<slug>`), never by this command. The rehearsal
(`--rehearsal`) is an environment like any other (fleet rule 1): `fleet.rehearse.rehearsal_environment`
gives its backend and specs, and the run is the same one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from components.naming import split_stack_name
from fleet import change_counts, desired_state, engine, upgrade_guard
from fleet.error_lines import one_line
from fleet.plan import changed_since
from fleet.removals import removed_since
from fleet.rollout import (
    DEFAULT_MAX_REMOVALS,
    FleetResult,
    Selection,
    SpecFor,
    candidate_stacks,
    run_fleet,
    select,
    tenant_tags,
)
from fleet.stack_files import StackFileError, read_stack_file
from fleet.stack_identity import read_identities
from tenancy.model import Tenant


def project_backend(root: Path, env: str) -> engine.Backend:
    try:
        platform = read_stack_file(root, env)
    except StackFileError:
        return engine.Backend(project_root=root)
    return engine.Backend(project_root=root, secrets_provider=platform.secrets_provider)


def project_specs(backend: engine.Backend,
                  environment_id: str | None = None) -> Callable[[str, Tenant | None], engine.StackSpec]:
    def spec(stack: str, tenant: Tenant | None) -> engine.StackSpec:
        if tenant is None and environment_id and split_stack_name(stack)[1] is None:
            # The platform stack carries the environment's id to its tenant rows (fleet rule 1); `pulumi config
            # set` keeps it in its stack file, so commit it: a plain `pulumi up` of the stack then checks it too.
            return engine.StackSpec(backend, stack, config={"environmentId": environment_id})
        return engine.StackSpec(backend, stack, tags=tenant_tags(tenant) if tenant else {})

    return spec


def project_environment_id(root: Path, env: str, create: bool) -> str | None:
    """The id recorded beside the state of a `file://` or `s3://` backend (made on the first `up`). Any other
    backend keeps none: a preview goes on without one, and making one there is refused (docs/operations.md)."""
    from fleet.environment_id import EnvironmentIdError, recorded_id
    from fleet.state_folder import UnsupportedBackend, project_store

    try:
        return recorded_id(project_store(root), env, create=create)
    except UnsupportedBackend as exc:
        if create:
            raise engine.EngineError(f"environment {env}: {exc}") from None
        return None
    except EnvironmentIdError as exc:
        raise engine.EngineError(str(exc)) from None


@dataclass(frozen=True)
class FleetEnvironment:
    """Where a fleet run acts. The selection, the waves and the locks' rules are the same everywhere; what
    differs between a project environment and the rehearsal is here."""

    name: str
    backend: engine.Backend
    specs: Callable[[str | None], SpecFor]  # each stack's spec, given the environment's id
    environment_id: Callable[[bool], str | None]  # the recorded id; made (`True`) by the first `up`
    option: str  # how a command names the environment: `--env prod`, `--rehearsal`
    # The rehearsal's preview creates a new tenant's stack on its own local backend, as `rehearse --preview`
    # does (its keys are generated, never set by hand); a project's preview never creates one (rule 2).
    create_on_preview: bool = False
    # The provisioner URL the export gate reads the tenant's row with (fleet.export_records); None: unknown.
    database_url: Callable[[], str | None] = lambda: None

    def command(self, name: str) -> str:
        """A command of this environment, as a hint names it: `tenantctl up --env prod`."""
        return f"tenantctl {name} {self.option}"


def project_environment(root: Path, env: str) -> FleetEnvironment:
    """The project's environment `env`: its stacks on the project's backend. Only `up` sets the id on the
    platform stack; after the first one the stack file holds it, which is what a preview reads."""
    backend = project_backend(root, env)
    return FleetEnvironment(env, backend, lambda environment: project_specs(backend, environment),
                            lambda create: project_environment_id(root, env, create=True) if create else None,
                            f"--env {env}", database_url=lambda: _platform_database_url(env))


def _platform_database_url(env: str) -> str | None:
    from fleet.offboarding import database_url_from_stack

    return database_url_from_stack(env)


def fleet_selection(root: Path, tenants_dir: Path, env: str, tenants: list[Tenant], backend: engine.Backend,
                    only: set[str] | None, since: str | None,
                    max_removals: int = DEFAULT_MAX_REMOVALS) -> tuple[Selection, list[str]]:
    """The run's selection; SelectionRefused (nothing has run) above the removal bound or on an identity clash.
    Removals come only from the git range `since`..HEAD."""
    changes = changed_since(root, tenants_dir, since) if since else None
    removed_ids = removed_since(root, tenants_dir, since, tenants) if since else {}
    candidates = candidate_stacks(env, tenants, only, changes, removed_ids)
    stacks = engine.list_stacks(backend) if candidates is None else engine.existing_stacks(backend, candidates)
    identities = read_identities(backend, [name for name in stacks if split_stack_name(name)[0] == env
                                           and split_stack_name(name)[1]])
    return select(env, tenants, stacks, only, changes, identities, removed_ids, max_removals), stacks


def run(root: Path, tenants_dir: Path, env: str, operation: str, tenants: list[Tenant], only: set[str] | None,
        since: str | None, concurrency: int, say: Callable[[str], None],
        policy_packs: list[str] | None = None, max_removals: int = DEFAULT_MAX_REMOVALS,
        target: FleetEnvironment | None = None, force: bool = False, refresh: bool = False,
        stage: str | None = None, without_export: bool = False) -> FleetResult:
    """`operation` (preview or up) of the environment `target` (default: the project's environment `env`). A tenant
    stack whose desired state is unchanged since a clean run is skipped (fleet.skipping) unless `force` (every
    selected stack runs) or `refresh` (every selected stack is refreshed, then runs). `stage` ("until-canary",
    "after-canary") gates the release after the canary wave (fleet.release_gate): ReleaseRefused, before anything
    runs, when the gate does not hold. A removal `up` offboards needs a recorded export that covers its tenant
    (fleet.export_records), or `without_export`: one without is refused (a failed outcome), the rest run."""
    target = target or project_environment(root, env)
    env, backend = target.name, target.backend
    # Before any stack runs.
    upgrade_guard.refuse_unmigrated(engine.StackSpec(backend, env), operation, target.command("migrate-stacks"))
    commit = desired_state.deployed_commit(root) if operation == "up" else None
    gate = _Gate(target, stage, commit, root, since, only) if stage else None
    selection, stacks = fleet_selection(root, tenants_dir, env, tenants, backend, only, since, max_removals)
    if selection.missing:
        raise engine.EngineError(f"--only names no tenant file or stack of {env}: {', '.join(selection.missing)}")
    # A preview never creates a stack (the preview role may not write state); `up` creates a new tenant's.
    environment = target.environment_id(operation == "up")
    packs = [str(Path(p).resolve()) for p in policy_packs or []]
    spec_for = target.specs(environment)
    shared = digest_inputs(root, env, operation, backend, spec_for, packs)
    if gate is not None:
        gate.before(selection, spec_for, shared, concurrency)
    refused = _export_refusals(target, selection, operation, stage, without_export, say)
    result = run_fleet(selection, operation, spec_for, concurrency, say, platform_applied=env in stacks,
                       policy_packs=packs, create_stacks=operation == "up" or target.create_on_preview,
                       apply_hint=target.command("up"), shared=shared, commit=commit, force=force, refresh=refresh,
                       stage=stage, refused_removals=refused if operation == "up" else None)
    if operation == "preview":  # what `up` will refuse, said where the change is reviewed
        result.remarks += [f"`up` will refuse this removal unless a recorded export covers the tenant as it is "
                           f"then; as things are now: {why}" for why in refused.values()]
    if without_export and selection.removed and operation == "up" and stage != "until-canary":
        result.remarks.append(f"offboarded without an export (--without-export): "
                              f"{', '.join(selection.removed)}; what the offboard deleted is kept nowhere")
    if gate is not None:
        gate.after(result)
    elif operation == "up":
        result.remarks += _pending_release(target)
    return result


def _export_refusals(target: FleetEnvironment, selection: Selection, operation: str, stage: str | None,
                     without_export: bool, say: Callable[[str], None]) -> dict[str, str]:
    """The removals this `up` offboards (or, for a preview, that the `up` after it would) that no recorded export
    covers (slug -> why), unless `without_export`. Read only: the record store and each tenant's row."""
    from components.naming import tenant_stack_name
    from fleet import export_records
    from tenancy.tenant_export import ExportError

    if operation not in ("up", "preview") or stage == "until-canary" or not selection.removed:
        return {}
    if without_export:
        say(f"offboarding {', '.join(selection.removed)} without an export (--without-export): what the offboard "
            "deletes is kept nowhere")
        return {}
    env = target.name

    def current(tenant_id: str):
        from fleet.tenant_export import current_tenant

        url = target.database_url()
        if url is None:
            raise ExportError(f"the tenant's row cannot be read to compare: no database URL for environment {env}")
        return current_tenant(url, tenant_id, env)

    removals = {slug: getattr(selection.identities.get(tenant_stack_name(env, slug)), "tenant_id", None)
                for slug in selection.removed}
    return export_records.removal_refusals(env, removals, lambda: export_records.store_for(target.backend),
                                           current, target.option)


def _pending_release(target: FleetEnvironment) -> list[str]:
    """A plain `up` while a gated release awaits its approval ran every wave without it: said, never refused (an
    operator may mean it). Best effort: a backend without records, or one that cannot be read, says nothing."""
    from fleet import release_gate

    try:
        record, _version = release_gate.read(release_gate.store_for(target.backend), target.name)
    except release_gate.ReleaseRefused:
        return []
    if record is None or record.status != release_gate.AWAITING:
        return []
    return [f"a gated release of {record.commit[:12]} awaited approval after its canary; this `up` without "
            "--after canary ran every wave without that approval"]


class _Gate:
    """fleet.release_gate around one gated `up`: the record written `running` before `--until canary` runs and its
    verdict after; the gate checked before `--after canary` runs, and the release marked released after it."""

    def __init__(self, target: FleetEnvironment, stage: str, commit: str | None, root: Path, since: str | None,
                 only: set[str] | None) -> None:
        from fleet import release_gate

        self.gate, self.target, self.stage = release_gate, target, stage
        option = "--until canary" if stage == "until-canary" else "--after canary"
        self.commit = release_gate.bound_commit(commit, option)
        self.until = target.command("up") + (f" --changed-since {since}" if since else "") + "".join(
            f" --only {slug}" for slug in sorted(only or [])) + " --until canary"
        self.since = _resolved(root, since) if since else None
        self.only = sorted(only) if only else None
        self.store = release_gate.store_for(target.backend)
        self.record, self.version = release_gate.read(self.store, target.name)

    def _tags(self, names: list[str]) -> dict[str, dict]:
        from fleet.stack_identity import read_identities

        identities = read_identities(self.target.backend, names)
        return {name: self.gate.tags_of(None if i is None or i.unreadable else dict(i.tags))
                for name, i in identities.items()}

    def before(self, selection, spec_for: SpecFor, shared, concurrency: int) -> None:
        from components.naming import tenant_stack_name
        from fleet import skipping
        from fleet.rollout import waves

        env, rollout = self.target.name, waves(selection.tenants)
        names = [[t.slug for t in wave] for wave in rollout]
        if self.stage == "until-canary":
            record = self.gate.ReleaseRecord(env, self.commit, self.since, self.only, names, list(selection.removed),
                                             self.gate.RUNNING, self.gate.now())
            self.version = self.gate.write(self.store, record, self.version)  # before anything runs
            self.record = record
            return
        canary = rollout[0] if rollout else []
        tags = self._tags([env, *(tenant_stack_name(env, t.slug) for t in canary)])
        decisions = {}
        if canary and self.record is not None and self.record.commit == self.commit:
            common, no_shared = shared()
            existing = {t.slug for t in canary if tenant_stack_name(env, t.slug) in selection.identities}
            plan = skipping.plan(env, canary, spec_for, common, no_shared, selection.identities, existing,
                                 concurrency)
            decisions = {slug: (d.skip, d.reason) for slug, d in plan.decisions.items()}
        problems = self.gate.refusals(
            self.record, env=env, commit=self.commit, changed_since=self.since, only=self.only, waves=names,
            removed=list(selection.removed),
            canary_tags={t.slug: tags.get(tenant_stack_name(env, t.slug), {}) for t in canary},
            canary_decisions=decisions, platform_commit=tags.get(env, {}).get("commit"), until=self.until)
        if problems:
            raise self.gate.ReleaseRefused(problems)

    def after(self, result: FleetResult) -> None:
        from components.naming import tenant_stack_name

        record, env = self.record, self.target.name
        if self.stage == "after-canary":
            if result.ok and record is not None:
                record.status, record.released_at = self.gate.RELEASED, self.gate.now()
                self.gate.write(self.store, record, self.version)
            return
        canary = record.canary_wave
        failed = [o for o in result.outcomes if o.status == "failed" or (o.status == "skipped" and o.errors)]
        record.problems = [f"{o.stack}: {o.status}" + (f" ({one_line(o.errors[0], 200)})" if o.errors else "")
                           for o in failed] + list(result.notes)
        if result.stopped_after_wave is not None and not record.problems:
            record.problems.append(f"the rollout stopped after wave {result.stopped_after_wave}")
        tags = self._tags([env, *(tenant_stack_name(env, slug) for slug in canary)])
        record.canary = {slug: tags.get(tenant_stack_name(env, slug), {}) for slug in canary}
        record.platform_commit = tags.get(env, {}).get("commit")
        record.status = self.gate.FAILED if record.problems else self.gate.AWAITING
        record.finished_at = self.gate.now()
        self.version = self.gate.write(self.store, record, self.version)
        if record.status == self.gate.AWAITING:
            result.remarks.append(f"canary of {self.commit[:12]} succeeded: awaiting approval; after it, "
                                  f"`{self.until.replace('--until canary', '--after canary')}` runs the "
                                  f"{len(result.held)} held stack(s)")


def _resolved(root: Path, ref: str) -> str:
    import subprocess

    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=root,
                           capture_output=True, text=True, timeout=60)
    return found.stdout.strip() or ref


def digest_inputs(root: Path, env: str, operation: str, backend: engine.Backend, spec_for: SpecFor,
                  packs: list[str]) -> Callable[[], tuple[desired_state.SharedInputs | None, str | None]]:
    """What every tenant stack's digest shares, read when called (after the platform ran), or why there is none.
    Only `up` makes the environment's key (a preview writes nothing: rule 2). A pack from elsewhere is not in the
    digest: nothing is recorded, and nothing skipped."""
    if not desired_state.covers_packs(root, packs):
        return lambda: (None, "the run's policy pack is not the project's own (policy/), which the digest covers")
    key = desired_state.environment_key(backend, env, create=operation == "up")
    return lambda: desired_state.shared_or_why(root, env, spec_for, key)


def summary_table(result: FleetResult) -> Table:
    title = f"{result.operation} of environment {result.env}: " + ("ok" if result.ok else "FAILED")
    if result.stopped_after_wave is not None:
        title += f" (stopped after wave {result.stopped_after_wave})"
    title += _stage_note(result)
    title += f"; {tally_line(result)}"
    table = Table(title=title)
    for column in ("stack", "status", *change_counts.COLUMNS, "checks", "seconds"):
        table.add_column(column)
    blank = [""] * len(change_counts.COLUMNS)
    for outcome in result.outcomes:
        checks = (outcome.outputs.get("tenant") or {}).get("checks") or {}
        verdict = ("ok" if all(checks.values()) else "FAILED") if checks else "-"
        status = outcome.status + (" (removed)" if outcome.removed and outcome.ok else "")
        unchanged = outcome.status == "skipped" and not outcome.errors
        table.add_row(outcome.stack, status, *(blank if unchanged else change_counts.terminal_cells(outcome.counts())),
                      "not run" if unchanged else verdict, "" if unchanged else f"{outcome.seconds:.1f}")
        if outcome.reason and not outcome.errors:  # why it ran, or was skipped (a failure's reason is its error)
            table.add_row("", "", *blank, ("" if unchanged else "ran: ") + outcome.reason[:200], "")
        if outcome.drift:
            table.add_row("", "drift", *blank, ", ".join(f"{n} {op}" for op, n in sorted(outcome.drift.items())), "")
        for note in outcome.recovered:
            table.add_row("", "recovered", *blank, note[:200], "")
        if outcome.tier_change:
            table.add_row("", "tier", *blank, outcome.tier_change, "")
        for error in outcome.errors:
            table.add_row("", "", *blank, one_line(error, 200), "")
    for slug in result.orphans:
        table.add_row(f"{result.env}.{slug}", "orphan", *blank, "no tenant file: left alone", "")
    for old, new in result.renames:
        table.add_row(f"{result.env}.{new}", f"renamed from {result.env}.{old}" if result.operation == "up"
                      else f"up renames it from {result.env}.{old}", *blank, "", "")
    for stack in result.held:
        table.add_row(stack, "held", *blank, "awaits approval: `up --after canary` runs it", "")
    for remark in result.remarks:
        table.add_row("(note)", "", *blank, remark, "")
    return table


def _stage_note(result: FleetResult) -> str:
    """A gated run says which half it was, and how many stacks wait for the approval."""
    if result.stage == "until-canary":
        return f" (canary only: {len(result.held)} stack(s) held for approval)"
    if result.stage == "after-canary":
        return " (after the approved canary)"
    return ""


def tally_line(result: FleetResult) -> str:
    """`3 ok, 1 changed, 0 failed, 996 skipped`: every stack of the run counted once."""
    return ", ".join(f"{n} {name}" for name, n in result.tally().items())


def markdown_summary(result: FleetResult, option: str | None = None) -> str:
    """The run as one Markdown comment (a pull request's combined preview): a row per stack, errors below.
    A replacement or deletion carries a warning marker: that is what a reviewer must not miss. `option` names the
    environment in the title (default `--env <env>`)."""
    verdict = "ok" if result.ok else "FAILED"
    lines = [f"### `tenantctl {result.operation} {option or f'--env {result.env}'}`: {verdict}{_stage_note(result)}",
             "", tally_line(result), "",
             "| stack | status | " + " | ".join(change_counts.COLUMNS) + " |",
             "|---|---|" + "---:|" * len(change_counts.COLUMNS)]
    for outcome in result.outcomes:
        lines.append(f"| `{outcome.stack}` | {outcome.status} | "
                     + " | ".join(change_counts.markdown_cells(outcome.counts())) + " |")
    skipped = [o for o in result.skipped if not o.errors]
    if skipped:
        lines += ["", f"<details><summary>{len(skipped)} skipped: desired state unchanged</summary>", ""]
        lines += [f"- `{o.stack}`: {o.reason}" for o in skipped]
        lines += ["", "</details>"]
    if result.held:
        lines += ["", f"<details><summary>{len(result.held)} held for approval (`up --after canary`)</summary>", ""]
        lines += [f"- `{stack}`" for stack in result.held]
        lines += ["", "</details>"]
    lines += [f"> {remark}" for remark in result.remarks]
    failures = [(o.stack, e) for o in result.outcomes for e in o.errors]
    failures += [(f"{result.env}.{slug}", "orphan: no tenant file, and no git range removed it; left alone")
                 for slug in result.orphans]
    if failures:
        lines += ["", "<details><summary>errors</summary>", ""]
        lines += [f"- `{stack}`: {one_line(error)}" for stack, error in failures]
        lines += ["", "</details>"]
    if not result.outcomes:
        lines.append("| (no stack affected) |" + " |" * (1 + len(change_counts.COLUMNS)))
    return "\n".join(lines) + "\n"
