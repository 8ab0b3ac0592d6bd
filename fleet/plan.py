"""`tenantctl plan`: what each tenant gets, from the real program under the mock runtime.

A reviewer without cloud credentials sees every resource a tenant file produces, with secrets
masked. Each tenant is declared exactly as its tenant stack declares it (`program.tenant`), all in
one simulated run so a fleet plan stays fast. The environment's plain config comes from its platform
stack file (`stacks/Pulumi.<env>.yaml`); secrets cannot be decrypted here, so they are replaced by
placeholders that never leave the process.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from ruamel.yaml import YAML

from components.naming import PROJECT
from components.settings import DATABASE_KEYS
from fleet.mock_runtime import SECRET_MASK, ProgramRun, RegisteredResource, Secret, gc_paused, masked, run_program
from fleet.stack_files import StackFileError, read_stack_file, tenant_region
from program.fleet_view import declare_fleet
from tenancy.loader import require_tenants

PLACEHOLDER_SECRET = "plan-placeholder-not-a-real-secret"  # noqa: S105 (a placeholder, by definition)
# Database URLs are checked by the program before use, so their placeholder must be a usable URL.
PLACEHOLDER_DATABASE_URL = f"postgresql://plan:{PLACEHOLDER_SECRET}@127.0.0.1:5432/app"
# Paths whose change can alter every tenant's resources, so a preview must not be targeted.
PROGRAM_PATHS = (
    "__main__.py", "program/", "components/", "tenantctl/", "tenancy/", "checks/", "fleet/", "services/", 
    "policy/", "Pulumi.yaml", "requirements.txt",
    "tenants/schema.json",
)

# stacks/Pulumi.<env>.yaml (a platform stack) or stacks/Pulumi.<env>.<slug>.yaml (a tenant stack).
STACK_FILE = re.compile(r"stacks/Pulumi\.(?P<env>[A-Za-z0-9_-]+)(?:\.(?P<slug>[a-z0-9][-a-z0-9]*))?\.yaml")


class PlanError(Exception):
    pass


@dataclass
class TenantPlan:
    slug: str
    tier: str
    tenant_id: str
    resources: list[RegisteredResource]

    def as_dict(self) -> dict:
        return {
            "slug": self.slug,
            "tier": self.tier,
            "tenant_id": self.tenant_id,
            "resources": [{"type": r.type, "name": r.name, "inputs": masked(r.inputs)} for r in self.resources],
        }

    def kubernetes_objects(self) -> list[dict]:
        objects = []
        for resource in self.resources:
            if not resource.type.startswith("kubernetes:"):
                continue
            body = masked(resource.inputs)
            string_data = resource.inputs.get("stringData")
            if isinstance(string_data, Secret):  # keep the keys reviewable, mask each value
                body["stringData"] = dict.fromkeys(string_data.value, SECRET_MASK)
            objects.append(body)
        return objects


@dataclass
class Plan:
    tenants: list[TenantPlan]
    run: ProgramRun

    def as_dict(self) -> dict:
        return {"tenants": [t.as_dict() for t in self.tenants]}


def plan_config(project_root: Path, tenants_dir: Path, stack: str, secret_names: list[str]) -> tuple[dict, list[str]]:
    """Plain config from the stack file, with placeholders for every secret the program reads."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    try:
        stack_file = read_stack_file(project_root, stack)
    except StackFileError:
        stack_file = None
    if stack_file is not None:
        for key, value in stack_file.config.items():
            if isinstance(value, dict) and "secure" in value:
                continue
            config[key] = str(value).lower() if isinstance(value, bool) else str(value)
    for name in [*DATABASE_KEYS, *secret_names]:
        key = f"{PROJECT}:{name}"
        config[key] = (Fernet.generate_key().decode() if name == "fernetKey"
                       else PLACEHOLDER_DATABASE_URL if name.endswith("Url") else PLACEHOLDER_SECRET)
        secret_keys.append(key)
    # The simulated cloud has no local emulator or cluster to point at.
    config.pop(f"{PROJECT}:awsEndpoint", None)
    config.pop(f"{PROJECT}:kubeContext", None)
    config[f"{PROJECT}:tenantsDir"] = str(tenants_dir.resolve())
    return config, secret_keys


def build_plan(project_root: Path, tenants_dir: Path, stack: str = "dev", only: set[str] | None = None) -> Plan:
    """Each tenant as its own stack <env>.<slug> declares it: in the AWS region of its stack file (else the platform
    stack's), one simulated run per region."""
    with gc_paused():
        tenants = require_tenants(tenants_dir)  # TenantLoadError carries every located problem
        config, secret_keys = plan_config(
            project_root, tenants_dir, stack,
            [name for t in tenants for name in t.secret_names]
        )
        by_region: dict[str | None, list] = {}
        for tenant in tenants:
            by_region.setdefault(tenant_region(project_root, stack, tenant.slug), []).append(tenant)
        runs = []
        for region, group in by_region.items():
            region_config = {**config, **({"aws:region": region} if region else {})}
            runs.append(run_program(project_root, stack, region_config, secret_keys,
                                    program=lambda group=group: declare_fleet(group, tenants)))
        exported = {"tenants": {slug: v for each in runs for slug, v in (each.exports.get("tenants") or {}).items()}}
        run = ProgramRun([r for each in runs for r in each.resources], exported)
        grouped = run.by_parent()
        plans = [
            TenantPlan(t.slug, t.tier.value, str(t.tenant_id), sorted(grouped.get(t.slug, []), key=_display_order))
            for t in tenants
            if only is None or t.slug in only
        ]
    return Plan(plans, run)


def _display_order(resource: RegisteredResource) -> tuple[int, str, str]:
    # Registration order depends on when inputs resolve; show a stable, readable order instead.
    families = ("random:", "aws:kms", "aws:secretsmanager", "kubernetes:core/v1:Namespace", "kubernetes:",
                "pulumi-python:dynamic")
    family = next((i for i, prefix in enumerate(families) if resource.type.startswith(prefix)), len(families))
    return family, resource.type, resource.name


@dataclass(frozen=True)
class ChangedTenants:
    slugs: set[str]
    removed: set[str]
    program_changed: bool


def changed_since(project_root: Path, tenants_dir: Path, ref: str) -> ChangedTenants:
    """Tenant files added, modified or removed since `ref` (working tree included), via git."""
    try:
        output = subprocess.run(
            ["git", "diff", "--name-status", "--no-renames", ref, "--"],
            cwd=project_root, capture_output=True, text=True, check=True,
        ).stdout
        untracked = subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard"],
            cwd=project_root, capture_output=True, text=True, check=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise PlanError(f"git cannot compare with {ref!r}: {exc.stderr.strip() or exc}") from None
    except FileNotFoundError:
        raise PlanError("git is not installed; --changed-since needs it") from None
    relative_dir = _relative(tenants_dir, project_root)
    slugs, removed, program_changed = set(), set(), False
    entries = [line.split("\t", 1) for line in output.splitlines() if "\t" in line]
    entries += [["A", path] for path in untracked.splitlines()]
    for status, path in entries:
        in_tenants = Path(path).parent.as_posix() == relative_dir and Path(path).suffix in (".yaml", ".yml")
        stack_file = STACK_FILE.fullmatch(path)
        if in_tenants:
            (removed if status.startswith("D") else slugs).add(Path(path).stem)
        elif stack_file and stack_file["slug"]:
            slugs.add(stack_file["slug"])  # a tenant stack's own config: only that tenant
        elif stack_file or path.startswith(PROGRAM_PATHS):
            program_changed = True  # a platform stack's config is read by every tenant stack
    return ChangedTenants(slugs, removed, program_changed)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def write_manifests(plan: Plan, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    yaml = YAML()
    yaml.default_flow_style = False
    written = []
    for tenant in plan.tenants:
        buffer = io.StringIO()
        yaml.dump_all(tenant.kubernetes_objects(), buffer)
        path = out_dir / f"{tenant.slug}.yaml"
        path.write_text(f"# Kubernetes objects of tenant {tenant.slug} (secrets masked)\n" + buffer.getvalue())
        written.append(path)
    return written
