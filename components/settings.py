"""Settings read once from Pulumi config and checked before any resource is registered.

An environment (`prod`) is a platform stack `<env>` and one tenant stack `<env>.<slug>` per tenant
file. The platform stack's config holds what every tenant shares (namespaces, webhook base URL, the
database URLs and Fernet key) and exports it; a tenant stack reads those exports through a
StackReference (`TenantEnvironment`, secrets intact), and its own config holds only its secrets and
the settings of the providers its resources were created with.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the tenant_configs row lives and how the post-deploy check connects (all secrets)."""

    provisioner_url: pulumi.Output[str]
    app_url: pulumi.Output[str]
    fernet_key: pulumi.Output[str]
    # The environment's id (fleet rule 1), which the row's writes check against the database's claim.
    environment_id: pulumi.Input[str | None] = None


@dataclass(frozen=True)
class ProviderSettings:
    """Where a stack's AWS and Kubernetes calls go. Per stack, because a resource's provider must not
    change under it: the engine replaces a resource whose provider configuration changed."""

    aws_endpoint: str | None = None
    kube_context: str | None = None
    # Write Kubernetes objects as YAML here instead of applying them (no cluster; or for a GitOps tool).
    kubernetes_render_dir: str | None = None
    # Apply with this kubeconfig (a path): the rehearsal's local API server (fleet.rehearsal_cluster).
    kubeconfig: str | None = None

    def __post_init__(self) -> None:
        if self.kubernetes_render_dir and (self.kube_context or self.kubeconfig):
            raise SettingsError("set kubernetesRenderDir or kubeContext/kubeconfig, not both: rendered objects are "
                                "not applied")
        if self.aws_endpoint and urlsplit(self.aws_endpoint).hostname not in LOOPBACK_HOSTS:
            raise SettingsError(f"awsEndpoint {self.aws_endpoint!r} must be a loopback URL (a local AWS emulator)")


@dataclass(frozen=True)
class PlatformSettings:
    """The platform stack's plain settings, exported for its tenant stacks."""

    shared_namespace: str = "production"
    ingress_namespace: str = "ingress-nginx"
    monitoring_namespace: str = "monitoring"
    webhook_base_url: str = "https://api.ai-agents.production"
    checks_nonce: str = "0"

    def __post_init__(self) -> None:
        parts = urlsplit(self.webhook_base_url)
        loopback = parts.hostname in LOOPBACK_HOSTS
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise SettingsError(
                f"webhookBaseUrl {self.webhook_base_url!r} must be https (http is allowed only on loopback)"
            )


@dataclass(frozen=True)
class Adoption:
    """A tenant's KMS key and secret that `tenantctl restore` took back from their deletion windows: the next `up`
    adopts them (imports them into the stack) instead of creating new ones, which would fail on the secret's name
    and leave the restored secret without its key."""

    kms_key_id: str | None = None
    secret_arn: str | None = None


@dataclass(frozen=True)
class TenantEnvironment:
    """What a TenantStack needs from its environment: the platform's exports (Outputs when read through a
    StackReference, plain in plans and unit tests) and its own stack's switches."""

    shared_namespace: pulumi.Input[str]
    ingress_namespace: pulumi.Input[str]
    monitoring_namespace: pulumi.Input[str]
    webhook_base_url: pulumi.Input[str]
    checks_nonce: pulumi.Input[str] = "0"
    run_checks: bool = True
    # Slugs whose history `tenantctl destroy --purge-data` asked to purge (`purgeData.<slug>: true`).
    purge_slugs: frozenset[str] = frozenset()
    # The stack's `offboarding: true`, set only by offboarding: the data-bearing resources lose their guards.
    offboarding: bool = False
    adopt: Adoption = Adoption()

    @classmethod
    def of(cls, platform: PlatformSettings, run_checks: bool = True,
           purge_slugs: frozenset[str] = frozenset(), offboarding: bool = False) -> TenantEnvironment:
        return cls(platform.shared_namespace, platform.ingress_namespace, platform.monitoring_namespace,
                   platform.webhook_base_url, platform.checks_nonce, run_checks, purge_slugs, offboarding)


def read_provider_settings(config: pulumi.Config) -> ProviderSettings:
    return ProviderSettings(
        aws_endpoint=config.get("awsEndpoint"),
        kube_context=config.get("kubeContext"),
        kubernetes_render_dir=config.get("kubernetesRenderDir"),
        kubeconfig=config.get("kubeconfig"),
    )


def read_platform_settings(config: pulumi.Config) -> PlatformSettings:
    defaults = PlatformSettings()
    return PlatformSettings(
        shared_namespace=config.get("sharedNamespace") or defaults.shared_namespace,
        ingress_namespace=config.get("ingressNamespace") or defaults.ingress_namespace,
        monitoring_namespace=config.get("monitoringNamespace") or defaults.monitoring_namespace,
        webhook_base_url=config.get("webhookBaseUrl") or defaults.webhook_base_url,
        checks_nonce=config.get("checksNonce") or defaults.checks_nonce,
    )


def read_run_checks(config: pulumi.Config) -> bool:
    return config.get_bool("runChecks") if config.get("runChecks") is not None else True


OFFBOARDING = "offboarding"


def read_offboarding(config: pulumi.Config) -> bool:
    """Whether offboarding has lifted the guards of this tenant stack (`tenantctl destroy` sets it, and takes it
    back if the offboarding stops before its destroy)."""
    if config.get(OFFBOARDING) is None:
        return False
    try:
        return bool(config.get_bool(OFFBOARDING))
    except (ValueError, pulumi.ConfigTypeError):
        raise SettingsError("offboarding must be true or false (only `tenantctl destroy` sets it)") from None


ADOPT = "adopt"
ADOPT_FIELDS = {"kmsKeyId": "kms_key_id", "secretArn": "secret_arn"}


def read_adoption(config: pulumi.Config) -> Adoption:
    value = config.get_object(ADOPT)
    if value is None:
        return Adoption()
    if (not isinstance(value, dict) or set(value) - set(ADOPT_FIELDS)
            or not all(isinstance(v, str) and v for v in value.values())):
        raise SettingsError("adopt must map kmsKeyId and secretArn to AWS ids (`tenantctl restore` sets it)")
    return Adoption(**{ADOPT_FIELDS[k]: v for k, v in value.items()})


def read_purge_slugs(config: pulumi.Config) -> frozenset[str]:
    value = config.get_object("purgeData")
    if value is None:
        return frozenset()
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        raise SettingsError("purgeData must map tenant slugs to true or false "
                            "(`tenantctl destroy --purge-data` sets it)")
    return frozenset(slug for slug, purge in value.items() if purge)


DATABASE_KEYS = ("databaseUrl", "appDatabaseUrl", "fernetKey")


def missing_secret_keys(config: pulumi.Config, names: list[str]) -> list[str]:
    return [name for name in names if config.get(name) is None]


def check_database_urls(config: pulumi.Config, keys: list[str]) -> None:
    """Every database URL of the stack, parsed and checked up front (SettingsError names them all, no password)."""
    from tenancy.database_url import DatabaseUrlError, parse_database_url

    allow = config.get_bool("allowUnverifiedDatabaseTls") or False
    problems = []
    for key in keys:
        value = config.get(key)  # plain only for this check; the program uses require_secret
        if value is None:
            continue
        try:
            parse_database_url(value, what=key, allow_unverified=allow)
        except DatabaseUrlError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingsError("\n".join(problems))
