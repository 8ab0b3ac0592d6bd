"""`tenantctl migrate-stacks`: from every tenant in the `<env>` stack to one tenant stack per tenant.

For each TenantStack in the `<env>` stack: create `<env>.<slug>` (tags; on a real backend, its
`aws:*` provider settings and the tenant's secrets copied from the `<env>` stack's config), then
`pulumi state move` the TenantStack, whose children and providers follow. Nothing is created or
deleted in the cloud: state is rewritten. What is left in `<env>` becomes its platform stack, and
is applied with the platform program (it exports what the tenant stacks read). Then every moved
stack is previewed with the new program, and the migration reports the engine's own steps: a
correct migration shows no create, delete or replace of any tenant resource.
`--dry-run` lists what would move and changes nothing.

It can be run again, after an interruption or a failure, and never leaves a tenant where the
platform program would delete it:
- each destination that exists is read before anything moves. One tagged for another tenant_id,
  holding another TenantStack, or holding a copy that lacks some of the source's resources, is
  refused;
- a destination that already holds the tenant's whole TenantStack while `<env>` holds it too is a
  `state move` stopped between writing the destination and rewriting the source: the move is
  completed by `pulumi state delete` of the source's copy (state only: it never calls a provider),
  and the destination is checked again afterwards;
- when any TenantStack is still in `<env>` after the moves (no tenant file, a refused destination,
  a failed move), the platform program is not applied and the run fails, naming them;
- a migration already complete has nothing to move: the platform stack, which holds no tenant, is
  applied again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from components.naming import TENANT_STACK_TYPE, tenant_stack_name
from fleet import engine
from fleet.rollout import TAG_TENANT_ID
from fleet.stack_run import StackJob, StackOutcome, process_pool, run_in_process
from fleet.upgrade_guard import tenant_stacks_in
from tenancy.model import Tenant

PROVIDER_KEYS = ("awsEndpoint", "kubeContext", "kubeconfig", "kubernetesRenderDir", "tenantsDir", "runChecks")
REPLACING_OPS = ("create", "delete", "replace", "create-replacement", "delete-replaced")


class MigrationError(Exception):
    pass


@dataclass
class TenantMove:
    slug: str
    urn: str
    resources: int  # the TenantStack and its descendants
    dest: str
    note: str | None = None  # why it is not moved: it stays in `<env>`, and the platform stack is not applied
    resume: bool = False  # the destination already holds it all: only the source's copy is removed (state only)


@dataclass
class Destination:
    """A destination stack that exists, as read before anything moves."""

    tags: dict[str, str]
    resources: list[dict]


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


def plan_moves(env: str, state: dict, tenants: list[Tenant],
               destinations: dict[str, Destination] | None = None) -> list[TenantMove]:
    """Each TenantStack of the `<env>` stack's exported state, with the stack it moves to and, when that stack
    exists already (`destinations`, by name), whether the move is refused or only needs completing."""
    resources = state.get("deployment", {}).get("resources") or []
    by_slug = {t.slug: t for t in tenants}
    moves = []
    for resource in resources:
        if resource.get("type") != TENANT_STACK_TYPE or resource.get("parent", "").split("::")[-2:-1] != [
                "pulumi:pulumi:Stack"]:
            continue
        slug = engine.resource_name(resource["urn"])
        descendants = _descendants(resource["urn"], resources)
        move = TenantMove(slug, resource["urn"], 1 + len(descendants), tenant_stack_name(env, slug))
        if slug not in by_slug:
            move.note = f"no tenant file tenants/{slug}.yaml in this checkout: not moved"
        elif move.dest in (destinations or {}):
            check_destination(move, by_slug[slug], resources, destinations[move.dest])
        moves.append(move)
    return sorted(moves, key=lambda m: m.slug)


def check_destination(move: TenantMove, tenant: Tenant, source: list[dict], dest: Destination) -> None:
    """Sets `move.note` when the existing destination must not take the tenant, else `move.resume` when it holds
    the tenant's whole TenantStack already (an interrupted `state move`). An empty destination of the same
    tenant (created, then interrupted before the move) is simply moved into."""
    want = str(tenant.tenant_id)
    tagged = dest.tags.get(TAG_TENANT_ID)
    if tagged is not None and tagged != want:
        move.note = f"{move.dest} is tagged {TAG_TENANT_ID}={tagged}, but tenants/{move.slug}.yaml has {want}: refused"
        return
    held = {_without_stack(r["urn"]): r for r in dest.resources if r.get("type") == TENANT_STACK_TYPE}
    same = held.pop(_without_stack(move.urn), None)
    if held:
        names = ", ".join(sorted(engine.resource_name(urn) for urn in held))
        move.note = f"{move.dest} holds the TenantStack of another tenant ({names}): refused"
        return
    if same is None:
        return
    holds = (same.get("outputs") or {}).get("tenant_id")
    holds = holds if isinstance(holds, str) else None  # a secret output would be ciphertext: no evidence
    if holds is not None and holds != want:
        move.note = f"{move.dest} holds {move.slug} of tenant_id {holds}, but tenants/{move.slug}.yaml has {want}: " \
                    "refused"
    elif holds is None and tagged is None:
        move.note = f"{move.dest} holds a TenantStack {move.slug} with no tenant_id to compare: refused"
    elif missing := missing_in_destination(source, dest.resources, move.urn):
        move.note = (f"{move.dest} holds {move.slug} without {len(missing)} of its {move.resources} resources "
                     f"(for example {missing[0]}): refused; compare the two stacks' `pulumi stack export`")
    elif outside := dependents_outside(source, move.urn):
        move.note = f"{len(outside)} resource(s) outside {move.slug} depend on it in the source ({outside[0]}): refused"
    else:
        move.resume = True


def subtree(resources: list[dict], urn: str) -> list[dict]:
    """The resource `urn` and its descendants."""
    wanted = {urn, *_descendants(urn, resources)}
    return [r for r in resources if r["urn"] in wanted]


def missing_in_destination(source: list[dict], dest: list[dict], urn: str) -> list[str]:
    """The resources of the TenantStack `urn` in `source` that `dest` does not track: absent from it (by URN, the
    stack's name aside), or tracking another cloud object (another id). Empty: `dest` holds it all."""
    held = {_without_stack(r["urn"]): r.get("id") for r in dest}
    return sorted(_without_stack(r["urn"]) for r in subtree(source, urn)
                  if _without_stack(r["urn"]) not in held or held[_without_stack(r["urn"])] != r.get("id"))


def dependents_outside(resources: list[dict], urn: str) -> list[str]:
    """Resources outside the TenantStack `urn` that refer to something in it (parent, dependency, provider,
    deleted-with): `pulumi state delete --target-dependents` would take them too."""
    inside = {r["urn"] for r in subtree(resources, urn)}
    found = []
    for resource in resources:
        if resource["urn"] in inside:
            continue
        provider = (resource.get("provider") or "").rsplit("::", 1)[0]  # a reference is `<urn>::<id>`
        refs = {resource.get("parent"), resource.get("deletedWith"), provider, *(resource.get("dependencies") or []),
                *(u for deps in (resource.get("propertyDependencies") or {}).values() for u in deps)}
        if refs & inside:
            found.append(resource["urn"])
    return found


def _without_stack(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` without its stack, to compare a resource across stacks."""
    return urn.split("::", 1)[1]


def _descendants(urn: str, resources: list[dict]) -> list[str]:
    found, frontier = [], {urn}
    while frontier:
        children = [r["urn"] for r in resources if r.get("parent") in frontier]
        found += children
        frontier = set(children)
    return found


def _destination(backend: engine.Backend, name: str) -> Destination:
    """What an existing destination holds, read only (no config is set on it)."""
    stack = engine.open_stack(engine.StackSpec(backend, name), create=False)
    resources = engine.export_state(stack).get("deployment", {}).get("resources") or []
    return Destination(dict(stack.workspace.list_tags(name)), resources)


def migrate(env: str, tenants: list[Tenant], spec_for: Callable[[str, Tenant | None], engine.StackSpec],
            dry_run: bool, say: Callable[[str], None] = lambda _line: None,
            command: str | None = None) -> MigrationResult:
    """`command` is how an operator runs this migration again (default `tenantctl migrate-stacks --env <env>`)."""
    source_spec = spec_for(env, None)
    backend = source_spec.backend
    from pulumi.automation import errors as auto_errors

    try:
        source = engine.open_stack(engine.StackSpec(backend, env), create=False)
    except auto_errors.CommandError as exc:  # StackNotFoundError among them; the CLI's own words say which
        raise MigrationError(f"no stack {env} to migrate from: {str(exc).strip().splitlines()[-1]}") from None
    existing = engine.list_stacks(backend)
    state = engine.export_state(source)
    by_slug = {t.slug: t for t in tenants}
    # Only the destinations of tenants still in the source are read: a completed migration reads none.
    wanted = {tenant_stack_name(env, slug) for slug in tenant_stacks_in(state) if slug in by_slug}
    try:
        destinations = {name: _destination(backend, name) for name in sorted(wanted & set(existing))}
    except auto_errors.CommandError as exc:
        raise MigrationError(f"cannot read a destination stack: {_last_line(exc)}") from None
    moves = plan_moves(env, state, tenants, destinations)
    result = MigrationResult(env, dry_run, moves)
    for move in moves:
        action = f": {move.note}" if move.note else ": already there, completing the move" if move.resume else ""
        say(f"{move.urn} ({move.resources} resources) -> {move.dest}{action}")
    if not moves:
        say(f"nothing to move: {env} holds no TenantStack")
    if dry_run:
        return result
    done = []
    for move in [m for m in moves if m.note is None]:
        error = _complete_move(source, backend, move) if move.resume else \
            _move(source, spec_for, move, by_slug[move.slug], backend.local)
        if error is not None:
            result.errors.append(f"{move.slug}: {error}")
            break  # the state of a failed step is unknown: the next run reads it again
        done.append(move)
        say(f"{'completed the move of' if move.resume else 'moved'} {move.slug} into {move.dest}")
    result.errors += [f"{m.slug}: {m.note}" for m in moves if m.note]
    left = tenant_stacks_in(engine.export_state(source))
    if left:
        result.errors.append(f"{env} still holds the TenantStack of {', '.join(left)}: its platform program is not "
                             f"applied (it would delete them); fix the above and run "
                             f"`{command or f'tenantctl migrate-stacks --env {env}'}` again")
        return result
    # A previous run may have moved every tenant and stopped before this: the platform is applied every time.
    tenant_stacks = sorted({m.dest for m in done} | {tenant_stack_name(env, t.slug) for t in tenants
                                                      if tenant_stack_name(env, t.slug) in existing})
    previewed = tenant_stacks if done else []
    with process_pool(min(4, max(1, len(previewed)))) as pool:
        # What is left in `<env>` is its platform stack now; the tenant stacks read its exports.
        say(f"pulumi up of the platform stack {env} (its program now exports what the tenant stacks read)")
        result.platform = run_in_process(pool, StackJob(spec_for(env, None), "up")).result()
        say(f"  {env}: {result.platform.status}, {result.platform.summary}")
        if not result.platform.ok:
            result.errors += [f"{env}: {error}" for error in result.platform.errors]
            return result
        if previewed:
            say("previewing every tenant stack with the new program (expect no create, delete or replace)")
        slug_of = {tenant_stack_name(env, t.slug): t for t in tenants}
        futures = [run_in_process(pool, StackJob(spec_for(name, slug_of[name]), "preview")) for name in previewed]
        result.previews = [future.result() for future in futures]
    for preview in result.previews:
        steps = replacing(preview)
        say(f"  {preview.stack}: {preview.status}, {preview.summary}" + (f"  REPLACING: {steps}" if steps else ""))
    return result


def _move(source, spec_for, move: TenantMove, tenant: Tenant, local: bool) -> str | None:
    """`pulumi state move` of the TenantStack into its own stack (created first, with its tags)."""
    from pulumi.automation import errors as auto_errors

    try:
        dest = engine.open_stack(spec_for(move.dest, tenant))
        if not local:
            _copy_config(source, dest, tenant)
        _pulumi(source, ["state", "move", "--source", source.name, "--dest", move.dest, "--yes", move.urn])
    except MigrationError as exc:
        return str(exc)
    except auto_errors.CommandError as exc:
        return f"moving into {move.dest} failed: {_last_line(exc)}"
    return None


def _complete_move(source, backend: engine.Backend, move: TenantMove) -> str | None:
    """The destination holds the whole TenantStack (checked in `check_destination`): remove the source's copy
    from the source's state. `pulumi state delete` edits state only, it never calls a provider, so no cloud
    object is touched; `--target-dependents` takes the children, `--force` the protected ones."""
    from pulumi.automation import errors as auto_errors

    resources = engine.export_state(source).get("deployment", {}).get("resources") or []
    try:
        _pulumi(source, ["state", "delete", "--stack", source.name, "--target-dependents", "--force", "--yes",
                         move.urn])
    except auto_errors.CommandError as exc:
        return f"pulumi state delete of the source's copy failed: {_last_line(exc)}"
    try:
        source_after = engine.export_state(source).get("deployment", {}).get("resources") or []
        dest_after = _destination(backend, move.dest).resources
    except auto_errors.CommandError as exc:
        return f"cannot read the stacks back after completing the move: {_last_line(exc)}"
    gone = {r["urn"] for r in resources} - {r["urn"] for r in source_after}
    missing = missing_in_destination(resources, dest_after, move.urn)
    if gone != {r["urn"] for r in subtree(resources, move.urn)} or missing:
        return (f"after completing the move, {len(missing)} resource(s) are missing from {move.dest} and "
                f"{len(gone)} left {source.name} (expected {move.resources}): compare `pulumi stack export` of both")
    return None


def _pulumi(stack, args: list[str]):
    workspace = stack.workspace
    return workspace.pulumi_command.run(args, workspace.work_dir, workspace.env_vars)


def _last_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def _copy_config(source, dest, tenant: Tenant) -> None:
    """The settings of the providers the moved resources were created with, and the tenant's secrets."""
    for key, value in source.get_all_config().items():
        short = key.split(":", 1)[1]
        if not (key.startswith("aws:") or short in (*PROVIDER_KEYS, *tenant.secret_names)):
            continue
        if value.secret:
            _set_secret_config(dest, key, value.value)
        else:
            dest.set_config(key, value)


def _set_secret_config(stack, key: str, value: str) -> None:
    """The secret goes to the CLI on stdin (engine.set_secret_config), never on its command line."""
    try:
        engine.set_secret_config(stack, key, value)
    except engine.EngineError as exc:
        raise MigrationError(str(exc)) from None
