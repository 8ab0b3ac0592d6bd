"""How a tenant's resources are named, from its slug, the same way everywhere."""

from __future__ import annotations

PROJECT = "tenant-onboarding"
TENANT_STACK_TYPE = f"{PROJECT}:index:TenantStack"
LABEL_PREFIX = "tenants.ai-agents.io"


def namespace_name(slug: str) -> str:
    return f"tenant-{slug}"


def credentials_secret_name(slug: str) -> str:
    return f"tenant-{slug}-credentials"


def kms_alias_name(slug: str) -> str:
    return f"alias/tenant-{slug}"


def secretsmanager_name(slug: str) -> str:
    return f"tenants/{slug}/credentials"


def service_account_name(slug: str) -> str:
    return f"tenant-{slug}"


def reader_role_name(slug: str) -> str:
    return f"tenant-{slug}-reader"


def webhook_url(base_url: str, tenant_id: str) -> str:
    return f"{base_url.rstrip('/')}/webhook/servicedesk?tenant_id={tenant_id}"


def tenant_stack_name(env: str, slug: str) -> str:
    """A tenant's own stack: `<env>.<slug>`, beside the environment's platform stack `<env>`."""
    return f"{env}.{slug}"


def split_stack_name(stack: str) -> tuple[str, str | None]:
    """`prod.acme` -> ("prod", "acme"), a tenant stack; `prod` -> ("prod", None), the platform stack."""
    env, _, slug = stack.partition(".")
    return env, slug or None


def tenant_config_row_urn(stack: str, slug: str, project: str = PROJECT) -> str:
    """URN of a tenant's `tenant_configs` row resource, for a targeted `pulumi up` of only that row."""
    return (f"urn:pulumi:{stack}::{project}::{TENANT_STACK_TYPE}$pulumi-python:dynamic/{project}:TenantConfigRow"
            f"::{slug}-tenant-config")


def tenant_labels(slug: str, tenant_id: str, tier: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/part-of": "ai-agents",
        f"{LABEL_PREFIX}/slug": slug,
        f"{LABEL_PREFIX}/tenant-id": tenant_id,
        f"{LABEL_PREFIX}/tier": tier,
    }
