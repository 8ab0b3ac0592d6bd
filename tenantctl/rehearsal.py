"""`tenantctl rehearse`: a real `pulumi up` (or preview, or destroy) of every tenant, against local services.

The engine is the real one (`tenantctl.engine`), on a local `file://` backend with the passphrase
secrets provider, both under the rehearsal's state folder. What the program talks to is local: the
`tenant_configs` rows go to a PostgreSQL (embedded, or the one given), the post-deploy checks probe
the reference webhook receiver, AWS calls go to moto's server (through the pulumi-aws plugin, or the
stand-in where it is not installed), and Kubernetes objects are rendered to YAML (`kubernetesRenderDir`)
because there is no cluster. Counts and statuses come from the engine's own events and summary.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.naming import PROJECT, TENANT_STACK_TYPE
from tenantctl import engine
from tenantctl.model import Tenant
from tenantctl.stack_files import StackFileError, read_stack_file

STACK = "rehearsal"
STATE_FILE = "state.json"
SOURCE_STACK = "dev"  # plain config (namespaces, region) comes from Pulumi.dev.yaml
LOCAL_ONLY_KEYS = ("awsEndpoint", "kubeContext", "kubernetesRenderDir", "tenantsDir", "webhookBaseUrl")
NO_CHANGE_OPS = {"same", "read", "refresh", "discard", "read-discard"}


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"environment": self.environment}, handle, indent=1, sort_keys=True)
        temporary.replace(self.path)

    def secret(self, name: str, make: Callable[[], str]) -> str:
        values = self.environment.setdefault("secrets", {})
        if name not in values:
            values[name] = make()
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

    def as_dict(self) -> dict:
        return {"slug": self.slug, "status": self.status, "checks": self.checks, "checked_at": self.checked_at,
                "checked_now": self.checked_now, "errors": self.errors}


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
        }


@dataclass
class LocalServices:
    database_url: str
    app_database_url: str
    webhook_base_url: str
    aws_endpoint: str


def stack_spec(project_root: Path, tenants_dir: Path, tenants: list[Tenant], state: RehearsalState,
               state_dir: Path, services: LocalServices) -> engine.StackSpec:
    from cryptography.fernet import Fernet

    manifests = state_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    manifests.chmod(0o700)  # rendered Secrets hold the rehearsal's generated values in plain text
    config = _plain_stack_config(project_root)
    config.update({
        "aws:region": config.get("aws:region", "us-east-1"),
        "tenantsDir": str(tenants_dir.resolve()),
        "webhookBaseUrl": services.webhook_base_url,
        "awsEndpoint": services.aws_endpoint,
        "kubernetesRenderDir": str(manifests),
        "runChecks": "true",
    })
    secret_values = {
        "databaseUrl": services.database_url,
        "appDatabaseUrl": services.app_database_url,
        "fernetKey": state.secret("fernetKey", lambda: Fernet.generate_key().decode()),
    }
    for tenant in tenants:
        for name in tenant.secret_names:
            secret_values[name] = state.secret(name, lambda: f"rehearsal-{secrets.token_urlsafe(24)}")
    return located_spec(project_root, state_dir, state.secret("passphrase", lambda: secrets.token_urlsafe(32)),
                        config=config, secrets=secret_values)


def located_spec(project_root: Path, state_dir: Path, passphrase: str, **config: Any) -> engine.StackSpec:
    """The rehearsal stack: its file backend and workspace under `state_dir`."""
    return engine.StackSpec(project_root=project_root, name=STACK, backend_dir=state_dir / "backend",
                            work_dir=state_dir / "workspace", passphrase=passphrase, **config)


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


def tenant_of(urn: str, slugs: list[str]) -> str | None:
    """The tenant a resource belongs to: children are named `<slug>-...`; the longest slug that fits wins."""
    name = engine.resource_name(urn)
    matches = [slug for slug in slugs if name == slug or name.startswith(slug + "-")]
    return max(matches, key=len) if matches else None


def outcomes(tenants: list[Tenant], events: engine.EngineEvents, outputs: dict) -> list[TenantOutcome]:
    slugs = [t.slug for t in tenants]
    ops: dict[str, list[str]] = {slug: [] for slug in slugs}
    errors: dict[str, list[str]] = {slug: [] for slug in slugs}
    checked_now: set[str] = set()
    for urn, op in events.ops.items():
        slug = tenant_of(urn, slugs)
        if slug is not None:
            ops[slug].append(op)
            if engine.resource_type(urn).endswith(":OnboardingCheck") and op in ("create", "update", "replace"):
                checked_now.add(slug)
    for urn, messages in events.errors.items():
        slug = tenant_of(urn, slugs)
        if slug is not None:
            errors[slug] += messages
    exported = (outputs.get("tenants") or {}) if isinstance(outputs, dict) else {}
    results = []
    for slug in slugs:
        outcome = TenantOutcome(slug, errors=errors[slug])
        seen = set(ops[slug])
        if outcome.errors or "failed" in seen:
            outcome.status = "failed"
        elif seen and seen <= {"create"}:
            outcome.status = "created"
        elif seen - NO_CHANGE_OPS:
            outcome.status = "updated"
        outcome.checks = _check_families((exported.get(slug) or {}).get("checks"), failed=outcome.status == "failed")
        outcome.checked_at = (exported.get(slug) or {}).get("checked_at")
        outcome.checked_now = slug in checked_now
        results.append(outcome)
    return results


def _check_families(verdicts: Any, failed: bool) -> dict:
    """`{"rls": bool, "webhook": bool}` from the exported per-check verdicts."""
    if failed or not isinstance(verdicts, dict):
        return {"rls": False, "webhook": False} if failed else {}
    families: dict[str, bool] = {}
    for name, ok in verdicts.items():
        family = "webhook" if name.startswith("webhook") else "rls"
        families[family] = families.get(family, True) and bool(ok)
    return dict(sorted(families.items()))


def removed_tenants(events: engine.EngineEvents) -> list[str]:
    return sorted(engine.resource_name(urn) for urn, op in events.ops.items()
                  if op == "delete" and engine.resource_type(urn) == TENANT_STACK_TYPE)


def changes_from(summary: dict[str, int]) -> int:
    return sum(count for op, count in summary.items() if op not in NO_CHANGE_OPS)
