"""`tenantctl rehearse`: a full `pulumi up` of every tenant against local services, with the real providers.

The real program runs under Pulumi's mock runtime. Cloud and Kubernetes resources are simulated;
the dynamic resources (the tenant_configs row and the post-deploy check) are executed for real by
Pulumi's own dynamic provider host, from their serialized form, against a real PostgreSQL and a
local reference webhook receiver. A state file under `.rehearsal/` plays the part of Pulumi's
state, so a second run changes nothing, removing a tenant file deletes exactly that tenant, and
`--destroy` removes everything the rehearsal created.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from components.naming import PROJECT, TENANT_STACK_TYPE
from tenantctl.mock_runtime import RegisteredResource, run_program
from tenantctl.model import Tenant
from tenantctl.provider_host import DynamicProviderHost, ProviderHostError
from tenantctl.stack_files import StackFileError, read_stack_file

STACK = "dev"
STATE_FILE = "state.json"


class RehearsalError(Exception):
    pass


@dataclass
class RehearsalState:
    """What a real stack's state would hold, for the rehearsal environment. Kept 0600: it holds the
    rehearsal's generated secrets (its own Fernet key and API keys), never a real one."""

    path: Path
    resources: dict[str, dict] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RehearsalState:
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path, data.get("resources", {}), data.get("environment", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"environment": self.environment, "resources": self.resources}, handle, indent=1, sort_keys=True)
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

    def as_dict(self) -> dict:
        return {"slug": self.slug, "status": self.status, "checks": self.checks, "errors": self.errors}


@dataclass
class RehearsalResult:
    tenants: list[TenantOutcome]
    changes: int
    removed: list[str]
    delete_error: str | None = None
    # Config and history rows of the tenants still declared: counted before and after the run.
    rows_lost: int = 0

    @property
    def ok(self) -> bool:
        return self.delete_error is None and all(t.status != "failed" for t in self.tenants)

    @property
    def removed_tenants(self) -> list[str]:
        # The type part of a URN lists parent types joined by `$`; the TenantStack's own type comes last.
        return [urn.rsplit("::", 1)[-1] for urn in self.removed if urn.split("::")[-2].endswith(TENANT_STACK_TYPE)]

    def as_dict(self) -> dict:
        return {
            "tenants": [t.as_dict() for t in self.tenants],
            "changes": self.changes,
            "removed_tenants": self.removed_tenants,
            "rows_lost": self.rows_lost,
            "errors": [self.delete_error] if self.delete_error else [],
        }


class DynamicExecutor:
    """Runs each dynamic resource through the provider host the way the engine would on `pulumi up`."""

    def __init__(self, host: DynamicProviderHost, state: RehearsalState) -> None:
        self.host = host
        self.state = state
        self.failures: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, resource: RegisteredResource, inputs: dict) -> tuple[str, dict, str]:
        urn = resource.urn
        prior = self.state.resources.get(urn)
        try:
            news, failures = self.host.check(urn, prior["outputs"] if prior else {}, inputs)
            if failures:
                raise ProviderHostError("check", "; ".join(f"{prop}: {reason}" for prop, reason in failures))
            if prior is None:
                resource_id, outputs = self.host.create(urn, news)
                status = "created"
            else:
                diff = self.host.diff(urn, prior["id"], prior["outputs"], news)
                if diff.replaces:
                    resource_id, outputs = self.host.create(urn, news)
                    self.host.delete(urn, prior["id"], prior["outputs"])
                    status = "replaced"
                elif diff.changes:
                    resource_id, outputs = prior["id"], self.host.update(urn, prior["id"], prior["outputs"], news)
                    status = "updated"
                else:
                    resource_id, outputs, status = prior["id"], prior["outputs"], "unchanged"
        except ProviderHostError as exc:
            with self.lock:
                self.failures[urn] = f"{resource.name}: {exc.message}"
            # Like the engine, keep the last good state; the dependents still register.
            return (prior or {}).get("id", ""), dict((prior or {}).get("outputs", inputs)), "failed"
        with self.lock:
            self.state.resources[urn] = {"type": resource.type, "id": resource_id, "outputs": outputs, "dynamic": True}
        return resource_id, outputs, status


def _plain_stack_config(project_root: Path) -> dict[str, str]:
    try:
        stack_file = read_stack_file(project_root, STACK)
    except StackFileError:
        return {}
    config = {}
    for key, value in stack_file.config.items():
        if isinstance(value, dict):
            continue
        config[key] = str(value).lower() if isinstance(value, bool) else str(value)
    config.pop(f"{PROJECT}:awsEndpoint", None)
    config.pop(f"{PROJECT}:kubeContext", None)
    return config


def rehearsal_config(
    project_root: Path, tenants_dir: Path, tenants: list[Tenant], state: RehearsalState,
    database_url: str, app_database_url: str, webhook_base_url: str,
) -> tuple[dict[str, str], list[str]]:
    config = _plain_stack_config(project_root)
    config[f"{PROJECT}:tenantsDir"] = str(tenants_dir.resolve())
    config[f"{PROJECT}:webhookBaseUrl"] = webhook_base_url
    config[f"{PROJECT}:runChecks"] = "true"
    secret_values = {
        "databaseUrl": database_url,
        "appDatabaseUrl": app_database_url,
        "fernetKey": state.secret("fernetKey", lambda: Fernet.generate_key().decode()),
    }
    for tenant in tenants:
        name = tenant.servicedesk.api_key_secret
        secret_values[name] = state.secret(name, lambda: f"rehearsal-{secrets.token_urlsafe(24)}")
    secret_keys = []
    for name, value in secret_values.items():
        config[f"{PROJECT}:{name}"] = value
        secret_keys.append(f"{PROJECT}:{name}")
    return config, secret_keys


def apply(
    project_root: Path, tenants_dir: Path, tenants: list[Tenant], state: RehearsalState,
    database_url: str, app_database_url: str, webhook_base_url: str,
) -> RehearsalResult:
    """One `pulumi up` of the program, then the deletions of whatever is no longer declared."""
    config, secret_keys = rehearsal_config(
        project_root, tenants_dir, tenants, state, database_url, app_database_url, webhook_base_url
    )
    prior = {urn: entry for urn, entry in state.resources.items() if not entry.get("dynamic")}
    with DynamicProviderHost(project_root) as host:
        executor = DynamicExecutor(host, state)
        run = run_program(project_root, STACK, config, secret_keys, executor=executor, prior=prior)
        declared = {r.urn for r in run.resources}
        removed, delete_error = _delete_undeclared(host, state, declared)
    # State keeps registration order, which respects dependencies, so deletions can run in reverse.
    ordered: dict[str, dict] = {}
    for resource in run.resources:
        if resource.type.startswith("pulumi-python:dynamic"):
            if resource.urn in state.resources:
                ordered[resource.urn] = state.resources[resource.urn]
        else:
            ordered[resource.urn] = {
                "type": resource.type, "id": resource.id, "outputs": _plain(resource.outputs),
                "inputs": _plain(resource.inputs),
            }
    leftovers = {urn: entry for urn, entry in state.resources.items() if urn not in declared}
    state.resources = {**leftovers, **ordered}
    outcomes = _outcomes(tenants, run.resources, executor.failures)
    changes = sum(1 for r in run.resources if r.status != "unchanged") + len(removed)
    return RehearsalResult(outcomes, changes, removed, delete_error)


def _plain(value: Any) -> Any:
    from tenantctl.mock_runtime import unwrap_secrets

    return unwrap_secrets(value)


def _delete_undeclared(
    host: DynamicProviderHost, state: RehearsalState, declared: set[str]
) -> tuple[list[str], str | None]:
    """Delete what the program no longer declares, newest first; stop at the first refusal, as Pulumi does."""
    removed = []
    for urn in reversed(list(state.resources)):
        if urn in declared:
            continue
        entry = state.resources[urn]
        if entry.get("dynamic"):
            try:
                host.delete(urn, entry["id"], entry["outputs"])
            except ProviderHostError as exc:
                return removed, f"{urn.rsplit('::', 1)[-1]}: {exc.message}"
        del state.resources[urn]
        removed.append(urn)
    return removed, None


def _outcomes(
    tenants: list[Tenant], resources: list[RegisteredResource], failures: dict[str, str]
) -> list[TenantOutcome]:
    by_tenant: dict[str, list[RegisteredResource]] = {}
    for resource in resources:
        by_tenant.setdefault(resource.parent_name, []).append(resource)
    outcomes = []
    for tenant in tenants:
        outcome = TenantOutcome(tenant.slug)
        children = by_tenant.get(tenant.slug, [])
        statuses = {r.status for r in children}
        outcome.errors = [failures[r.urn] for r in children if r.urn in failures]
        if outcome.errors or "failed" in statuses:
            outcome.status = "failed"
        elif "created" in statuses and all(s in ("created", "unchanged") for s in statuses) and _all_new(children):
            outcome.status = "created"
        elif statuses - {"unchanged"}:
            outcome.status = "updated"
        check = next((r for r in children if r.type.endswith(":OnboardingCheck")), None)
        if check is not None:
            report = check.outputs.get("report") if isinstance(check.outputs, dict) else None
            outcome.checks = _check_summary(report, failed=check.urn in failures)
        outcomes.append(outcome)
    return outcomes


def _all_new(children: list[RegisteredResource]) -> bool:
    return all(r.status == "created" for r in children if r.custom)


def _check_summary(report: Any, failed: bool) -> dict:
    """`{"webhook": bool, "rls": bool}` from the check's report (its details are in the errors)."""
    if failed or not isinstance(report, dict):
        return {"webhook": False, "rls": False}
    families: dict[str, bool] = {}
    for name, result in (report.get("checks") or {}).items():
        family = "webhook" if name.startswith("webhook") else "rls"
        families[family] = families.get(family, True) and bool(result.get("ok"))
    return dict(sorted(families.items()))


def destroy(project_root: Path, state: RehearsalState) -> RehearsalResult:
    """Delete every resource the rehearsal created (the dynamic ones for real), newest first."""
    with DynamicProviderHost(project_root) as host:
        removed, error = _delete_undeclared(host, state, declared=set())
    return RehearsalResult([], len(removed), removed, error)
