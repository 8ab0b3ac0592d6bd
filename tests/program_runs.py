"""Runs of the program's two halves under the mock runtime, as `pulumi up` would run each stack."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from fleet.mock_runtime import ProgramRun, Secret, run_program
from fleet.plan import PLACEHOLDER_DATABASE_URL, plan_config
from program import platform_outputs as names
from tenancy.loader import require_tenants

PLATFORM_OUTPUTS = {
    names.SHARED_NAMESPACE: "production",
    names.INGRESS_NAMESPACE: "ingress-nginx",
    names.MONITORING_NAMESPACE: "monitoring",
    names.WEBHOOK_BASE_URL: "https://api.example.com",
    names.CHECKS_NONCE: "0",
    names.DATABASE_URL: Secret(PLACEHOLDER_DATABASE_URL),
    names.APP_DATABASE_URL: Secret(PLACEHOLDER_DATABASE_URL.replace("plan:", "app:")),
    names.FERNET_KEY: Secret(Fernet.generate_key().decode()),
}


def stack_config(root: Path, tenants_dir: Path, env: str = "dev", drop: str | None = None,
                 **extra: str) -> tuple[dict, list[str]]:
    """The environment's plain config with placeholder secrets (every tenant's keys and the database's)."""
    try:
        secret_names = [n for t in require_tenants(tenants_dir) for n in t.secret_names]
    except Exception:  # noqa: BLE001 (an invalid folder: the program itself must say so)
        secret_names = []
    config, secret_keys = plan_config(root, tenants_dir, env, secret_names)
    if drop:
        config.pop(f"tenant-onboarding:{drop}")
    config.update({k if ":" in k else f"tenant-onboarding:{k}": v for k, v in extra.items()})
    return config, secret_keys


def run_stack(root: Path, stack: str, config: dict, secret_keys: list[str],
              platform_outputs: dict | None = None) -> ProgramRun:
    outputs = PLATFORM_OUTPUTS if platform_outputs is None else platform_outputs
    return run_program(root, stack, config, secret_keys, platform_outputs=outputs)
