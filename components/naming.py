"""How a tenant's resources are named, from its slug, the same way everywhere."""

from __future__ import annotations

PROJECT = "tenant-onboarding"
TENANT_STACK_TYPE = f"{PROJECT}:index:TenantStack"
REHEARSAL_ENV = "rehearsal"  # the rehearsal environment: platform stack `rehearsal`, tenant stacks `rehearsal.<slug>`
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


GUARDED_CHILDREN = {  # suffix of the child's name -> its type: what components/tenant_stack.py guards
    "kms-key": "aws:kms/key:Key",
    "credentials": "aws:secretsmanager/secret:Secret",
    "namespace": "kubernetes:core/v1:Namespace",
    "tenant-config": f"pulumi-python:dynamic/{PROJECT}:TenantConfigRow",
}


def guarded_urns(stack: str, slug: str, premium: bool, project: str = PROJECT) -> list[str]:
    """URNs of a tenant's guarded resources (the namespace only for premium), for a targeted `pulumi up`."""
    return [f"urn:pulumi:{stack}::{project}::{TENANT_STACK_TYPE}${kind}::{slug}-{suffix}"
            for suffix, kind in GUARDED_CHILDREN.items() if premium or suffix != "namespace"]


def tenant_labels(slug: str, tenant_id: str, tier: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/part-of": "ai-agents",
        f"{LABEL_PREFIX}/slug": slug,
        f"{LABEL_PREFIX}/tenant-id": tenant_id,
        f"{LABEL_PREFIX}/tier": tier,
    }


def alert_rules_name(slug: str) -> str:
    """The tenant's PrometheusRule: in `tenant-<slug>` (premium) or the monitoring namespace (basic)."""
    return f"tenant-{slug}-alerts"


def dashboard_configmap_name(slug: str) -> str:
    """The ConfigMap holding the tenant's Grafana dashboard, in the monitoring namespace."""
    return f"tenant-{slug}-dashboard"


def dashboard_uid(tenant_id: str) -> str:
    """The dashboard's Grafana uid (at most 40 characters), from the tenant id: a renamed tenant keeps its URL."""
    return f"tenant-{tenant_id.replace('-', '')}"


def observability_labels(slug: str, tenant_id: str, tier: str) -> dict[str, str]:
    """Labels of the objects that watch a tenant (its alert rules and dashboard).

    Deliberately without `tenants.ai-agents.io/slug`: that label marks an object *of* the tenant, which the
    policy pack keeps in the tenant's namespace (premium) or the shared one (basic). A basic tenant's rules
    and every dashboard live in the monitoring namespace instead, so they name the tenant they observe with
    `observed-*` labels (a premium tenant's rules, in its own namespace, carry `tenant_labels` as well).
    """
    return {
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/part-of": "ai-agents",
        "app.kubernetes.io/component": "tenant-observability",
        f"{LABEL_PREFIX}/observed-slug": slug,
        f"{LABEL_PREFIX}/observed-tenant-id": tenant_id,
        f"{LABEL_PREFIX}/observed-tier": tier,
    }


def environment_option(env: str) -> str:
    """How a tenantctl command names the environment `env` in a hint: `--env prod`, or `--rehearsal` (a stack
    `rehearsal` of the project's backend is not the rehearsal: fleet rule 1)."""
    return "--rehearsal" if env == REHEARSAL_ENV else f"--env {env}"
