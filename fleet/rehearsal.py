"""`tenantctl rehearse`: a real `pulumi up` (or preview, or destroy) of every tenant, against local services.

The engine is the real one (`fleet.engine`), on a local `file://` backend with the passphrase
secrets provider, both under the rehearsal's state folder. What the program talks to is local: the
`tenant_configs` rows go to a PostgreSQL (embedded, or the one given), the post-deploy checks probe
the reference webhook receiver, AWS calls go to moto's server (through the pulumi-aws plugin, or the
stand-in where it is not installed), and Kubernetes objects are applied to the rehearsal's own API server
(fleet.rehearsal_cluster; stack config `kubeconfig`). A state folder whose stacks rendered them to YAML
(`kubernetesRenderDir`, before the rehearsal had an API server) keeps doing so. Counts and statuses come from the
engine's own events and summary.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.naming import PROJECT, REHEARSAL_ENV
from fleet import engine
from fleet.rollout import tenant_tags
from fleet.stack_files import StackFileError, read_stack_file
from fleet.stack_run import NO_CHANGE_OPS, StackOutcome
from tenancy.model import Tenant

# The rehearsal environment: platform stack `rehearsal`, tenant stacks `rehearsal.<slug>`.
STACK = REHEARSAL_ENV
STATE_FILE = "state.json"
SOURCE_STACK = "dev"  # the platform stack's plain config (namespaces) comes from stacks/Pulumi.dev.yaml
# (environmentId too: the rehearsal is an environment of its own, never dev's.)
LOCAL_ONLY_KEYS = ("awsEndpoint", "kubeContext", "kubeconfig", "kubernetesRenderDir", "tenantsDir", "webhookBaseUrl",
                   "runChecks", "environmentId")


@dataclass
class RehearsalState:
    """The rehearsal's own settings between runs (ports, generated secrets). Kept 0600: it holds the
    rehearsal's generated secrets (its passphrase, Fernet key and API keys), never a real one."""

    path: Path
    environment: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RehearsalState:
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path, data.get("environment", {}))

    def save(self) -> None:
        """Atomically and durably: a SIGKILL at any line leaves the old file or the new one, never half of it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"environment": self.environment}, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def secret(self, name: str, make: Callable[[], str]) -> str:
        """The named secret, made and saved on first use: a stack encrypted with a passphrase that was never
        written down could not be read again after an interruption."""
        values = self.environment.setdefault("secrets", {})
        if name not in values:
            values[name] = make()
            self.save()
        return values[name]


@dataclass
class TenantOutcome:
    slug: str
    status: str = "unchanged"
    checks: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # When the checks ran, and whether that was in this run (unchanged inputs: an earlier run's results).
    checked_at: str | None = None
    checked_now: bool = False
    recovered: list[str] = field(default_factory=list)  # what an interrupted run left, and what became of it
    counts: dict[str, int] = field(default_factory=dict)  # created / updated / replaced / deleted / unchanged
    reason: str | None = None  # why it ran, or why it was skipped (fleet.skipping)
    drift: dict[str, int] | None = None  # with --refresh: what the refresh found changed
    tier_change: str | None = None  # what a tier change did, or will do (fleet.tier_change)

    def as_dict(self) -> dict:
        return {"slug": self.slug, "status": self.status, "counts": self.counts, "checks": self.checks,
                "checked_at": self.checked_at, "checked_now": self.checked_now, "recovered": self.recovered,
                "errors": self.errors, "reason": self.reason,
                **({"drift": self.drift} if self.drift is not None else {}),
                **({"tier_change": self.tier_change} if self.tier_change else {})}


@dataclass
class RehearsalResult:
    engine: str
    operation: str
    tenants: list[TenantOutcome]
    changes: int
    removed_tenants: list[str]
    errors: list[str] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    # Config and history rows of the tenants still declared: counted before and after the run.
    rows_lost: int = 0
    remarks: list[str] = field(default_factory=list)  # no failure: what an operator should know (a skipped wave)
    kept_running: dict[str, str] = field(default_factory=dict)  # --keep-running: how to reach what was left up

    @property
    def skipped(self) -> list[TenantOutcome]:
        return [t for t in self.tenants if t.status == "skipped"]

    @property
    def ok(self) -> bool:
        return not self.errors and all(t.status != "failed" for t in self.tenants)

    def as_dict(self) -> dict:
        return {
            "engine": self.engine,
            "operation": self.operation,
            "tenants": [t.as_dict() for t in self.tenants],
            "changes": self.changes,
            "summary": self.summary,
            "removed_tenants": self.removed_tenants,
            "rows_lost": self.rows_lost,
            "errors": self.errors,
            "skipped": [{"slug": t.slug, "reason": t.reason} for t in self.skipped],
            "remarks": self.remarks,
            **({"kept_running": self.kept_running} if self.kept_running else {}),
        }


@dataclass
class LocalServices:
    database_url: str
    app_database_url: str
    webhook_base_url: str
    aws_endpoint: str
    kubeconfig: str | None = None  # the local API server's; None: Kubernetes objects are rendered to files


def rehearsal_backend(project_root: Path, state_dir: Path, passphrase: str) -> engine.Backend:
    """The rehearsal environment's file backend and workspace, under `state_dir`."""
    return engine.Backend(project_root=project_root, backend_dir=state_dir / "backend",
                          work_dir=state_dir / "workspace", passphrase=passphrase)


def spec_maker(project_root: Path, tenants_dir: Path, state: RehearsalState, state_dir: Path,
               services: LocalServices | None,
               environment_id: str | None = None) -> Callable[[str, Tenant | None], engine.StackSpec]:
    """Each rehearsal stack's spec: the platform stack gets the local services (and the environment's id, which
    its tenant rows claim the database with), a tenant stack its keys.
    Without `services` (a stack only destroyed, refreshed or exported) the stored config is kept."""
    from cryptography.fernet import Fernet

    backend = rehearsal_backend(project_root, state_dir, state.secret("passphrase", lambda: secrets.token_urlsafe(32)))
    manifests = state_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    manifests.chmod(0o700)  # rendered Secrets hold the rehearsal's generated values in plain text
    plain = _plain_stack_config(project_root)
    region = plain.pop("aws:region", "us-east-1")

    def spec(stack: str, tenant: Tenant | None) -> engine.StackSpec:
        if services is None:
            return engine.StackSpec(backend, stack)
        kubernetes = {"kubeconfig": services.kubeconfig} if services.kubeconfig else \
            {"kubernetesRenderDir": str(manifests)}
        if stack == STACK:
            return engine.StackSpec(backend, stack, config={
                **plain, "webhookBaseUrl": services.webhook_base_url, **kubernetes,
                **({"environmentId": environment_id} if environment_id else {}),
            }, secrets={
                "databaseUrl": services.database_url,
                "appDatabaseUrl": services.app_database_url,
                "fernetKey": state.secret("fernetKey", lambda: Fernet.generate_key().decode()),
            })
        config = {"aws:region": region, "tenantsDir": str(tenants_dir.resolve()), "awsEndpoint": services.aws_endpoint,
                  **kubernetes, "runChecks": "true"}
        if tenant is None:
            return engine.StackSpec(backend, stack, config=config)
        keys = {name: state.secret(name, lambda: f"rehearsal-{secrets.token_urlsafe(24)}")
                for name in tenant.secret_names}
        return engine.StackSpec(backend, stack, config=config, secrets=keys, tags=tenant_tags(tenant))

    return spec


def _plain_stack_config(project_root: Path) -> dict[str, str]:
    try:
        stack_file = read_stack_file(project_root, SOURCE_STACK)
    except StackFileError:
        return {}
    config = {}
    for key, value in stack_file.config.items():
        if isinstance(value, dict):
            continue
        short = key.removeprefix(f"{PROJECT}:")
        if short in LOCAL_ONLY_KEYS:
            continue
        config[short] = str(value).lower() if isinstance(value, bool) else str(value)
    return config


def tenant_outcome(slug: str, stack: StackOutcome) -> TenantOutcome:
    """A tenant's line of the rehearsal summary, from its stack's outcome."""
    outcome = TenantOutcome(slug, errors=list(stack.errors), recovered=list(stack.recovered), counts=stack.counts(),
                            reason=stack.reason, drift=stack.drift, tier_change=stack.tier_change)
    seen = set(stack.ops.values())
    if stack.status == "skipped":
        outcome.status = "skipped"
    elif not stack.ok or "failed" in seen:
        outcome.status = "failed"
    elif "create" in seen and seen <= {"create", "read"}:  # (read: the platform's StackReference)
        outcome.status = "created"
    elif seen - NO_CHANGE_OPS:
        outcome.status = "updated"
    exported = stack.outputs.get("tenant") or {}
    outcome.checks = _check_families(exported.get("checks"), failed=outcome.status == "failed")
    outcome.checked_at = exported.get("checked_at")
    outcome.checked_now = stack.checked_now
    return outcome


def _check_families(verdicts: Any, failed: bool) -> dict:
    """`{"rls": bool, "webhook": bool}` from the exported per-check verdicts."""
    if failed or not isinstance(verdicts, dict):
        return {"rls": False, "webhook": False} if failed else {}
    families: dict[str, bool] = {}
    for name, ok in verdicts.items():
        family = "webhook" if name.startswith("webhook") else "rls"
        families[family] = families.get(family, True) and bool(ok)
    return dict(sorted(families.items()))
