"""A tenant's tier change on its stack (basic <-> premium): found, judged, said, and the one guard it lifts.

What is a tier change: the tenant file's `tier` against what the stack's state holds. Its TenantStack has a
premium namespace and the file says `basic`: a downgrade. It has none and the file says `premium`: an upgrade.
A stack whose state holds no TenantStack yet is an onboarding, not a tier change.

- **Upgrade.** Nothing to lift: the program declares the namespace and its objects, and the engine creates
  them. Every other child keeps its name, so its URN, so the engine keeps it: the row (its id, created_at and
  history), the signing secret, the Secrets Manager secret and the KMS key are at most updated in place (their
  `tier` tag). The credentials Secret and the alert rules move into the namespace (replaced, not protected).
- **Downgrade.** The program no longer declares the namespace, which is `protect`ed (components/tenant_stack.py):
  the engine refuses the plan. The guard is lifted only here, only on that namespace, and only when:
  1. the tenant file says `tier: basic` (the reviewed change) and the state holds the premium namespace of the
     stack's own TenantStack, protected;
  2. the namespace holds no PersistentVolumeClaim that the file does not name in
     `tier_change.accept_volume_loss` (fleet.namespace_volumes asks the stack's cluster; where objects are only
     rendered, nobody can say, and only `"*"` names that loss).
  Then `protect` is cleared on the namespace's URN in the state (fleet.stack_guards: nothing else of the stack
  changes), and the `up` deletes the namespace and its objects. A failed `up` puts the guard back on a namespace
  still in the state. The cleared guard in the state is the record of a downgrade under way (written before the
  step that needs it): a killed run leaves it cleared, and the next run of the same file judges again, putting
  the guard back if it now refuses (a claim appeared, or the file went back to premium, whose program declares
  the namespace protected again).
A preview is read-only (fleet rule 2): it lifts nothing, so it previews everything but the namespace (the
engine's `exclude`) and adds the namespace's deletion to what it says, or says why `up` would refuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from components import naming
from components.naming import PROJECT
from fleet import engine, stack_guards
from fleet.namespace_volumes import Volumes, namespace_volumes
from tenancy.model import ALL_VOLUMES, Tenant, Tier

NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
# What a tier change must keep, by type (the row's type ends with its dynamic provider's name).
KEPT = (("aws:kms/key:Key", "KMS key"), ("aws:secretsmanager/secret:Secret", "Secrets Manager secret"),
        ("random:index/randomPassword:RandomPassword", "signing secret"), (":TenantConfigRow", "row"))
MOVED = {"kubernetes:core/v1:Secret": "credentials Secret", "kubernetes:monitoring.coreos.com/v1:PrometheusRule":
         "alert rules"}
REPLACED = {"replace", "create-replacement", "delete-replaced"}
UNCHANGED = {"same", "read", "refresh"}


class TierChangeRefused(Exception):
    """A downgrade that may not go ahead; the message says why and what the operator can do."""


@dataclass(frozen=True)
class TierChange:
    slug: str
    old: Tier
    new: Tier
    namespace: str
    file: str  # the tenant file, as the operator knows it
    accepted: tuple[str, ...] = ()  # tier_change.accept_volume_loss
    namespace_urn: str | None = None  # a downgrade's namespace resource
    guarded: bool = True  # whether the state still guards it (False: a run lifted it and did not finish)
    objects: tuple[tuple[str, str], ...] = ()  # (urn, kind) of the other objects the state has in the namespace

    @property
    def downgrade(self) -> bool:
        return self.new is Tier.BASIC


def detect(resources: list[dict], tenant: Tenant, file: str) -> TierChange | None:
    """The tier change between the stack's state (`resources`, as `pulumi stack export` has them) and the tenant
    file's model, or None."""
    components = {r["urn"] for r in resources if r.get("type") == naming.TENANT_STACK_TYPE}
    if not components:
        return None
    namespaces = [r for r in resources if r.get("type") == NAMESPACE_TYPE and r.get("parent") in components]
    name = naming.namespace_name(tenant.slug)
    common = {"slug": tenant.slug, "file": file, "accepted": tuple(tenant.tier_change.accept_volume_loss)}
    if tenant.tier is Tier.PREMIUM:
        return None if namespaces else TierChange(old=Tier.BASIC, new=Tier.PREMIUM, namespace=name, **common)
    if not namespaces:
        return None
    [resource] = namespaces[:1]
    name = ((resource.get("inputs") or {}).get("metadata") or {}).get("name") or name
    objects = tuple((r["urn"], r["type"].split(":")[-1]) for r in resources
                    if r.get("type", "").startswith("kubernetes:") and r is not resource
                    and ((r.get("inputs") or {}).get("metadata") or {}).get("namespace") == name)
    return TierChange(old=Tier.PREMIUM, new=Tier.BASIC, namespace=name, namespace_urn=resource["urn"],
                      guarded=bool(resource.get("protect")), objects=objects, **common)


def refusal(change: TierChange, volumes: Volumes) -> str | None:
    """Why the downgrade may not delete its namespace now, or None. The guard's one decision."""
    if not change.downgrade:
        return None
    where = f"tier change premium -> basic of {change.slug} refused: namespace {change.namespace}"
    fix = f"name the loss in {change.file}: `tier_change: {{accept_volume_loss: [%s]}}`"
    if volumes.error:
        return (f"{where} is deleted only after its PersistentVolumeClaims are listed, and they could not be: "
                f"{volumes.error}")
    if not volumes.known:
        if ALL_VOLUMES in change.accepted:
            return None
        return (f"{where} is not on a cluster this run can ask: the stack's Kubernetes objects are rendered to "
                f"{volumes.rendered}, not applied, so whatever applies them deletes the namespace and any volume "
                f"in it. Check its PersistentVolumeClaims there, then {fix % repr(ALL_VOLUMES)}")
    unnamed = [claim for claim in volumes.claims if claim not in change.accepted and ALL_VOLUMES not in change.accepted]
    if unnamed:
        return (f"{where} holds PersistentVolumeClaim(s) {', '.join(unnamed)}, deleted with it. Move the data and "
                f"delete the claims, or {fix % ', '.join(unnamed)}")
    return None


def volumes_said(volumes: Volumes | None) -> str:
    if volumes is None:
        return ""
    if not volumes.known:
        return (f"volumes: not checked (objects rendered to {volumes.rendered}, not applied); their loss is named "
                f"with {ALL_VOLUMES!r}")
    return f"volumes deleted, as named: {', '.join(volumes.claims)}" if volumes.claims else "volumes: none"


def describe(change: TierChange, ops: dict[str, str], volumes: Volumes | None = None) -> str:
    """What the change does, from the engine's own steps (`ops`: urn -> op): `tier change premium -> basic:
    namespace tenant-acme and its 9 objects deleted (...); ...; row, ... unchanged`."""
    head = f"tier change {change.old} -> {change.new}: namespace {change.namespace}"
    if change.downgrade:
        deleted = [kind for urn, kind in change.objects if ops.get(urn) == "delete"]
        parts = [f"{head} and its {len(deleted)} objects deleted ({_kinds(deleted)})"]
        moving = [urn for urn, _kind in change.objects if ops.get(urn) in REPLACED]
    else:
        created = [engine.resource_type(urn).split(":")[-1] for urn, op in ops.items()
                   if op == "create" and engine.resource_type(urn).startswith("kubernetes:")
                   and engine.resource_type(urn) != NAMESPACE_TYPE]
        parts = [f"{head} and its {len(created)} objects created ({_kinds(created)})"]
        moving = [urn for urn, op in ops.items() if op in REPLACED and engine.resource_type(urn) in MOVED]
    moved = sorted({MOVED.get(engine.resource_type(urn), engine.resource_name(urn)) for urn in moving})
    if moved:
        parts.append(f"{' and '.join(moved)} moved {'out of' if change.downgrade else 'into'} it")
    parts.append(kept(ops))
    said = volumes_said(volumes) if change.downgrade else ""
    return "; ".join(parts + ([said] if said else []))


def kept(ops: dict[str, str]) -> str:
    """Whether the row, the secrets and the key stay, as the engine's steps say: unchanged, updated in place, or
    (loudly) not kept."""
    unchanged, updated, lost = [], [], []
    for suffix, what in KEPT:
        found = [op for urn, op in ops.items() if engine.resource_type(urn).endswith(suffix)]
        if not found:
            continue
        if set(found) <= UNCHANGED:
            unchanged.append(what)
        elif set(found) <= UNCHANGED | {"update"}:
            updated.append(what)
        else:
            lost.append(f"{what} ({', '.join(sorted(set(found)))})")
    said = []
    if unchanged:
        said.append(f"{', '.join(unchanged)} unchanged")
    if updated:
        said.append(f"{', '.join(updated)} kept (updated in place: tags)")
    if lost:
        said.append(f"NOT KEPT: {', '.join(lost)}")
    return "; ".join(said)


# The kinds in the order the namespace's objects are rendered (components.isolation_manifests); others after.
KIND_ORDER = ("ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding")


def _kinds(kinds: list[str]) -> str:
    counts = Counter(kinds)
    order = sorted(counts, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k))
    return ", ".join(f"{counts[kind]} {kind}" if counts[kind] > 1 else kind for kind in order) or "none"


def planned(old: Tenant, new: Tenant) -> str | None:
    """What a pull request's tier change will do, from the two files alone (`tenantctl plan --changed-since`; the
    stack's own preview says it from the engine's steps)."""
    if old.tier is new.tier:
        return None
    namespace = naming.namespace_name(new.slug)
    kept_said = "row (id, created_at, history), signing secret, Secrets Manager secret and KMS key kept"
    if new.tier is Tier.PREMIUM:
        return f"tier change basic -> premium: `up` creates namespace {namespace} and its objects; {kept_said}"
    accepted = new.tier_change.accept_volume_loss
    volumes = (f"the loss of volume(s) {', '.join(accepted)} named" if accepted else
               "refused while it holds a PersistentVolumeClaim (none named in tier_change.accept_volume_loss)")
    return (f"tier change premium -> basic: `up` deletes namespace {namespace} and its objects, its guard lifted "
            f"after the volume check ({volumes}); {kept_said}")


# On a stack ----------------------------------------------------------------------------------------------------

def find(stack, spec: engine.StackSpec) -> TierChange | None:
    """The tier change of a tenant stack about to be previewed or updated, or None. Read-only: a file backend's
    checkpoint is read from its folder (no CLI call), any other backend's state through `pulumi stack export`.
    A tenant file that does not parse is left to the program, whose error is located."""
    from tenancy.loader import parse_tenant_file

    slug = naming.split_stack_name(spec.name)[1]
    if slug is None:
        return None
    configured = spec.config.get("tenantsDir")
    if configured is None:
        # A plain value: the stack file holds it as it is (no CLI call, which would decrypt every secret).
        configured = engine.stored_plain_config(spec).get(f"{PROJECT}:tenantsDir")
    path = Path(configured or "tenants") / f"{slug}.yaml"  # as the program reads it (its working directory)
    if not path.is_file():
        return None
    tenant, _problems = parse_tenant_file(path)
    if tenant is None:
        return None
    deployment = engine.read_checkpoint(spec.backend, spec.name)
    if deployment is None:
        deployment = engine.export_state(stack).get("deployment") or {}
    return detect(deployment.get("resources") or [], tenant, str(path))


def check_volumes(stack, change: TierChange, spec: engine.StackSpec) -> Volumes:
    config = {key: value.value for key, value in stack.get_all_config().items() if not value.secret}
    return namespace_volumes(config, change.namespace, spec.backend.env.get("KUBECONFIG"))


def preview_exclude(change: TierChange | None) -> list[str] | None:
    """What a preview leaves out: the guarded namespace, whose deletion it says instead of failing on."""
    return [change.namespace_urn] if change and change.downgrade and change.guarded else None


def lift_guard(stack, change: TierChange, volumes: Volumes) -> None:
    """Before a downgrade's `up`: its refusal (TierChangeRefused, with the guard put back if a killed run had
    lifted it), or `protect` cleared on the namespace alone."""
    if not change.downgrade:
        return
    refused = refusal(change, volumes)
    guard = stack_guards.Guards({change.namespace_urn: ["protect"]})
    if refused:
        if not change.guarded:
            stack_guards.set_guards(stack, guard, on=True)
        raise TierChangeRefused(refused)
    if change.guarded:
        stack_guards.set_guards(stack, guard, on=False)


def restore_guard(stack, change: TierChange) -> None:
    """After a failed downgrade `up`: the namespace, if the state still holds it, guarded again."""
    if change.downgrade:
        stack_guards.set_guards(stack, stack_guards.Guards({change.namespace_urn: ["protect"]}), on=True)
