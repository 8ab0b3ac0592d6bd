"""`tenantctl migrate-stacks`: from every tenant in the `<env>` stack to one tenant stack per tenant.

For each TenantStack in the `<env>` stack: create `<env>.<slug>` (tags; on a real backend, its
`aws:*` provider settings and the tenant's secrets copied from the `<env>` stack's config), then
`pulumi state move` the TenantStack, whose children and providers follow. Nothing is created or
deleted in the cloud: state is rewritten. What is left in `<env>` becomes its platform stack, and
is applied with the platform program (it exports what the tenant stacks read). Then every moved
stack is previewed with the new program, and the migration reports the engine's own steps: a
correct migration shows no create, delete or replace of any tenant resource.
`--dry-run` lists what would move and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from components.naming import TENANT_STACK_TYPE, tenant_stack_name
from tenantctl import engine
from tenantctl.model import Tenant
from tenantctl.stack_run import StackJob, StackOutcome, process_pool, run_in_process

PROVIDER_KEYS = ("awsEndpoint", "kubeContext", "kubernetesRenderDir", "tenantsDir", "runChecks")
REPLACING_OPS = ("create", "delete", "replace", "create-replacement", "delete-replaced")


class MigrationError(Exception):
    pass


@dataclass
class TenantMove:
    slug: str
    urn: str
    resources: int  # the TenantStack and its descendants
    dest: str
    note: str | None = None  # why it is not moved


@dataclass
class MigrationResult:
    env: str
    dry_run: bool
    moves: list[TenantMove]
    previews: list[StackOutcome] = field(default_factory=list)
    platform: StackOutcome | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        platform_ok = self.platform is None or self.platform.ok
        return not self.errors and platform_ok and all(p.ok and not replacing(p) for p in self.previews)

    def as_dict(self) -> dict:
        return {
            "env": self.env, "dry_run": self.dry_run, "ok": self.ok,
            "moves": [vars(m) for m in self.moves],
            "platform": self.platform.as_dict() if self.platform else None,
            "previews": [{**p.as_dict(), "replacing_steps": replacing(p)} for p in self.previews],
            "errors": self.errors,
        }


def replacing(outcome: StackOutcome) -> dict[str, str]:
    """Every step that would create, delete or replace a resource. A provider registration is not one: the new
    program's StackReference registers the `pulumi` provider, which the engine counts as a create, and
    which has no object anywhere."""
    return {urn: op for urn, op in outcome.ops.items()
            if op in REPLACING_OPS and not engine.resource_type(urn).startswith("pulumi:providers:")}


def plan_moves(env: str, state: dict, tenants: list[Tenant], existing: list[str]) -> list[TenantMove]:
    """Each TenantStack of the `<env>` stack's exported state, with the stack it moves to."""
    resources = state.get("deployment", {}).get("resources") or []
    declared = {t.slug for t in tenants}
    moves = []
    for resource in resources:
        if resource.get("type") != TENANT_STACK_TYPE or resource.get("parent", "").split("::")[-2:-1] != [
                "pulumi:pulumi:Stack"]:
            continue
        slug = engine.resource_name(resource["urn"])
        descendants = _descendants(resource["urn"], resources)
        move = TenantMove(slug, resource["urn"], 1 + len(descendants), tenant_stack_name(env, slug))
        if slug not in declared:
            move.note = "no tenant file: left in place (remove it with a `pulumi up` of the old layout first)"
        elif move.dest in existing:
            move.note = f"{move.dest} already exists: left in place"
        moves.append(move)
    return sorted(moves, key=lambda m: m.slug)


def _descendants(urn: str, resources: list[dict]) -> list[str]:
    found, frontier = [], {urn}
    while frontier:
        children = [r["urn"] for r in resources if r.get("parent") in frontier]
        found += children
        frontier = set(children)
    return found


def migrate(env: str, tenants: list[Tenant], spec_for: Callable[[str, Tenant | None], engine.StackSpec],
            dry_run: bool, say: Callable[[str], None] = lambda _line: None) -> MigrationResult:
    source_spec = spec_for(env, None)
    from pulumi.automation import errors as auto_errors

    try:
        source = engine.open_stack(engine.StackSpec(source_spec.backend, env), create=False)
    except auto_errors.CommandError as exc:  # StackNotFoundError among them; the CLI's own words say which
        raise MigrationError(f"no stack {env} to migrate from: {str(exc).strip().splitlines()[-1]}") from None
    existing = engine.list_stacks(source_spec.backend)
    moves = plan_moves(env, engine.export_state(source), tenants, existing)
    result = MigrationResult(env, dry_run, moves)
    by_slug = {t.slug: t for t in tenants}
    for move in moves:
        say(f"{move.urn} ({move.resources} resources) -> {move.dest}" + (f": {move.note}" if move.note else ""))
    if dry_run:
        return result
    for move in [m for m in moves if m.note is None]:
        tenant = by_slug[move.slug]
        dest = engine.open_stack(spec_for(move.dest, tenant))
        if not source_spec.backend.local:
            _copy_config(source, dest, tenant)
        command = ["state", "move", "--source", env, "--dest", move.dest, "--yes", move.urn]
        workspace = source.workspace
        outcome = workspace.pulumi_command.run(command, workspace.work_dir, workspace.env_vars)
        if outcome.code != 0:
            result.errors.append(f"{move.slug}: pulumi state move failed: {outcome.stderr.strip()[-300:]}")
            return result
        say(f"moved {move.slug} into {move.dest}")
    moved = [m for m in moves if m.note is None]
    with process_pool(min(4, max(1, len(moved)))) as pool:
        # What is left in `<env>` is its platform stack now; the tenant stacks read its exports.
        say(f"pulumi up of the platform stack {env} (its program now exports what the tenant stacks read)")
        result.platform = run_in_process(pool, StackJob(spec_for(env, None), "up")).result()
        say(f"  {env}: {result.platform.status}, {result.platform.summary}")
        if not result.platform.ok:
            result.errors += [f"{env}: {error}" for error in result.platform.errors]
            return result
        say("previewing every moved stack with the new program (expect no create, delete or replace)")
        futures = [run_in_process(pool, StackJob(spec_for(m.dest, by_slug[m.slug]), "preview")) for m in moved]
        result.previews = [future.result() for future in futures]
    for preview in result.previews:
        steps = replacing(preview)
        say(f"  {preview.stack}: {preview.status}, {preview.summary}" + (f"  REPLACING: {steps}" if steps else ""))
    return result


def _copy_config(source, dest, tenant: Tenant) -> None:
    """The settings of the providers the moved resources were created with, and the tenant's secrets."""
    for key, value in source.get_all_config().items():
        short = key.split(":", 1)[1]
        if key.startswith("aws:") or short in (*PROVIDER_KEYS, *tenant.secret_names):
            dest.set_config(key, value)
